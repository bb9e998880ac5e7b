"""FedAvg accumulated one update at a time.

The server holds one running sum instead of every reply, so its memory does not grow with the number of clients in
a round. Sums are kept in float64: a large (capped) example weight times a float32 update cannot overflow them.
"""

from __future__ import annotations

import torch


class RunningAverage:
    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.total = 0.0
        self.count = 0

    def add(self, update: dict[str, torch.Tensor], weight: float) -> None:
        for k, t in update.items():
            weighted = t.double() * float(weight)
            if k in self.sums:
                self.sums[k] += weighted
            else:
                self.sums[k] = weighted
        self.total += float(weight)
        self.count += 1

    def result(self) -> dict[str, torch.Tensor]:
        if not self.count:
            raise ValueError("no updates to average")
        return {k: (v / self.total).float() for k, v in self.sums.items()}


def weighted_average(updates: list[tuple[dict[str, torch.Tensor], float]]) -> dict[str, torch.Tensor]:
    """FedAvg: the weighted mean of each tensor."""
    acc = RunningAverage()
    for update, n in updates:
        acc.add(update, n)
    return acc.result()


def state_bytes(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def declared_bytes(arrays) -> int:
    """Tensor bytes a Flower ArrayRecord declares in its wire metadata (shape x dtype; nothing decoded)."""
    import numpy as np

    return sum(int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize for a in arrays.values())
