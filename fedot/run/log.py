"""``rounds.jsonl``: one JSON line per round, owned by the ServerApp and written as the run goes.

Each row says who was sampled, which replies were accepted or rejected and why, the learning rate, the bytes that
travelled and the round's evaluation. The whole file is rewritten through a temporary file on every row, so a
crash leaves the previous rows intact, never half a line; a resumed run starts from the rows already there.
An evaluated round's per-example outcomes go beside it, in ``outcomes/r<round>.json``
(:mod:`fedot.evaluation.outcomes`), written before its row.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..evaluation.outcomes import read_outcomes, write_outcomes
from ..files import write_text

ROUNDS = "rounds.jsonl"
OUTCOMES = "outcomes"


class RunDirError(RuntimeError):
    pass


def read_rows(out: Path) -> list[dict]:
    path = Path(out) / ROUNDS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def scored_rows(rows: list[dict]) -> list[dict]:
    """The rows evaluated on the whole split (eval-limit), which the five numbers come from: not a round scored
    only for the per-round curve (eval-curve-limit), nor one that was not evaluated."""
    return [r for r in rows if r.get("evaluation") and "curve_examples" not in r["evaluation"]]


def curve_of(evaluations: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
    """(round, evaluation) pairs as one per-round curve: with eval-curve-limit every point on the curve's first
    examples (a whole-split round by its ``curve``, derived from its outcomes), otherwise as they are."""
    if not any("curve_examples" in e for _, e in evaluations):
        return evaluations
    return [(r, e.get("curve", e)) for r, e in evaluations]


def curve_size(rows: list[dict]) -> int | None:
    """How many first examples a run's per-round curve is on (eval-curve-limit); None: the whole split."""
    return next((r["evaluation"]["curve_examples"] for r in rows
                 if "curve_examples" in (r.get("evaluation") or {})), None)


def round_evaluations(rows: list[dict]) -> dict[int, dict]:
    """Each evaluated round's evaluation as a point of one per-round curve (:func:`curve_of`), by round."""
    return dict(curve_of([(r["round"], r["evaluation"]) for r in rows if r.get("evaluation")]))


class RoundLog:
    def __init__(self, out: Path, rows: list[dict] | None = None, tracker=None):
        self.out = Path(out)
        self.tracker = tracker  # a fedot.run.tracking.Tracking that gets every new row, or None
        self.path = self.out / ROUNDS
        self.rows: list[dict] = list(rows or [])
        self.t0 = time.perf_counter() - (self.rows[-1].get("elapsed_s", 0.0) if self.rows else 0.0)

    def write(self, row: dict, outcomes: dict | None = None) -> dict:
        if outcomes:
            write_outcomes(self.out / OUTCOMES / f"r{row['round']}.json", outcomes)
        row = {**row, "elapsed_s": round(time.perf_counter() - self.t0, 2)}
        self.rows.append(row)
        write_text(self.path, "".join(json.dumps(r, default=str) + "\n" for r in self.rows))
        if self.tracker is not None:
            self.tracker.log_row(row)
        return row

    def outcomes(self) -> dict[str, dict]:
        """The latest per-example outcomes of each of the five numbers (zero-shot from round 0, tuned ones from the
        last round evaluated on the whole split)."""
        out: dict = {}
        for row in scored_rows(self.rows):
            out.update(read_outcomes(self.out / OUTCOMES / f"r{row['round']}.json"))
        return out

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def run_dir(value: str, name: str = "") -> Path:
    """The run's output directory; must be absolute because the SuperLink's working directory is not the user's.

    Empty (a plain ``flwr run``, which does not fill it in): ``$FEDOT_RUNS/<name>``, by default ``~/fedot-runs``.
    """
    value = str(value).strip()
    if not value and name:
        value = str(Path(os.environ.get("FEDOT_RUNS") or "~/fedot-runs").expanduser().resolve() / name)
    if not value or not Path(value).expanduser().is_absolute():
        raise ValueError(f"run-dir must be an absolute path (got {value!r}); pass --run-config \"run-dir='/abs/path'\" "
                         "or use `fedot sim`, which fills it in")
    path = Path(value).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_run(out: Path, resume: bool):
    """The run log to continue and the checkpoint to resume from: an empty log for a new run (refusing a run dir that
    already holds one), or, with ``resume``, the rows up to the last checkpoint."""
    from . import checkpoint

    done = [p.name for p in (out / ROUNDS, out / checkpoint.DIR, out / "results.json") if p.exists()]
    if not resume:
        if done:
            raise RunDirError(f"run dir {out} already holds a run ({', '.join(done)}); continue it with "
                              f"`fedot sim ... --resume --run-dir {out}`, or replace it with --overwrite")
        return RoundLog(out), None
    ck = checkpoint.load(out)
    last = ck.round if ck else 0
    return RoundLog(out, [r for r in read_rows(out) if r["round"] <= last]), ck
