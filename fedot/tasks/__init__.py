"""The task registry: name -> data splits (train / validation / test) and metric.

Each task module registers its tasks in :data:`TASKS` (a :class:`fedot.registry.Registry`): corpora scored by
perplexity (``corpus``), multiple choice scored by lm-eval (``choice``). Adding a task is adding its entry there.
"""

from __future__ import annotations

from ..registry import Registry
from .data import DATA_ENV, DataNotFoundError, data_dir

TASKS: Registry = Registry("task")
SPLITS = ("train", "validation", "test")

from .corpus import CorpusTask  # noqa: E402, I001  (registers the corpora, then the multiple-choice tasks)
from .choice import ChoiceTask  # noqa: E402


def get_task(name: str) -> CorpusTask | ChoiceTask:
    return TASKS[name]


def task_names() -> tuple[str, ...]:
    return TASKS.names()


__all__ = ["TASKS", "SPLITS", "get_task", "task_names", "ChoiceTask", "CorpusTask", "DATA_ENV", "DataNotFoundError",
           "data_dir"]
