"""Multiple-choice tasks scored the way lm-eval 0.4 defines them.

Each task normalises its source data to the fields of the Hugging Face dataset
lm-eval reads, and carries lm-eval's own templates, so the same strings drive
both the lm-eval evaluation and the training examples (prompt + " " + answer).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

from jinja2 import Template

from . import TASKS
from .data import carve, data_dir, data_file, from_hub, read_json, read_jsonl

ACC = ["acc", "acc_norm"]


@dataclass(frozen=True)
class ChoiceTask:
    name: str
    description: str
    load: Callable[[str], list[dict]]
    doc_to_text: str
    doc_to_choice: str
    doc_to_target: str
    metrics: list[str] = field(default_factory=lambda: list(ACC))
    kind: str = "multiple_choice"
    higher_is_better: bool = True

    @property
    def primary(self) -> str:
        return self.metrics[0]

    def docs(self, split: str, root=None) -> list[dict]:
        return self.load(split, root)

    @cached_property
    def templates(self) -> dict[str, Template]:
        """Compiling a Jinja template costs ~1 ms, rendering one ~10 us: each of a task's templates compiles once."""
        return {t: Template(t) for t in (self.doc_to_text, self.doc_to_choice, self.doc_to_target)}

    def _render(self, template: str, doc: dict):
        if template in doc:
            return doc[template]
        out = self.templates[template].render(**doc)
        return ast.literal_eval(out) if out.startswith("[") else (int(out) if out.strip().isdigit() else out)

    def prompt(self, doc: dict) -> str:
        return self._render(self.doc_to_text, doc)

    def choices(self, doc: dict) -> list[str]:
        return self._render(self.doc_to_choice, doc)

    def target(self, doc: dict) -> int | list[int]:
        return self._render(self.doc_to_target, doc)

    def train_pairs(self, split: str = "train", indices: list[int] | None = None, root=None) -> list[tuple[str, str]]:
        """(context, continuation) pairs: the prompt and its correct answer, as lm-eval scores them.

        ``indices`` renders only those documents: a data owner needs its partition, not the whole split.
        """
        docs = self.docs(split, root)
        pairs = []
        for doc in docs if indices is None else [docs[i] for i in indices]:
            target = self.target(doc)
            first = target[0] if isinstance(target, list) else target
            pairs.append((self.prompt(doc), " " + self.choices(doc)[first]))
        return pairs

    def train_examples(self, tokenizer, max_length: int, split: str = "train", indices=None, root=None):
        from .tokenize import choice_examples

        return choice_examples(tokenizer, self.train_pairs(split, indices, root), max_length)

    def eval_tokens(self, tokenizer, docs: list[dict]) -> int:
        """Tokens lm-eval scores: the prompt once per choice, plus the choices."""
        return sum(len(tokenizer.encode(self.prompt(d))) * len(self.choices(d))
                   + len(tokenizer.encode(" ".join(map(str, self.choices(d))))) for d in docs)

    def partition_label(self, doc: dict):
        target = self.target(doc)
        return target[0] if isinstance(target, list) else target

    def lm_eval_config(self, data_file: str) -> dict:
        return {
            "task": f"fedot_{self.name}",
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": data_file}},
            "test_split": "test",
            "output_type": "multiple_choice",
            "doc_to_text": self.doc_to_text,
            "doc_to_choice": self.doc_to_choice,
            "doc_to_target": self.doc_to_target,
            "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in self.metrics],
        }


# --- per-dataset loaders: official splits where the offline copy has them, carved ones where not ---

def _hub_labelled(path: str, name: str | None, split: str, key) -> list[dict]:
    """A hub dataset whose test split has no labels (PIQA, HellaSwag): lm-eval scores its validation split, so that
    is fedot's test; fedot's train and validation are carved from the hub's train split (90% / 10% by ``key``), so no
    evaluation item is ever trained on and validation never equals test."""
    if split == "test":
        return from_hub(path, name, "validation")
    return carve(from_hub(path, name, "train"), key, {"validation": 0.1, "train": 0.9})[split]


def _piqa(split, root):
    """Only PIQA's validation set has labels offline: 50% test, 10% validation, 40% train, by goal.

    Repeated goals stay together.
    """
    if data_dir(root) is None:
        return _hub_labelled("baber/piqa", None, split, lambda d: d["goal"])
    docs = read_jsonl(data_file("piqa/valid.jsonl", root))
    labels = data_file("piqa/valid-labels.lst", root).read_text().split()
    docs = [{**d, "label": int(y)} for d, y in zip(docs, labels, strict=True)]
    return carve(docs, lambda d: d["goal"], {"test": 0.5, "validation": 0.1, "train": 0.4})[split]


