"""Selective Rank Compression (ScaleOT Eqs. 6-7, 11): truncated SVD of attention projections.

Only attention weights are compressed: ScaleOT finds that MHSA tolerates rank loss at the owner's site (plug-in)
while hurting the emulator, which widens the privacy gap. It composes with any method (``emulator-src-ratio``).
"""

from __future__ import annotations

import torch


def kept_rank(shape: tuple[int, int], ratio: float) -> int:
    """Rank kept when a fraction ``ratio`` (beta) of the full rank is removed; at least 1."""
    return max(1, int(round((1 - ratio) * min(shape))))


def truncate_rank(weight: torch.Tensor, ratio: float) -> torch.Tensor:
    """The best rank-r approximation of ``weight`` (Eckart-Young), r = kept_rank(weight.shape, ratio)."""
    if ratio == 0:
        return weight
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)  # float64: no residue above rank r
    r = kept_rank(tuple(weight.shape), ratio)
    return ((u[:, :r] * s[:r]) @ vh[:r]).to(weight.dtype)
