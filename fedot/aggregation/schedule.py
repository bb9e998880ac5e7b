"""The clients' learning rate across rounds: a registered schedule of the training progress (round 1 -> 0, last -> 1).

``cosine`` decays to ``final_ratio`` x lr by the last round, as a single run's cosine schedule would over its steps.
"""

from __future__ import annotations

import math

from ..registry import Registry

FINAL_RATIO = 0.1

SCHEDULES: Registry = Registry("learning-rate schedule")
SCHEDULES.register("constant", lambda progress: 1.0, help="the same rate every round")
SCHEDULES.register("cosine", lambda p: FINAL_RATIO + (1 - FINAL_RATIO) * 0.5 * (1 + math.cos(math.pi * p)),
                   help=f"cosine decay to {FINAL_RATIO:g} x lr by the last round")


def lr_at(round_: int, num_rounds: int, lr: float, schedule: str = "constant") -> float:
    """Client learning rate for a round (rounds count from 1)."""
    progress = (round_ - 1) / (num_rounds - 1) if num_rounds > 1 else 0.0
    return lr * SCHEDULES[schedule](progress)
