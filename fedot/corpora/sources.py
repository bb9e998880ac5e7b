"""The owner corpora, registered by name; each is carved into train and validation by whole document.

- ``wikitext2``, ``pydocs``: the train / validation splits of those corpus tasks (never their test split);
- ``wikitext103``: 162 WikiText-103 train articles (none shares a title with WikiText-2's test), 90% / 10% by title;
- ``gutenberg``: 113 public-domain books from Project Gutenberg (PG-19, the books of offsite-tuning's distillation
  corpus the Pile, comes from the same source), 95% / 5% by book;
- ``generated``: text the full model samples itself (data-free distillation; :mod:`fedot.corpora.generated`).

A source yields its documents one at a time, so a corpus is never held in memory as text either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Callable

from ..registry import Registry
from ..tasks.data import carve, data_dir, data_file

OWNER_SPLITS = ("train", "validation")


@dataclass(frozen=True)
class Source:
    documents: Callable[[str, object], Iterator[str]]  # (split, data root) -> its documents' text, one at a time
    needs_model: bool = False  # its text comes from the full model (generated), not from files


CORPORA: Registry[Source] = Registry("owner corpus")


def text_corpora() -> tuple[str, ...]:
    """Corpora read from files (the choices wherever the owner needs text and has no model to sample from)."""
    return CORPORA.names(lambda e: not e.value.needs_model)


def _task_texts(name: str):
    def documents(split: str, root=None) -> Iterator[str]:
        from ..tasks import get_task

        yield from get_task(name).train_texts(split, root)
    return documents


def _wikitext103(split: str, root=None) -> Iterator[str]:
    from ..tasks.corpus import _wikitext_detokenize, pages

    text = data_file("wikitext103/wiki.train.tokens.prefix_complete_articles", root).read_text(encoding="utf-8")
    docs = [{"id": p.splitlines()[0].strip(), "page": p} for p in pages(text.splitlines(keepends=True))]
    for doc in carve(docs, lambda d: d["id"], {"validation": 0.1, "train": 0.9})[split]:
        yield _wikitext_detokenize(doc["page"])


def _gutenberg(split: str, root=None) -> Iterator[str]:
    books = sorted(data_file("gutenberg/books", root).glob("*.txt"))
    if not books:
        raise FileNotFoundError(f"{data_dir(root)}/gutenberg/books holds no .txt books")
    for book in carve([{"id": b.name, "path": b} for b in books], lambda d: d["id"],
                      {"validation": 0.05, "train": 0.95})[split]:
        yield book["path"].read_text(encoding="utf-8")


def _generated(split: str, root=None) -> Iterator[str]:
    raise TypeError("the generated corpus is sampled from the full model; fedot.corpora.generated builds it")


CORPORA.register("wikitext2", Source(_task_texts("wikitext2")),
                 help="WikiText-2's validation articles (tokenised release), 90% train / 10% validation")
CORPORA.register("pydocs", Source(_task_texts("pydocs")), help="CPython's documentation topics (train/validation)")
CORPORA.register("wikitext103", Source(_wikitext103),
                 help="162 WikiText-103 train articles (~0.7M tokens), 90% / 10% by article")
CORPORA.register("gutenberg", Source(_gutenberg),
                 help="113 Project Gutenberg books (~17.6M tokens), 95% / 5% by book")
CORPORA.register("generated", Source(_generated, needs_model=True),
                 help="text the full model samples itself (data-free; generated-* settings)")
