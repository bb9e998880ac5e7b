"""What every run writes: results.json (numbers, conditions, recovered share, paired tests, versions), results.md,
results.png, and outcomes.json (the per-example outcomes of the five numbers).

The arithmetic is :mod:`fedot.evaluation.five`, the paired tests :mod:`fedot.evaluation.paired`, the table
:mod:`fedot.run.markdown`, the bars :mod:`fedot.run.plots`.
"""

from __future__ import annotations

import math
import platform
from pathlib import Path

from ..evaluation.five import conditions, recovered
from ..evaluation.intervals import intervals_of
from ..evaluation.outcomes import write_outcomes
from ..evaluation.paired import pairs_of, recovered_interval
from ..files import write_json, write_text
from .markdown import markdown
from .page import run_page
from .plots import plot_five


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "peft", "lm_eval", "flwr", "ray", "fedot-offsite"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def paired(record: dict, outcomes: dict) -> dict:
    """The paired tests of plug-in against zero-shot, the OT emulator and FT, each number's 95% interval from its
    outcomes, and the recovered share's interval."""
    metric, hib = record["metric"], record["higher_is_better"]
    out = {"paired": pairs_of(outcomes, metric, hib), "intervals": intervals_of(outcomes, metric)}
    if record.get("recovered") is not None and all(k in outcomes for k in ("zero_shot", "plugin", "full_finetuned")):
        out["recovered_ci95"] = recovered_interval(outcomes["zero_shot"], outcomes["plugin"],
                                                   outcomes["full_finetuned"], metric)
    return out


def write(out: Path, record: dict, outcomes: dict | None = None, rows: list[dict] | None = None) -> dict:
    """Write results.json, results.md, results.png, report.html (with a federated run's ``rows``) and (given the
    five numbers' per-example ``outcomes``) outcomes.json into ``out`` (each atomically); print the table."""
    out.mkdir(parents=True, exist_ok=True)
    not_finite = {k: repr(v) for k, v in record["numbers"].items() if v is not None and not math.isfinite(v)}
    if not_finite:  # never a NaN in a table: missing, with the value it had
        record = {**record, "numbers": {k: v for k, v in record["numbers"].items() if k not in not_finite},
                  "not_finite": not_finite}
    record = {**record, "conditions": conditions(record["numbers"], record["higher_is_better"]),
              "recovered": recovered(record["numbers"], record["higher_is_better"]),
              "versions": record.get("versions") or versions()}  # a re-rendered run keeps the versions it ran with
    if outcomes:
        write_outcomes(out / "outcomes.json", outcomes)
        record.update(paired(record, outcomes))
    text = markdown(record)
    plot_five(record, out / "results.png")
    write_text(out / "results.md", text)
    write_json(out / "results.json", record)
    run_page(out, record, text, rows)
    print(text)
    return record


DERIVED = ("conditions", "recovered", "paired", "recovered_ci95", "intervals")  # what write() computes


def render(out: Path) -> dict:
    """A finished run's results written again by this fedot from what it stored (results.json, outcomes.json,
    rounds.jsonl): the same numbers, the current tables, tests and intervals (``fedot render RUN_DIR``)."""
    import json

    from ..evaluation.outcomes import read_outcomes

    out = Path(out)
    if not (out / "results.json").exists():
        raise FileNotFoundError(f"{out / 'results.json'} does not exist: render a finished run's directory")
    record = json.loads((out / "results.json").read_text())
    outcomes = read_outcomes(out / "outcomes.json") if (out / "outcomes.json").exists() else None
    rounds = out / "rounds.jsonl"
    rows = [json.loads(line) for line in rounds.read_text().splitlines()] if rounds.exists() else None
    return write(out, {k: v for k, v in record.items() if k not in DERIVED}, outcomes, rows)
