"""Round-to-nearest weight quantization of emulator blocks (offsite-tuning Fig. 4 baseline).

Symmetric, one scale per output channel; weights are stored de-quantized so the artifact stays a plain transformers
model while carrying only 2^b levels per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...settings import setting
from . import METHODS, Method


def quantize_rtn(weight: torch.Tensor, bits: int, out_dim: int = 0) -> torch.Tensor:
    """Quantize to ``bits`` with a symmetric per-output-channel scale (``out_dim`` indexes output channels)."""
    qmax = 2 ** (bits - 1) - 1
    w = weight.float().movedim(out_dim, 0)
    scale = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True).clamp(min=1e-12) / qmax
    q = (w / scale).round().clamp(-qmax, qmax)
    return (q * scale).movedim(0, out_dim).to(weight.dtype)


@dataclass
class QuantizeSettings:
    bits: int = setting(4, "quantize: bits per emulator weight (round-to-nearest, per output channel)", ge=2, le=8)


@METHODS.register("quantize", help="round-to-nearest quantization per output channel, stored de-quantized "
                  "(Fig. 4 baseline)", settings=QuantizeSettings)
class Quantize(Method):
    def transform(self, arch):
        out_dim = 1 if arch.fan_in_fan_out else 0
        return lambda name, tensor: quantize_rtn(tensor, self.settings.bits, out_dim)
