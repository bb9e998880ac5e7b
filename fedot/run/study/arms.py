"""The arms of a single-client vs federated study, each registered with the runs it needs and its budget rule.

Every arm is an ordinary ``fedot sim`` run of the study's sim (or several) with a few settings changed; zero-shot,
the emulator's zero-shot and FT are measured by every run (cached by content, so once per model and task):

- ``federated``: the N data owners of the sim, its aggregation rule (FedAvg by default);
- ``federated-median``: the same with the coordinate-wise median, a robust rule for reference;
- ``local-only``: one data owner alone on its own shard (``data-shards``/``data-shard``: the shard it holds in the
  federation, same seed) for the local steps it takes in the federation, all rounds together: the reason it would
  join. A seeded subset of owners per seed and partitioning (``local-only-owners``);
- ``centralized``: one data owner holding the union of the shards, with the federation's total optimizer steps
  and tokens per round (centralized offsite-tuning; the partitioning does not apply);
- ``lossless``: the federation with a lossless emulator, the ceiling of the adapter itself (ships the full model:
  an experiment, never a deployment).

FT (the full model trained centrally on all the data, not private) is every non-local run's baseline with the
federation's total steps, so its cache entry is shared.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ...registry import Registry


@dataclass(frozen=True)
class ArmContext:
    """What an arm needs to know of the federation it is compared with."""

    task: str
    partitioning: str
    seed: int
    num_clients: int
    sampled: int  # data owners per round
    num_rounds: int
    steps: int  # local optimizer steps per round
    owners: int  # local-only owners per seed (0: all)

    @property
    def total_steps(self) -> int:
        return self.num_rounds * self.sampled * self.steps

    def local_owners(self) -> list[int]:
        """A seeded subset of the data owners (all of them when ``owners`` is 0 or covers them)."""
        if not self.owners or self.owners >= self.num_clients:
            return list(range(self.num_clients))
        rng = random.Random(f"{self.seed}/{self.task}/{self.partitioning}")
        return sorted(rng.sample(range(self.num_clients), self.owners))


@dataclass(frozen=True)
class ArmRun:
    owner: int | None  # the data owner a local-only run trains, else None
    overrides: dict


ARMS: Registry[Callable[[ArmContext], list[ArmRun]]] = Registry("study arm")
ALONE = {"num-clients": 1, "fraction-train": 1.0, "min-replies": 1, "aggregation": "fedavg"}


def _ft(ctx: ArmContext) -> dict:
    return {"full-ft": True, "full-ft-steps": ctx.total_steps}


@ARMS.register("federated", help="N data owners with the sim's aggregation rule (FedAvg by default)", partitioned=True)
def _federated(ctx: ArmContext) -> list[ArmRun]:
    return [ArmRun(None, _ft(ctx))]


@ARMS.register("federated-median", help="N data owners, coordinate-wise median (robust reference)", partitioned=True)
def _median(ctx: ArmContext) -> list[ArmRun]:
    return [ArmRun(None, {**_ft(ctx), "aggregation": "median"})]


@ARMS.register("local-only", help="each data owner alone on its own shard, its federation steps", partitioned=True)
def _local(ctx: ArmContext) -> list[ArmRun]:
    rounds = max(1, round(ctx.num_rounds * ctx.sampled / ctx.num_clients))  # the rounds it is sampled, expected
    return [ArmRun(i, {**ALONE, "num-rounds": rounds, "data-shards": ctx.num_clients, "data-shard": i,
                       "full-ft": False}) for i in ctx.local_owners()]


@ARMS.register("centralized", help="one data owner with all shards, the federation's total steps", partitioned=False)
def _centralized(ctx: ArmContext) -> list[ArmRun]:
    return [ArmRun(None, {**ALONE, **_ft(ctx), "steps": ctx.sampled * ctx.steps})]


@ARMS.register("lossless", help="the federation through a lossless emulator (the adapter's ceiling)",
               partitioned=True)
def _lossless(ctx: ArmContext) -> list[ArmRun]:
    return [ArmRun(None, {**_ft(ctx), "emulator-method": "uniform", "emulator-blocks": -1,
                          "allow-lossless-emulator": True})]
