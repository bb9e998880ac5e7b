"""Split a task's training data among data owners with flwr-datasets partitioners.

- ``iid``: training examples spread uniformly;
- ``dirichlet``: multiple-choice examples skewed over the answer label by Dirichlet(alpha);
- ``document``: corpora only, whole documents (topics/articles) per client, a natural non-IID split.
Deterministic given the seed.
"""

from __future__ import annotations

from .tasks import ChoiceTask, get_task

SCHEMES = ("iid", "dirichlet", "document")


def check(task_name: str, scheme: str, num_partitions: int) -> None:
    """Reject a partitioning that cannot work, before anything is loaded."""
    task = get_task(task_name)
    if scheme not in SCHEMES:
        raise ValueError(f"unknown partitioning {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if scheme == "dirichlet" and not isinstance(task, ChoiceTask):
        raise ValueError(f"dirichlet partitioning needs labels; {task_name} is a corpus: use 'document' or 'iid'")
    if scheme == "document" and isinstance(task, ChoiceTask):
        raise ValueError(f"document partitioning is for corpora; {task_name} is multiple choice: use 'iid' or 'dirichlet'")
    if num_partitions < 1:
        raise ValueError(f"num-partitions must be >= 1 (got {num_partitions})")


def partition_indices(task_name: str, scheme: str, num_partitions: int, seed: int = 0,
                      alpha: float = 0.5, split: str = "train") -> list[list[int]]:
    """For each partition, the indices (into ``task.docs(split)``) of the documents/examples it holds."""
    import datasets
    from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner

    check(task_name, scheme, num_partitions)
    task = get_task(task_name)
    docs = task.docs(split)
    if len(docs) < num_partitions:
        raise ValueError(f"{task_name}/{split} has {len(docs)} documents, fewer than {num_partitions} partitions")
    rows = {"index": list(range(len(docs)))}
    if scheme == "dirichlet":
        rows["label"] = [t[0] if isinstance(t, list) else t for t in map(task.target, docs)]
        partitioner = DirichletPartitioner(num_partitions, partition_by="label", alpha=alpha, seed=seed,
                                           min_partition_size=1, self_balancing=True)
    else:
        partitioner = IidPartitioner(num_partitions)
    table = datasets.Dataset.from_dict(rows)
    partitioner.dataset = table.shuffle(seed=seed) if scheme != "dirichlet" else table
    return [sorted(partitioner.load_partition(i)["index"]) for i in range(num_partitions)]
