"""``fedot study``: run every run of a study (skipping finished ones, resuming interrupted ones), then render.

Each run is an ordinary ``fedot sim`` of the study's sim folder (``launch``: :func:`fedot.run.launch.run_sim` by
default; tests pass the in-process grid) with its settings as run-config overrides. One line per run says what
it is, then how long it took and the study's ETA: the mean measured time of the arm's finished runs (this
session's or earlier ones', from their results.json) for the arm's remaining runs, the arithmetic estimate of
:mod:`.estimate` for arms not measured yet. ``--plan`` prints the runs and the estimate and stops; a finished
study only re-renders. With ``[study] lrs`` the learning-rate selection runs (:mod:`.rates`) come first, then the
selection runs of the variants that choose a setting (:mod:`.choices`), then the study's runs; each phase is
planned again with what the phases before it chose once they have finished.
"""

from __future__ import annotations

import json
import shlex
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from ...files import shown
from ...settings import flags
from ..config import FederatedConfig
from .choices import choice_runs, picked, values_of
from .config import Study
from .estimate import run_seconds
from .rates import chosen, rates_of, selection_runs
from .report import render
from .runs import StudyError, StudyRun, plan_runs

Launch = Callable[[Path, dict, bool], None]  # (sim folder, run-config overrides, start afresh over leftovers)


def sim_command(study: Study, settings: dict) -> str:
    """The ``fedot sim`` command line that makes one of the study's runs on its own (recorded in its results)."""
    return shlex.join(["fedot", "sim", shown(study.sim_path), *flags(FederatedConfig, settings)])


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, m, s = seconds // 3600, seconds % 3600 // 60, seconds % 60
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def estimates(runs: list[StudyRun]) -> list[float]:
    """Each run's estimated seconds; the zero-shot scores are computed by the first run of a task, FT by the first
    run of a (task, seed) that trains it (the evaluation cache serves the rest)."""
    zs_done, ft_done, out = set(), set(), []
    for run in runs:
        ft_key = (run.task, run.seed, run.config.baseline.steps)
        zs_key = (run.task, run.config.evaluation.split)
        out.append(run_seconds(run.config, zs_key not in zs_done, ft_key not in ft_done))
        zs_done.add(zs_key)
        if run.config.baseline.enabled:
            ft_done.add(ft_key)
    return out


def plan_text(study: Study, runs: list[StudyRun], out: Path) -> str:
    est = estimates(runs)
    states = [r.state(out) for r in runs]
    lines = [f"study {study.name}: {len(runs)} runs of {study.sim_path.name} "
             f"({sum(s == 'done' for s in states)} finished, {sum(s == 'resume' for s in states)} to resume)", ""]
    for run, seconds, state in zip(runs, est, states):
        c = run.config
        lines.append(f"  {run.key:<48} {c.num_clients:>2} owners x {c.num_rounds} rounds x {c.data_owner.train.steps}"
                     f" steps  ~{duration(seconds):>7}  {state}")
    todo = sum(s for s, st in zip(est, states) if st != "done")
    lines += ["", f"estimated CPU time of what is left: {duration(todo)} (arithmetic estimate at the matmul rate "
                  "measured now, so too long on a busy machine; see fedot/run/study/estimate.py)"]
    if any(st == "done" for st in states):
        lines.append(f"from the measured times of the finished runs of each arm (the arithmetic estimate, scaled by "
                     f"the finished runs' measured/estimated ratio, where an arm has none): "
                     f"{duration(eta(runs, est, out, 0))}")
    if any(st == "waits" for st in states):
        lines.append("runs that wait: a setting of theirs (the learning rate from [study] lrs, a variant's choose) "
                     "is chosen on the validation split by the lr-select / select-* runs first (estimated at the "
                     "first value)")
    return "\n".join(lines)


def measured(run: StudyRun, out: Path) -> float | None:
    results = run.folder(out) / "results.json"
    return json.loads(results.read_text()).get("wall_seconds") if results.exists() else None


def eta(runs: list[StudyRun], est: list[float], out: Path, start: int) -> float:
    """Seconds left for ``runs[start:]``: per arm (its selection runs apart), the mean measured time of its finished
    runs; for an arm with none, the arithmetic estimate times the median ratio of measured to estimated time of the
    finished runs (which corrects the estimate for this machine and its load)."""
    by_arm: dict[tuple, list[float]] = {}
    ratios = []
    for r, e in zip(runs, est):
        t = measured(r, out)
        if t is not None:
            by_arm.setdefault((r.arm, bool(r.label)), []).append(t)
            ratios.append(t / e)
    scale = statistics.median(ratios) if ratios else 1.0
    left = 0.0
    for run, e in zip(runs[start:], est[start:]):
        if measured(run, out) is None:
            times = by_arm.get((run.arm, bool(run.label)))
            left += sum(times) / len(times) if times else e * scale
    return left


def study_runs(study: Study, out: Path) -> tuple[list[StudyRun], list[StudyRun], list[StudyRun]]:
    """(the learning-rate selection runs, the variants' selection runs, the study's runs), each planned with what
    the finished runs before it chose."""
    selection = selection_runs(study)
    rates = rates_of(chosen(study, selection, out))
    choosing = choice_runs(study, rates)
    return selection, choosing, plan_runs(study, rates, values_of(picked(study, choosing, out)))


def render_study(study: Study, out: Path, command: str = "") -> dict:
    """Write study.json, study.md and plots from the finished runs; return study.json's record."""
    selection, choosing, runs = study_runs(study, out)
    return render(study, runs, out, command, chosen(study, selection, out), picked(study, choosing, out))


def run_study(study: Study, out: Path, launch: Launch, plan_only: bool = False, report=print,
              command: str = "") -> dict | None:
    """Run what is left of the study into ``out``; write study.json, study.md and plots; return study.json's record
    (None with ``plan_only``)."""
    selection, choosing, planned = study_runs(study, out)
    runs = selection + choosing + planned
    if plan_only:
        report(plan_text(study, runs, out))
        return None
    est = estimates(runs)
    phases = {len(selection), len(selection) + len(choosing)} - {0}
    for i in range(len(runs)):
        if i in phases:  # the phases before chose what they choose: plan the rest with it
            runs[i:] = [r for phase in study_runs(study, out) for r in phase][i:]
        run = runs[i]
        state = run.state(out)
        if state == "done":
            continue
        if state == "waits":
            raise StudyError(f"{run.key}: the selection on validation it waits for has not finished (an lr-select "
                             f"or select-* run under {out / 'runs' / run.task} holds no results.json); run the study "
                             "again to resume it")
        report(f"[{i + 1}/{len(runs)}] {run.key}: {'resuming' if state == 'resume' else 'starting'} "
               f"(study ETA {duration(eta(runs, est, out, i))})")
        t0 = time.perf_counter()
        settings = {**run.overrides, "run-dir": str(run.folder(out).resolve())}
        launch(study.sim_path, {**settings, "resume": state == "resume", "command": sim_command(study, settings)},
               state == "new")
        report(f"[{i + 1}/{len(runs)}] {run.key}: done in {duration(time.perf_counter() - t0)} "
               f"(study ETA {duration(eta(runs, est, out, i + 1))})")
    return render_study(study, out, command)
