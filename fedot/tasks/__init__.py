"""The task registry: name -> data splits (train / validation / test) and metric."""

from __future__ import annotations

from .choice import CHOICE_TASKS, ChoiceTask
from .corpus import CORPORA, CorpusTask
from .data import DATA_ENV, DataNotFoundError

TASKS: dict[str, CorpusTask | ChoiceTask] = {**CORPORA, **CHOICE_TASKS}
SPLITS = ("train", "validation", "test")


def get_task(name: str) -> CorpusTask | ChoiceTask:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "SPLITS", "get_task", "ChoiceTask", "CorpusTask", "DATA_ENV", "DataNotFoundError"]
