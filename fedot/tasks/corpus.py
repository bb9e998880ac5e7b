"""Language-modelling corpora scored by perplexity: WikiText-2 and CPython's documentation topics."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from . import TASKS
from .data import carve, data_dir, data_file, from_hub


@dataclass(frozen=True)
class CorpusTask:
    """Docs are ``{"id", "page"}``; ``page`` is the original text, ``score_text`` what the model is scored on."""

    name: str
    description: str
    load: Callable[[str], list[dict]]
    detokenize: Callable[[str], str] = lambda s: s
    kind: str = "perplexity"
    primary: str = "word_perplexity"
    higher_is_better: bool = False

    def docs(self, split: str, root=None) -> list[dict]:
        return self.load(split, root)

    def score_text(self, doc: dict) -> str:
        return self.detokenize(doc["page"])

    def train_texts(self, split: str = "train", root=None) -> list[str]:
        return [self.score_text(d) for d in self.docs(split, root)]

    def train_examples(self, tokenizer, max_length: int, split: str = "train", indices=None, root=None):
        from .tokenize import corpus_examples

        texts = self.train_texts(split, root)
        return corpus_examples(tokenizer, texts if indices is None else [texts[i] for i in indices], max_length)

    def eval_tokens(self, tokenizer, docs: list[dict]) -> int:
        return sum(len(tokenizer.encode(self.score_text(d))) for d in docs)


def _pydocs(split: str, root=None) -> list[dict]:
    """The 79 topics of ``pydoc_data.topics``, split by topic: 70% train, 10% validation, 20% test."""
    from pydoc_data.topics import topics

    docs = [{"id": k, "page": v.strip()} for k, v in sorted(topics.items())]
    return carve(docs, lambda d: d["id"], {"test": 0.2, "validation": 0.1, "train": 0.7})[split]


_HEADING = re.compile(r"^ = [^=].* = $")


def pages(lines: list[str]) -> list[str]:
    """Group WikiText lines into articles at top-level ``= Title =`` headings (as wikitext_document_level does)."""
    out: list[list[str]] = []
    for line in lines:
        if _HEADING.match(line.rstrip("\n")) or not out:
            out.append([])
        out[-1].append(line)
    return ["".join(p) for p in out if "".join(p).strip()]


def _wikitext2(split: str, root=None) -> list[dict]:
    """Test: the raw WikiText-2 test articles (what lm-eval's ``wikitext`` scores).

    The offline copy lacks the train split, so training uses the validation
    articles (tokenised release), of which 10% are held out for checkpoint
    selection. Validation and test articles are disjoint by construction.
    """
    if data_dir(root) is None:
        rows = from_hub("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1", split)
        return [{"id": str(i), "page": r["page"]} for i, r in enumerate(rows)]
    if split == "test":
        text = data_file("wikitext2/raw/wiki.test.raw.lf.txt", root).read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        return [{"id": str(i), "page": p} for i, p in enumerate(pages(lines))]
    text = data_file("wikitext2/pytorch_examples_tokens/valid.txt", root).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    docs = [{"id": p.splitlines()[0].strip(), "page": p} for p in pages(lines)]
    return carve(docs, lambda d: d["id"], {"validation": 0.1, "train": 0.9})[split]


def _wikitext_detokenize(text: str) -> str:
    from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer

    return wikitext_detokenizer({"page": text})


for _task in (CorpusTask("pydocs", "CPython documentation topics (pydoc_data), split by topic", _pydocs),
              CorpusTask("wikitext2", "WikiText-2 (raw test articles, lm-eval wikitext scoring)", _wikitext2,
                         _wikitext_detokenize)):
    TASKS.register(_task.name, _task, help=_task.description, kind=_task.kind)
