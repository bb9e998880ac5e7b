"""Instruction tasks: a prompt in, an answer generated, scored against the reference (ROUGE-L, exact match).

What federated LLM fine-tuning users run (FederatedGPT-Shepherd, FederatedScope-LLM, FedBiOT, FlowerTune):

- ``dolly``: databricks-dolly-15k as FederatedGPT-Shepherd splits it: 10 non-IID client shards (the ``natural``
  partitioning makes them the 10 data owners) and an 80-record test set (10 per category). 80 records decide
  nothing (a ROUGE-L interval of about ±5 points), so fedot's test split is a fixed held-out set of 500 records
  carved from the shards by a stable hash of each record's identity (never trained on), and its validation split the
  next 200; ``dolly_shepherd80`` scores Shepherd's own 80 records instead (same training data). Scored by ROUGE-L
  (F-measure of the longest common subsequence, Google's ``rouge-score`` with stemming, as the Dolly papers report).
- ``gsm8k``: grade-school maths, the question in and a worked answer ending ``#### n`` out (7,473 train, of which 200
  are held out for validation, 1,319 test); scored by exact match of the extracted final number, with lm-eval's own
  filters: ``exact_match`` (flexible-extract: the last number in the output) and ``exact_match_strict``
  (strict-match: the number after ``####``). ``gsm8k_lmeval`` prompts exactly as lm-eval's ``gsm8k`` task does
  ("Question: ...\\nAnswer:", its stop strings), for the peer check against lm-eval (``bench/gsm8k_peer.py``).

Prompts use the model's own chat template (SmolLM2-135M-Instruct has one); a tokenizer without one gets
:data:`PLAIN` (Alpaca's layout). Training puts the loss on the response only (:func:`fedot.tasks.tokenize.
instruction_examples`, which counts what it truncates and never drops an example silently).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from . import TASKS
from .data import bucket, data_file, read_json, read_jsonl

PLAIN = "### Instruction:\n{instruction}\n\n{context}### Response:\n"
SHEPHERD_SHARDS = 10
HELD_OUT, VALIDATION = 500, 200


@dataclass(frozen=True)
class InstructionTask:
    """Docs are ``{"id", "instruction", "context", "response", ...}``; ``response`` is what training targets."""

    name: str
    description: str
    load: Callable[[str], list[dict]]
    metrics: list[str]
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    lm_eval_prompt: bool = False  # "Question: ...\nAnswer:" instead of the chat template
    natural_shards: int = 0  # > 0: the task's own data owners (the ``natural`` partitioning)
    label_field: str | None = None  # what ``dirichlet`` partitions over
    kind: str = "generation"
    higher_is_better: bool = True
    scorer: str = "rouge"

    @property
    def primary(self) -> str:
        return self.metrics[0]

    def docs(self, split: str, root=None) -> list[dict]:
        return self.load(split, root)

    def prompt(self, tokenizer, doc: dict) -> str:
        """The text the model continues: its chat template around the instruction (and context), or :data:`PLAIN`."""
        if self.lm_eval_prompt:
            return f"Question: {doc['instruction']}\nAnswer:"
        user = doc["instruction"] + (f"\n\n{doc['context']}" if doc.get("context") else "")
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True,
                                                 tokenize=False)
        context = f"### Input:\n{doc['context']}\n\n" if doc.get("context") else ""
        return PLAIN.format(instruction=doc["instruction"], context=context)

    def response(self, doc: dict) -> str:
        return (" " if self.lm_eval_prompt else "") + doc["response"]

    def partition_label(self, doc: dict):
        if self.label_field is None:
            raise ValueError(f"{self.name} has no label to partition over; use 'iid'"
                             + (" or 'natural'" if self.natural_shards else ""))
        return doc[self.label_field]

    def train_examples(self, tokenizer, max_length: int, split: str = "train", indices=None, root=None):
        from .tokenize import instruction_examples

        docs = self.docs(split, root)
        docs = docs if indices is None else [docs[i] for i in indices]
        return instruction_examples(tokenizer, [(self.prompt(tokenizer, d), self.response(d)) for d in docs],
                                    max_length)

    def eval_tokens(self, tokenizer, docs: list[dict]) -> int:
        """Tokens one evaluation processes: each prompt, plus at most ``max_new_tokens`` generated."""
        return sum(len(tokenizer.encode(self.prompt(tokenizer, d))) + self.max_new_tokens for d in docs)

    def score(self, output: str, doc: dict) -> dict[str, float]:
        return SCORING[self.scorer](output, doc)


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(output: str, doc: dict) -> dict[str, float]:
    return {"rougeL": _rouge().score(doc["response"], output)["rougeL"].fmeasure}


# lm-eval's gsm8k filters and exact-match normalisation (lm_eval/tasks/gsm8k/gsm8k.yaml)
STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
IGNORE = [re.compile(p) for p in (",", r"\$", r"(?s).*#### ", r"\.$")]


def normalise(text: str) -> str:
    for pattern in IGNORE:
        text = pattern.sub("", text)
    return text.lower()


def extract(output: str, strict: bool) -> str:
    """The answer lm-eval's filter extracts ("[invalid]" when none matches)."""
    if strict:
        m = STRICT.findall(output)
        return m[0] if m else "[invalid]"
    matches = FLEXIBLE.findall(output)
    if not matches:
        return "[invalid]"
    last = matches[-1]
    return next(g for g in last if g) if isinstance(last, tuple) else last


