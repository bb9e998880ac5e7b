"""The clients' learning rate across rounds: a registered schedule of the training progress (round 1 -> 0, last -> 1).

``cosine`` decays to ``final_ratio`` x lr by the last round, as a single run's cosine schedule would over its steps.
"""

from __future__ import annotations

import math

FINAL_RATIO = 0.1

SCHEDULES = {
    "constant": lambda progress: 1.0,
    "cosine": lambda progress: FINAL_RATIO + (1 - FINAL_RATIO) * 0.5 * (1 + math.cos(math.pi * progress)),
}


def lr_at(round_: int, num_rounds: int, lr: float, schedule: str = "constant") -> float:
    """Client learning rate for a round (rounds count from 1)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    progress = (round_ - 1) / (num_rounds - 1) if num_rounds > 1 else 0.0
    return lr * SCHEDULES[schedule](progress)
