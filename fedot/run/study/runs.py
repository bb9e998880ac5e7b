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
    label: str = ""  # its last folder when not seed<s>[/owner<i>] (a selection run: lr<rate>, select-<setting><value>)
    waits: bool = False  # a setting of it is chosen by selection runs that have not finished (.rates, .choices)

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


def contexts(study: Study, seeds: list[int] | None = None):
    """The federation of every (task, partitioning, seed) the study compares with, in the study's order."""
    for task in study.tasks:
        for partitioning in study.partitionings[task]:
            for seed in seeds or study.config.seeds:
                try:
                    yield arm_context(study, task, partitioning, seed)
                except (SettingError, ValueError) as e:
                    raise StudyError(f"study task {task}, partitioning {partitioning}: {e}") from e


def arm_runs(study: Study, ctx: ArmContext, arm: str, settings: dict, waits: bool = False,
             label: str = "") -> list[StudyRun]:
    """An arm's runs in one federation (unchecked): ``settings`` (chosen values, a selection's evaluation) over the
    arm's and the variant's."""
    where = placed(study, arm, ctx.partitioning)
    return [StudyRun(ctx.task, where, arm, ctx.seed, r.owner,
                     {**study.task_settings(ctx.task), "seed": ctx.seed, **r.overrides, **study.arm_settings(arm),
                      **settings, "partitioning": "iid" if where == UNPARTITIONED else where}, None, label, waits)
            for r in ARMS[study.base(arm)](ctx)]


def placed(study: Study, arm: str, partitioning: str) -> str:
    """The partitioning folder of an arm's runs: ``all`` for an arm whose data does not depend on it."""
    return partitioning if ARMS.entry(study.base(arm)).limit("partitioned") else UNPARTITIONED


def rate_setting(study: Study, task: str, rates: dict[str, float]) -> tuple[dict, bool]:
    """A task's chosen learning rate as a setting (none without ``[study] lrs``) and whether it waits for it."""
    if not study.config.lrs:
        return {}, False
    return {"lr": rates.get(task, study.config.lrs[0])}, task not in rates


def choice_key(study: Study, ctx: ArmContext, arm: str) -> str:
    """Where a variant's choice applies: ``<task>/<partitioning or all>/<arm>``."""
    return f"{ctx.task}/{placed(study, arm, ctx.partitioning)}/{arm}"


def plan_runs(study: Study, rates: dict[str, float] | None = None, picks: dict[str, object] | None = None
              ) -> list[StudyRun]:
    """Every run of the study, its settings checked (a bad one fails here, before any run starts). ``rates``: each
    task's learning rate chosen from ``[study] lrs`` (:mod:`.rates`); ``picks``: each variant's chosen value per
    :func:`choice_key` (:mod:`.choices`). A run whose choice is not made yet is planned at the first value of the
    grid and marked as waiting for it."""
    rates, picks = rates or {}, picks or {}
    sim, runs, seen = Sim(study.sim_path), [], set()
    for ctx in contexts(study):
        for arm in study.config.arms:
            settings, waits = rate_setting(study, ctx.task, rates)
            if choice := study.choice(arm):
                setting, values = choice
                pick = picks.get(choice_key(study, ctx, arm))
                settings[setting] = values[0] if pick is None else pick
                waits = waits or pick is None
            for run in arm_runs(study, ctx, arm, settings, waits):
                if run.key in seen:  # the centralized arm: one run per seed, shared by the partitionings
                    continue
                seen.add(run.key)
                runs.append(run.check(sim))
    return runs
