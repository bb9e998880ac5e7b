"""Why a client's reply cannot be averaged: checked before it touches the running sum.

A reply that fails any check is dropped with its reason (logged in rounds.jsonl) instead of poisoning the average.
"""

from __future__ import annotations

import math

import torch


def reject_reason(update: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], num_examples) -> str | None:
    """Why a client's update cannot be averaged, or None if it can."""
    if isinstance(num_examples, bool) or not isinstance(num_examples, (int, float)) or not num_examples > 0 \
            or not math.isfinite(num_examples):
        return f"num-examples must be a positive number, got {num_examples!r}"
    missing, extra = sorted(set(reference) - set(update)), sorted(set(update) - set(reference))
    if missing or extra:
        return f"tensor names differ from the global adapter (missing {missing[:3]}, unexpected {extra[:3]})"
    for name, ref in reference.items():
        t = update[name]
        if tuple(t.shape) != tuple(ref.shape):
            return f"{name} has shape {tuple(t.shape)}, expected {tuple(ref.shape)}"
        if t.dtype != ref.dtype:
            return f"{name} has dtype {t.dtype}, expected {ref.dtype}"
        if not torch.isfinite(t).all():
            return f"{name} contains NaN or Inf"
    return None