def gsm8k_match(output: str, doc: dict) -> dict[str, float]:
    gold = normalise(doc["response"])
    return {"exact_match": float(normalise(extract(output, strict=False)) == gold),
            "exact_match_strict": float(normalise(extract(output, strict=True)) == gold)}


SCORING = {"rouge": rouge_l, "gsm8k": gsm8k_match}


def _dolly_pool(root) -> list[dict]:
    docs = []
    for shard in range(SHEPHERD_SHARDS):
        for j, r in enumerate(read_json(data_file(f"dolly15k/local_training_{shard}.json", root))):
            docs.append({"id": f"{shard}:{j}", "shard": shard, "instruction": r["instruction"],
                         "context": r.get("context", ""), "response": r["response"], "category": r["category"]})
    return docs


def _dolly(split: str, root=None, shepherd_test: bool = False) -> list[dict]:
    """Shepherd's shards minus a fixed held-out set: the 500 records with the lowest hash of their identity are the
    test split, the next 200 validation, the rest (14,231) train, each keeping its shard."""
    if split == "test" and shepherd_test:
        return [{"id": f"test:{i}", "instruction": r["instruction"], "context": r.get("context", ""),
                 "response": r["response"], "category": r["category"]}
                for i, r in enumerate(read_json(data_file("dolly15k/global_test.json", root)))]
    ranked = sorted(_dolly_pool(root), key=lambda d: bucket(d["id"], "dolly-held-out"))
    parts = {"test": ranked[:HELD_OUT], "validation": ranked[HELD_OUT:HELD_OUT + VALIDATION],
             "train": ranked[HELD_OUT + VALIDATION:]}
    return sorted(parts[split], key=lambda d: (d["shard"], int(d["id"].split(":")[1])))


def _gsm8k(split: str, root=None) -> list[dict]:
    def doc(i, r, part):
        return {"id": f"{part}:{i}", "instruction": r["question"], "context": "", "response": r["answer"]}

    if split == "test":
        return [doc(i, r, "test") for i, r in enumerate(read_jsonl(data_file("gsm8k/test.jsonl", root)))]
    docs = [doc(i, r, "train") for i, r in enumerate(read_jsonl(data_file("gsm8k/train.jsonl", root)))]
    ranked = sorted(docs, key=lambda d: bucket(d["id"], "gsm8k-validation"))
    held = {d["id"] for d in ranked[:VALIDATION]}
    return [d for d in docs if (d["id"] in held) == (split == "validation")]


_GSM8K_STOP = ("Question:", "</s>", "<|im_end|>")
_INSTRUCTION = (
    InstructionTask("dolly", "databricks-dolly-15k in FederatedGPT-Shepherd's 10 shards; 500 held-out records, ROUGE-L",
                    _dolly, ["rougeL"], max_new_tokens=128, natural_shards=SHEPHERD_SHARDS, label_field="category"),
    InstructionTask("dolly_shepherd80", "Dolly as `dolly`, scored on Shepherd's own 80-record test set",
                    lambda split, root=None: _dolly(split, root, shepherd_test=True), ["rougeL"], max_new_tokens=128,
                    natural_shards=SHEPHERD_SHARDS, label_field="category"),
    InstructionTask("gsm8k", "GSM8K grade-school maths, exact match of the final number (lm-eval's filters)",
                    _gsm8k, ["exact_match", "exact_match_strict"], max_new_tokens=256, scorer="gsm8k"),
    InstructionTask("gsm8k_lmeval", "GSM8K prompted exactly as lm-eval's gsm8k task (zero-shot), for the peer check",
                    _gsm8k, ["exact_match", "exact_match_strict"], max_new_tokens=256, stop=_GSM8K_STOP,
                    lm_eval_prompt=True, scorer="gsm8k"),
)
for _task in _INSTRUCTION:
    TASKS.register(_task.name, _task, help=_task.description, kind=_task.kind)
