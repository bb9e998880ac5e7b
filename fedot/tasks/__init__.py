"""The task registry: name -> data splits (train / validation / test) and metric.

Each task module registers its tasks in :data:`TASKS` (a :class:`fedot.registry.Registry`): corpora scored by
perplexity (``corpus``), multiple choice scored by lm-eval (``choice``), instructions scored on generated answers
(``instruction``). Each task builds its own training examples (``train_examples``) and says what it costs to score
(``eval_tokens``). Adding a task is adding its entry there.
"""

from __future__ import annotations

from ..registry import Registry
from .data import DATA_ENV, DataNotFoundError, data_dir

TASKS: Registry = Registry("task")
SPLITS = ("train", "validation", "test")

from .corpus import CorpusTask  # noqa: E402, I001  (registers the corpora, multiple-choice and instruction tasks)
from .choice import ChoiceTask  # noqa: E402
from .instruction import InstructionTask  # noqa: E402


def get_task(name: str) -> CorpusTask | ChoiceTask | InstructionTask:
    return TASKS[name]


def task_names() -> tuple[str, ...]:
    return TASKS.names()


__all__ = ["TASKS", "SPLITS", "get_task", "task_names", "ChoiceTask", "CorpusTask", "InstructionTask", "DATA_ENV",
           "DataNotFoundError", "data_dir"]
