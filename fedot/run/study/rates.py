"""The learning rate every arm of a study uses, chosen on validation data before the study's runs (``[study] lrs``).

A rate chosen on the test split would flatter every arm, and one copied from another setup (single-site, another
batch size) need not suit the federation; so, per task, the centralized arm (the first seed, the federation's total
steps and tokens) runs once per rate in ``lrs`` with ``eval-split = "validation"`` and ``eval-limit =
lr-validation-limit``, evaluated after its last round only, and the rate with the best OT plug-in on the validation
split becomes every arm's ``lr`` (the first of equal scores, in the order given). Choosing on the plug-in is the
researcher's protocol of a study (the model owner scores plug-ins on public validation data); the paper's own rule,
the emulator's validation score, picks the adapter that moved furthest through a poor emulator
(docs/results/frontier.md), which would bias the comparison toward large rates.

The selection runs live beside the study's (``runs/<task>/lr-select/centralized/lr<rate>``), are skipped when
finished and resumed when interrupted like any other run, and their scores are in study.json (``lr_selection``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..sim_folder import Sim
from .arms import ArmContext
from .config import Study
from .runs import StudyRun, arm_context, arm_runs

SELECTION = "lr-select"


def validation_settings(study: Study, ctx: ArmContext) -> dict:
    """How a selection run is scored: on the validation split, after its last round (no per-round curve), without
    FT."""
    return {"full-ft": False, "eval-split": "validation", "eval-limit": study.config.lr_validation_limit,
            "eval-every": ctx.num_rounds, "eval-curve-limit": 0}


def selection_runs(study: Study) -> list[StudyRun]:
    """One centralized run per (task, rate), scored on the validation split; none without ``lrs``."""
    if not study.config.lrs:
        return []
    sim, seed, runs = Sim(study.sim_path), study.config.seeds[0], []
    for task in study.tasks:
        ctx = arm_context(study, task, "iid", seed)
        for lr in study.config.lrs:
            (run,) = arm_runs(study, ctx, "centralized", {"lr": lr, **validation_settings(study, ctx)},
                              label=f"lr{lr:g}")
            runs.append(dataclasses.replace(run, partitioning=SELECTION).check(sim))
    return runs


def result(run: StudyRun, out: Path) -> dict | None:
    results = run.folder(out) / "results.json"
    return json.loads(results.read_text()) if results.exists() else None


def best(scores: list[float], higher: bool) -> int:
    """The index of the best score (the first of equal ones)."""
    return max(range(len(scores)), key=lambda i: (scores[i] if higher else -scores[i], -i))


def chosen(study: Study, selection: list[StudyRun], out: Path) -> dict[str, dict]:
    """Per task whose selection runs have all finished: ``{"rate", "scores" (rate -> validation plug-in), ...}``."""
    record = {}
    for task in study.tasks:
        runs = [r for r in selection if r.task == task]
        results = [result(r, out) for r in runs]
        if not runs or any(r is None for r in results):
            continue
        higher, scores = results[0]["higher_is_better"], [r["numbers"]["plugin"] for r in results]
        record[task] = {"rate": runs[best(scores, higher)].config.lr,
                        "scores": {f"{r.config.lr:g}": v for r, v in zip(runs, scores)},
                        "metric": results[0]["metric"], "higher_is_better": higher, "split": "validation",
                        "examples": study.config.lr_validation_limit or "all", "arm": "centralized",
                        "seed": runs[0].seed, "rule": "best OT plug-in on the validation split after the last round; "
                                                      "the first of equal scores in the order of [study] lrs"}
    return record


def rates_of(record: dict[str, dict]) -> dict[str, float]:
    return {task: r["rate"] for task, r in record.items()}
