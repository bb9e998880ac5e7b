"""The task registry: name -> data splits (train / validation / test) and metric."""

from __future__ import annotations

from .choice import CHOICE_TASKS, ChoiceTask
from .corpus import CORPORA, CorpusTask
from .data import DATA_ENV, DataNotFoundError, data_dir

TASKS: dict[str, CorpusTask | ChoiceTask] = {**CORPORA, **CHOICE_TASKS}
SPLITS = ("train", "validation", "test")


def get_task(name: str) -> CorpusTask | ChoiceTask:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def task_names() -> tuple[str, ...]:
    return tuple(TASKS)


def corpus_names() -> tuple[str, ...]:
    """Tasks that are plain text (usable for distillation and importance learning)."""
    return tuple(CORPORA)


__all__ = ["TASKS", "SPLITS", "get_task", "task_names", "corpus_names", "ChoiceTask", "CorpusTask", "DATA_ENV",
           "DataNotFoundError", "data_dir"]
