"""Magnitude pruning of emulator blocks (offsite-tuning Fig. 4 baseline): zero the smallest weights.

All middle blocks are kept (the compression is inside each block), unless emulator-blocks also drops some.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...settings import setting
from . import METHODS, Method


def magnitude_prune(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Zero the ``sparsity`` fraction of entries with the smallest magnitude (ties broken by position)."""
    k = int(round(sparsity * weight.numel()))
    if k == 0:
        return weight
    flat = weight.flatten().clone()
    flat[flat.abs().argsort()[:k]] = 0
    return flat.view_as(weight)


@dataclass
class PruneSettings:
    sparsity: float = setting(0.5, "prune: fraction of each emulator weight matrix zeroed (smallest magnitudes)",
                              ge=0, lt=1)


@METHODS.register("prune", help="magnitude pruning of every kept weight matrix (Fig. 4 baseline)",
                  settings=PruneSettings)
class Prune(Method):
    def transform(self, arch):
        return lambda name, tensor: magnitude_prune(tensor, self.settings.sparsity)