def _openbookqa(split, root):
    if data_dir(root) is None:
        return from_hub("allenai/openbookqa", "main", split)
    file = {"train": "train.jsonl", "validation": "dev.from_tsv.jsonl", "test": "test.jsonl"}[split]
    return [
        {"id": d["id"], "question_stem": d["question"]["stem"], "answerKey": d["answerKey"],
         "choices": {"text": [c["text"] for c in d["question"]["choices"]],
                     "label": [c["label"] for c in d["question"]["choices"]]}}
        for d in read_jsonl(data_file(f"openbookqa/original_jsonl/{file}", root))
    ]


def _arc(subset):
    def load(split, root):
        if data_dir(root) is None:
            return from_hub("allenai/ai2_arc", "ARC-" + subset.split("_")[1].capitalize(), split)
        return read_json(data_file(f"{subset}/hf_format/{split}.json", root))
    return load


def _hellaswag_preprocess(text):
    text = text.strip().replace(" [title]", ". ")
    return re.sub("\\[.*?\\]", "", text).replace("  ", " ")


def _hellaswag(split, root):
    """Validation (10,042 items) is all there is offline: 50% test, 10% validation, 40% train, by context."""
    if data_dir(root) is None:
        rows = _hub_labelled("Rowan/hellaswag", None, split, lambda d: d["ctx"])
        rows = [{"query": r["activity_label"] + ": " + r["ctx_a"] + " " + r["ctx_b"].capitalize(),
                 "endings": r["endings"],
                 "label": r["label"], "idx": i} for i, r in enumerate(rows)]
    else:
        rows = read_jsonl(data_file("hellaswag/klosax_text/hellaswag_val.preprocessed.jsonl", root))
        rows = carve(rows, lambda d: d["query"], {"test": 0.5, "validation": 0.1, "train": 0.4})[split]
    return [{"query": _hellaswag_preprocess(r["query"]), "choices": [_hellaswag_preprocess(e) for e in r["endings"]],
             "label": int(r["label"])} for r in rows]


def _sciq(split, root):
    """Offline SciQ has validation and test: train on 90% of validation, select on the other 10%."""
    if data_dir(root) is None:
        return from_hub("allenai/sciq", None, split)
    if split == "test":
        return read_json(data_file("sciq/original_SciQ_dataset-2_3/test.json", root))
    docs = read_json(data_file("sciq/original_SciQ_dataset-2_3/valid.json", root))
    return carve(docs, lambda d: d["question"], {"validation": 0.1, "train": 0.9})[split]


def _remove_prefixes(aliases):
    """lm-eval webqs: drop any alias that has a strict prefix elsewhere in the list."""
    aliases = sorted(aliases)
    out = [aliases[0]]
    for alias in aliases[1:]:
        if not alias.startswith(out[-1]):
            out.append(alias)
    return out


def _webqs(split, root):
    if data_dir(root) is None:
        rows = from_hub("stanfordnlp/web_questions", None, "test" if split == "test" else "train")
    else:
        rows = read_jsonl(data_file(f"webquestions/{'test' if split == 'test' else 'train'}.jsonl", root))
    if split != "test":
        rows = carve(rows, lambda d: d["question"], {"validation": 0.1, "train": 0.9})[split]
    return [{"question": r["question"], "choices": _remove_prefixes(list(r["answers"])),
             "gold": list(range(len(_remove_prefixes(list(r["answers"])))))} for r in rows]


_QA = "Question: {{question}}\nAnswer:"
_CHOICE = {
    "piqa": ChoiceTask("piqa", "PIQA", _piqa, "Question: {{goal}}\nAnswer:", "{{[sol1, sol2]}}", "label"),
    "openbookqa": ChoiceTask("openbookqa", "OpenBookQA (main)", _openbookqa, "question_stem", "{{choices.text}}",
                             "{{choices.label.index(answerKey.lstrip())}}"),
    "arc_easy": ChoiceTask("arc_easy", "ARC-Easy", _arc("arc_easy"), _QA, "{{choices.text}}",
                           "{{choices.label.index(answerKey)}}"),
    "arc_challenge": ChoiceTask("arc_challenge", "ARC-Challenge", _arc("arc_challenge"), _QA, "{{choices.text}}",
                                "{{choices.label.index(answerKey)}}"),
    "hellaswag": ChoiceTask("hellaswag", "HellaSwag", _hellaswag, "{{query}}", "choices", "{{label}}"),
    "sciq": ChoiceTask("sciq", "SciQ", _sciq, "{{support.lstrip()}}\nQuestion: {{question}}\nAnswer:",
                       "{{[distractor1, distractor2, distractor3, correct_answer]}}", "3"),
    # lm-eval's webqs: exact match = the greedy continuation is one of the gold answers
    "webqs": ChoiceTask("webqs", "WebQuestions (greedy exact match)", _webqs, _QA, "choices", "gold",
                        metrics=["exact_match"]),
}
for _task in _CHOICE.values():
    TASKS.register(_task.name, _task, help=_task.description, kind=_task.kind)
