"""Split a task's training data among data owners with flwr-datasets partitioners.

- ``iid``: training examples spread uniformly;
- ``dirichlet``: multiple-choice examples skewed over the answer label by Dirichlet(alpha);
- ``document``: corpora only, whole documents (topics/articles) per client, a natural non-IID split;
- ``natural``: the task's own data owners (Dolly: FederatedGPT-Shepherd's 10 shards), one per client.
Deterministic given the seed. Each scheme is registered in :data:`SCHEMES` with the kind of task it needs.

By default there is one partition per data owner. ``data-shards = N`` with ``data-shard = i`` gives a run's single
data owner shard ``i`` of the N-way split instead (with the same seed: the very shard data owner ``i`` holds in an
N-owner federation), which is how a study's local-only arm trains one owner alone on its own data
(:mod:`fedot.study`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..registry import Registry
from ..settings import Choice, registry_group, selector, setting
from ..tasks import get_task


def _iid(num_partitions: int, rows: dict, task, docs, alpha: float, seed: int):
    import datasets
    from flwr_datasets.partitioner import IidPartitioner

    partitioner = IidPartitioner(num_partitions)
    partitioner.dataset = datasets.Dataset.from_dict(rows).shuffle(seed=seed)
    return partitioner


def _dirichlet(num_partitions: int, rows: dict, task, docs, alpha: float, seed: int):
    import datasets
    from flwr_datasets.partitioner import DirichletPartitioner

    rows = {**rows, "label": [task.partition_label(d) for d in docs]}
    partitioner = DirichletPartitioner(num_partitions, partition_by="label", alpha=alpha, seed=seed,
                                       min_partition_size=1, self_balancing=True)
    partitioner.dataset = datasets.Dataset.from_dict(rows)
    return partitioner


def _natural(num_partitions: int, rows: dict, task, docs, alpha: float, seed: int):
    import datasets
    from flwr_datasets.partitioner import NaturalIdPartitioner

    if num_partitions != task.natural_shards:
        raise ValueError(f"natural partitioning of {task.name} gives its {task.natural_shards} own data owners; "
                         f"num-clients is {num_partitions}: set it to {task.natural_shards} (or use 'iid')")
    partitioner = NaturalIdPartitioner(partition_by="shard")
    partitioner.dataset = datasets.Dataset.from_dict({**rows, "shard": [d["shard"] for d in docs]})
    return partitioner


@dataclass
class DirichletSettings:
    alpha: float = setting(0.5, "Dirichlet concentration for dirichlet partitioning (smaller: more skewed)", gt=0)


SCHEMES: Registry[Callable] = Registry("partitioning scheme")
SCHEMES.register("iid", _iid, help="training examples spread uniformly")
SCHEMES.register("dirichlet", _dirichlet, settings=DirichletSettings, kinds=("multiple_choice", "generation"),
                 alternative="'document' or 'iid'", needs=(lambda t: getattr(t, "label_field", "") is not None,
                                                          "a label to skew over"),
                 help="skewed over a label: the answer (multiple choice), the category (Dolly)")
SCHEMES.register("document", _iid, kinds=("perplexity",), alternative="'iid' or 'dirichlet'",
                 help="corpora, whole documents each")  # a corpus's documents are its examples
SCHEMES.register("natural", _natural, kinds=("generation",), alternative="'iid' or 'dirichlet'",
                 needs=(lambda t: getattr(t, "natural_shards", 0), "the task's own data owners"),
                 help="the task's own data owners (Dolly: Shepherd's 10 shards)")


def check_scheme(scheme: str, task_name: str) -> None:
    """Refuse a scheme that does not apply to the task's kind, naming what does."""
    entry, task = SCHEMES.entry(scheme), get_task(task_name)
    if entry.limit("kinds") is not None and task.kind not in entry.limit("kinds"):
        raise ValueError(f"{scheme} partitioning does not apply to {task_name} ({task.kind.replace('_', ' ')}): use "
                         f"{entry.limit('alternative')}")
    needs = entry.limit("needs")
    if needs is not None and not needs[0](task):
        raise ValueError(f"{scheme} partitioning needs {needs[1]}, which {task_name} does not have: use 'iid'")


@dataclass
class PartitionConfig(Choice):
    scheme: str = selector(SCHEMES, "document", "how the train split is divided among data owners",
                           key="partitioning")
    options: dict = registry_group(SCHEMES.settings_groups, prefix="")
    shards: int = setting(0, "partitions the train split is divided into; 0: one per data owner. With data-shard, a "
                          "single data owner holds one of them (a local-only run of federation member data-shard)",
                          ge=0, key="data-shards")
    shard: int = setting(-1, "the partition a single data owner holds when data-shards is set; -1: its own",
                         ge=-1, key="data-shard")

    @property
    def alpha(self) -> float:
        return self.options["dirichlet"].alpha

    def check(self) -> None:
        if self.shard >= 0 and not self.shards:
            raise ValueError(f"data-shard = {self.shard} names a partition of data-shards, which is 0: set "
                             "data-shards to the federation's number of data owners")
        if self.shards and self.shard >= self.shards:
            raise ValueError(f"data-shard = {self.shard} is not one of the {self.shards} data-shards (0.."
                             f"{self.shards - 1})")

    def check_owners(self, num_clients: int) -> None:
        if self.shard >= 0 and num_clients != 1:
            raise ValueError(f"data-shard = {self.shard} gives one data owner one partition, but num-clients = "
                             f"{num_clients}: run it with num-clients = 1 (or leave data-shard at -1)")

    def owned(self, num_partitions: int, partition_id: int) -> tuple[int, int]:
        """(partitions, which one) a data owner with this ``partition_id`` of ``num_partitions`` holds."""
        if not self.shards:
            return num_partitions, partition_id
        return self.shards, (self.shard if self.shard >= 0 else partition_id)


def partition_indices(task_name: str, cfg: PartitionConfig, num_partitions: int, seed: int = 0,
                      split: str = "train", root=None) -> list[list[int]]:
    """For each partition, the indices (into ``task.docs(split)``) of the documents/examples it holds."""
    check_scheme(cfg.scheme, task_name)
    if num_partitions < 1:
        raise ValueError(f"num-partitions must be >= 1 (got {num_partitions})")
    task = get_task(task_name)
    docs = task.docs(split, root)
    if len(docs) < num_partitions:
        raise ValueError(f"{task_name}/{split} has {len(docs)} documents, fewer than {num_partitions} partitions")
    partitioner = SCHEMES[cfg.scheme](num_partitions, {"index": list(range(len(docs)))}, task, docs, cfg.alpha, seed)
    return [sorted(partitioner.load_partition(i)["index"]) for i in range(num_partitions)]
