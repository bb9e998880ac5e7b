"""A variant's setting chosen on validation data before its runs (``choose`` in an ``[arms.<name>]`` table).

A variant that changes how the federation trains (a server learning rate, the local steps) is only a fair arm at a
value chosen the way its arm's learning rate is (:mod:`.rates`): never on the test split, and where the data differ
(IID or label skew) not at a value another partitioning chose. So, per task and partitioning, the variant runs once
per value on the first seed with ``eval-split = "validation"`` and ``eval-limit = lr-validation-limit`` (after the
last round, without FT), at the task's chosen learning rate; the value whose OT plug-in is best (the mean over the
arm's runs, for an arm of several owners; the first of equal scores in the order given) becomes the setting of that
variant's runs there. The selection runs live beside the variant's own (``runs/<task>/<partitioning>/<variant>/
select-<setting><value>``), are skipped when finished and resumed when interrupted, and their scores are in
study.json (``choices``).
"""

from __future__ import annotations

from pathlib import Path

from ..sim_folder import Sim
from .config import Study
from .rates import best, result, validation_settings
from .runs import StudyRun, arm_runs, contexts, rate_setting

PREFIX = "select-"


def value_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def choice_runs(study: Study, rates: dict[str, float]) -> list[StudyRun]:
    """Every variant's selection runs (first seed; each value, per task and partitioning), checked; they wait while
    the task's learning rate is not chosen."""
    sim, runs, seen = Sim(study.sim_path), [], set()
    for ctx in contexts(study, study.config.seeds[:1]):
        for arm in study.config.arms:
            if not (choice := study.choice(arm)):
                continue
            setting, values = choice
            lr, waits = rate_setting(study, ctx.task, rates)
            for value in values:
                for run in arm_runs(study, ctx, arm, {**lr, setting: value, **validation_settings(study, ctx)},
                                    waits, label=f"{PREFIX}{setting}{value_text(value)}"):
                    if run.key not in seen:  # an arm whose data does not depend on the partitioning: once
                        seen.add(run.key)
                        runs.append(run.check(sim))
    return runs


def picked(study: Study, choosing: list[StudyRun], out: Path) -> dict[str, dict]:
    """Per ``<task>/<partitioning>/<variant>`` whose selection runs have all finished: the value, every value's
    validation score and how it was chosen."""
    record = {}
    for key in dict.fromkeys(f"{r.task}/{r.partitioning}/{r.arm}" for r in choosing):
        runs = [r for r in choosing if f"{r.task}/{r.partitioning}/{r.arm}" == key]
        results = [result(r, out) for r in runs]
        if any(r is None for r in results):
            continue
        setting, values = study.choice(runs[0].arm)
        scores = []
        for value in values:
            mine = [res["numbers"]["plugin"] for r, res in zip(runs, results)
                    if r.label == f"{PREFIX}{setting}{value_text(value)}"]
            scores.append(sum(mine) / len(mine))
        higher = results[0]["higher_is_better"]
        record[key] = {"setting": setting, "value": values[best(scores, higher)],
                       "scores": {value_text(v): s for v, s in zip(values, scores)}, "metric": results[0]["metric"],
                       "higher_is_better": higher, "split": "validation",
                       "examples": study.config.lr_validation_limit or "all", "seed": runs[0].seed,
                       "runs_per_value": len(runs) // len(values),
                       "rule": "best OT plug-in on the validation split after the last round (mean over the arm's "
                               "runs); the first of equal scores in the order of choose"}
    return record


def values_of(record: dict[str, dict]) -> dict[str, object]:
    return {key: r["value"] for key, r in record.items()}
