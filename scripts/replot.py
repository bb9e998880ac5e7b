"""Redraw a run directory's plots (and a single-site run's results.md) from its results.json and rounds.jsonl."""

import json
import sys
from pathlib import Path

from fedot.run.markdown import markdown
from fedot.run.plots import plot_five, plot_rounds

for run in map(Path, sys.argv[1:]):
    record = json.loads((run / "results.json").read_text())
    plot_five(record, run / "results.png")
    if (run / "rounds.jsonl").exists():
        rows = [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]
        plot_rounds(rows, record["metric"], run / "rounds.png")
    else:
        (run / "results.md").write_text(markdown(record))
    print(f"replotted {run}")
