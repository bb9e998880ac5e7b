"""What every run writes: results.json (numbers, conditions, recovered share, versions), results.md, results.png.

The arithmetic is :mod:`fedot.evaluation.five`, the table :mod:`fedot.run.markdown`, the bars :mod:`fedot.run.plots`.
"""

from __future__ import annotations

import platform
from pathlib import Path

from ..evaluation.five import conditions, recovered
from ..files import write_json, write_text
from .markdown import markdown
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


def write(out: Path, record: dict) -> dict:
    """Write results.json, results.md and results.png into ``out`` (each atomically); print the table."""
    out.mkdir(parents=True, exist_ok=True)
    record = {**record, "conditions": conditions(record["numbers"], record["higher_is_better"]),
              "recovered": recovered(record["numbers"], record["higher_is_better"]), "versions": versions()}
    text = markdown(record)
    plot_five(record, out / "results.png")
    write_text(out / "results.md", text)
    write_json(out / "results.json", record)
    print(text)
    return record
