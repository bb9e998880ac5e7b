"""Split a task's training data among data owners with flwr-datasets partitioners.

- ``iid``: training examples spread uniformly;
- ``dirichlet``: multiple-choice examples skewed over the answer label by Dirichlet(alpha);
- ``document``: corpora only, whole documents (topics/articles) per client, a natural non-IID split.
Deterministic given the seed. Each scheme is registered in :data:`SCHEMES` with the kind of task it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..settings import setting
from ..tasks import ChoiceTask, CorpusTask, get_task


def _iid(num_partitions: int, rows: dict, task, docs, alpha: float, seed: int):
    import datasets
    from flwr_datasets.partitioner import IidPartitioner

    partitioner = IidPartitioner(num_partitions)
    partitioner.dataset = datasets.Dataset.from_dict(rows).shuffle(seed=seed)
    return partitioner


def _dirichlet(num_partitions: int, rows: dict, task, docs, alpha: float, seed: int):
    import datasets
    from flwr_datasets.partitioner import DirichletPartitioner

    rows = {**rows, "label": [t[0] if isinstance(t, list) else t for t in map(task.target, docs)]}
    partitioner = DirichletPartitioner(num_partitions, partition_by="label", alpha=alpha, seed=seed,
                                       min_partition_size=1, self_balancing=True)
    partitioner.dataset = datasets.Dataset.from_dict(rows)
    return partitioner


@dataclass(frozen=True)
class Scheme:
    name: str
    needs: type | None  # the task kind it applies to (None: any)
    alternative: str  # what to use instead on the other kind
    partitioner: Callable  # (num_partitions, rows, task, docs, alpha, seed) -> a flwr-datasets partitioner

    def check(self, task_name: str) -> None:
        task = get_task(task_name)
        if self.needs is not None and not isinstance(task, self.needs):
            kind = "multiple choice" if isinstance(task, ChoiceTask) else "a corpus"
            raise ValueError(f"{self.name} partitioning does not apply to {task_name} ({kind}): use {self.alternative}")


SCHEMES = {s.name: s for s in (
    Scheme("iid", None, "", _iid),
    Scheme("dirichlet", ChoiceTask, "'document' or 'iid'", _dirichlet),
    Scheme("document", CorpusTask, "'iid' or 'dirichlet'", _iid),  # a corpus's documents are its examples
)}


@dataclass
class PartitionConfig:
    scheme: str = setting("document", "how the train split is divided among data owners: iid, dirichlet (multiple "
                          "choice, skewed over the answer label) or document (corpora, whole documents each)",
                          choices=tuple(SCHEMES), key="partitioning")
    dirichlet_alpha: float = setting(0.5, "Dirichlet concentration for dirichlet partitioning (smaller: more skewed)",
                                     gt=0)


def partition_indices(task_name: str, cfg: PartitionConfig, num_partitions: int, seed: int = 0,
                      split: str = "train", root=None) -> list[list[int]]:
    """For each partition, the indices (into ``task.docs(split)``) of the documents/examples it holds."""
    scheme = SCHEMES[cfg.scheme]
    scheme.check(task_name)
    if num_partitions < 1:
        raise ValueError(f"num-partitions must be >= 1 (got {num_partitions})")
    task = get_task(task_name)
    docs = task.docs(split, root)
    if len(docs) < num_partitions:
        raise ValueError(f"{task_name}/{split} has {len(docs)} documents, fewer than {num_partitions} partitions")
    partitioner = scheme.partitioner(num_partitions, {"index": list(range(len(docs)))}, task, docs,
                                     cfg.dirichlet_alpha, seed)
    return [sorted(partitioner.load_partition(i)["index"]) for i in range(num_partitions)]
