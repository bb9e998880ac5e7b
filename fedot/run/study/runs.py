"""A study's runs: one per (task, partitioning, arm, seed[, owner]), each with its settings checked and its folder.

A run's folder is ``<out>/runs/<task>/<partitioning>/<arm>/seed<s>[/owner<i>]`` (``all`` for the centralized arm,
whose data does not depend on the partitioning). What a folder holds decides what happens to it: a finished run
(``results.json``) is reused when it was made with the same settings (a setting fedot gained since the run was
made counts as its default) and refused otherwise (nothing is overwritten); an interrupted one (a checkpoint or
``rounds.jsonl``) is resumed; anything else starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...settings import SettingError, to_flat
from ..config import FederatedConfig
from ..sim_folder import Sim
from .arms import ARMS, ArmContext
from .config import Study

UNPARTITIONED = "all"
VOLATILE = ("run-dir", "command", "resume", "data-dir", "verbose")  # where and how it ran, not what


class StudyError(RuntimeError):
    pass


@dataclass
class StudyRun:
    task: str
    partitioning: str
    arm: str
    seed: int
    owner: int | None
    overrides: dict  # over the sim's own settings
    config: FederatedConfig
    label: str = ""  # the run's last folder when not seed<s>[/owner<i>] (a learning-rate selection run: lr<rate>)
    waits: bool = False  # its learning rate is chosen by selection runs that have not finished (:mod:`.rates`)

    @property
    def key(self) -> str:
        owner = "" if self.owner is None else f"/owner{self.owner}"
        return f"{self.task}/{self.partitioning}/{self.arm}/{self.label or f'seed{self.seed}'}{owner}"

    def check(self, sim: Sim) -> StudyRun:
        """Its settings through the sim's checks (a bad one fails here, before any run starts)."""
        try:
            self.config = sim.config(self.overrides)
        except (SettingError, ValueError) as e:
            raise StudyError(f"study run {self.key}: {e}") from e
        return self

    def folder(self, out: Path) -> Path:
        return out / "runs" / self.key

    def state(self, out: Path) -> str:
        """``done``, ``resume``, ``new`` (see the module docstring) or ``waits`` (for its learning rate); a finished
        run with other settings raises."""
        if self.waits:
            return "waits"
        folder = self.folder(out)
        results = folder / "results.json"
        if results.exists():
            saved = json.loads(results.read_text()).get("run_config", {})
            wanted = {k: v for k, v in json.loads(json.dumps(to_flat(self.config))).items() if k not in VOLATILE}
            added = json.loads(json.dumps(to_flat(FederatedConfig())))  # a setting added since holds its default
            differ = sorted(k for k, v in wanted.items() if saved.get(k, added.get(k)) != v)
            if differ:
                raise StudyError(f"{folder} holds a finished run with other settings ({', '.join(differ[:6])}); the "
                                 "study file changed since: use another --out (nothing there is overwritten)")
            return "done"
        if (folder / "checkpoint").exists():
            return "resume"
        return "new"


def arm_context(study: Study, task: str, partitioning: str, seed: int) -> ArmContext:
    """The federation a task's arms are compared with, from its checked settings."""
    base = Sim(study.sim_path).config({**study.task_settings(task), "partitioning": partitioning, "seed": seed})
    train = base.data_owner.train
    if train.epochs:
        raise SettingError(f"study task {task}: the training budget must be counted in steps (steps = N), not "
                           f"epochs = {train.epochs:g}, so that every arm can be given the same optimizer steps")
    return ArmContext(task, partitioning, seed, base.num_clients, base.sampled_per_round, base.num_rounds,
                      train.steps, study.config.local_only_owners)


def plan_runs(study: Study, rates: dict[str, float] | None = None) -> list[StudyRun]:
    """Every run of the study, its settings checked (a bad one fails here, before any run starts). With ``[study]
    lrs``, ``rates`` holds each task's chosen rate (:mod:`.rates`); a task without one is planned at the first rate
    of the grid, its runs marked as waiting for the choice."""
    rates = rates or {}
    sim, runs, seen = Sim(study.sim_path), [], set()
    for task in study.tasks:
        for partitioning in study.partitionings[task]:
            for seed in study.config.seeds:
                try:
                    ctx = arm_context(study, task, partitioning, seed)
                except (SettingError, ValueError) as e:
                    raise StudyError(f"study task {task}, partitioning {partitioning}: {e}") from e
                for arm in study.config.arms:
                    entry = ARMS.entry(study.base(arm))
                    where = partitioning if entry.limit("partitioned") else UNPARTITIONED
                    for r in entry.value(ctx):
                        overrides = {**study.task_settings(task), "seed": seed, **r.overrides,
                                     **study.arm_settings(arm)}
                        if study.config.lrs:
                            overrides["lr"] = rates.get(task, study.config.lrs[0])
                        overrides["partitioning"] = partitioning if entry.limit("partitioned") else "iid"
                        run = StudyRun(task, where, arm, seed, r.owner, overrides, None,
                                       waits=bool(study.config.lrs) and task not in rates)
                        if run.key in seen:  # the centralized arm: one run per seed, shared by the partitionings
                            continue
                        seen.add(run.key)
                        runs.append(run.check(sim))
    return runs
