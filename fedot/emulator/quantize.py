"""Round-to-nearest weight quantization of emulator blocks (the paper's Fig. 4 baseline).

Symmetric, one scale per output channel; weights are stored de-quantized so the
artifact stays a plain transformers model while carrying only 2^b levels per row.
"""

from __future__ import annotations

import torch


def check(bits: int) -> None:
    if not 2 <= bits <= 8:
        raise ValueError(f"quantization bits must be between 2 and 8 (got {bits})")


def quantize_rtn(weight: torch.Tensor, bits: int, out_dim: int = 0) -> torch.Tensor:
    """Quantize to ``bits`` with a symmetric per-output-channel scale (``out_dim`` indexes output channels)."""
    qmax = 2 ** (bits - 1) - 1
    w = weight.float().movedim(out_dim, 0)
    scale = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True).clamp(min=1e-12) / qmax
    q = (w / scale).round().clamp(-qmax, qmax)
    return (q * scale).movedim(0, out_dim).to(weight.dtype)
