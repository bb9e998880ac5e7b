"""Magnitude pruning of emulator blocks (the paper's Fig. 4 baseline): zero the smallest weights."""

from __future__ import annotations

import torch


def check(sparsity: float) -> None:
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1) (got {sparsity})")


def magnitude_prune(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Zero the ``sparsity`` fraction of entries with the smallest magnitude (ties broken by position)."""
    k = int(round(sparsity * weight.numel()))
    if k == 0:
        return weight
    flat = weight.flatten().clone()
    flat[flat.abs().argsort()[:k]] = 0
    return flat.view_as(weight)
