"""Progress a person can read: one line per phase, per round and per evaluation, with elapsed and remaining time.

Lines start with :data:`MARK`; ``fedot sim`` shows exactly these lines and sends the rest of Flower's and Ray's
output to ``flower.log`` in the run directory. The estimate of the time left is the mean duration of the rounds so far
(training plus their evaluations) times the rounds still to run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MARK = "fedot |"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def number(value, metric: str) -> str:
    if value is None:
        return "—"
    return f"{value:,.2f}" if "perplexity" in metric or "bits" in metric else f"{100 * value:.1f}%"


class Progress:
    def __init__(self, num_rounds: int, metric: str, emit: Callable[[str], None] = print, start_round: int = 1):
        self.num_rounds, self.metric, self.emit = num_rounds, metric, emit
        self.t0 = self.mark = time.perf_counter()
        self.start_round = start_round
        self.round_seconds: list[float] = []

    def say(self, text: str) -> None:
        self.emit(f"{MARK} {text}")

    def lap(self) -> float:
        now = time.perf_counter()
        seconds, self.mark = now - self.mark, now
        return seconds

    def phase(self, text: str) -> None:
        """A phase that just ended (emulator ready, zero-shot done...), with how long it took."""
        self.say(f"{text} [{duration(self.lap())}]")

    def round_done(self, row: dict, evaluation: dict | None, zero: dict) -> None:
        """``zero``: round 0's evaluation (a curve point is set beside zero-shot on the same first examples)."""
        seconds = self.lap()
        self.round_seconds.append(seconds)
        r = row["round"]
        left = (self.num_rounds - r) * sum(self.round_seconds) / len(self.round_seconds)
        loss = row.get("train_loss")
        text = (f"round {r}/{self.num_rounds}: {len(row.get('accepted', []))} accepted, "
                f"{len(row.get('rejected', []))} rejected" + ("" if row.get("aggregated") else " (not aggregated)")
                + (f", train loss {loss:.3f}" if loss is not None else ""))
        if evaluation:
            n = evaluation.get("curve_examples")
            zero_shot = zero.get("curve", {}).get("zero_shot") if n else zero.get("zero_shot")
            text += (f" | plug-in {number(evaluation.get('plugin'), self.metric)} (zero-shot "
                     f"{number(zero_shot, self.metric)}), OT emulator "
                     f"{number(evaluation.get('emulator_finetuned'), self.metric)}"
                     + (f" on the first {n} examples" if n else ""))
        self.say(f"{text} | {duration(seconds)} | elapsed {duration(time.perf_counter() - self.t0)}, "
                 f"~{duration(left)} left")


def alignment_line(record: dict) -> str:
    """One line for a round's emulator re-alignment."""
    before, after = record["distance_before"]["objective"], record["distance_after"]["objective"]
    return (f"emulator re-aligned ({record['method']}, {record['steps']} steps, {record['owner_seconds']:.1f} s): "
            f"distance {before:.4g} -> {after:.4g}; {len(record['changed_files'])} changed files, "
            f"{record['changed_bytes'] / 2**20:,.1f} MiB")
