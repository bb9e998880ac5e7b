"""Which precision a forward pass computes in: autocast to bfloat16 where the hardware does it fast.

On CUDA GPUs with bf16 and on CPUs with AVX-512 BF16 or AMX, bf16 matrix products run about twice as fast as fp32
(measured for distillation in ``bench/distill.py``); elsewhere bf16 is emulated and slower, so ``auto`` keeps fp32.
Trainable tensors stay fp32 under autocast (it casts the inputs of each matrix product, not the weights' storage).
"""

from __future__ import annotations

import contextlib

import torch

AUTOCAST = ("auto", "float32", "bfloat16")


def bf16_fast(device: str | torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices natively."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_autocast(precision: str, device: str | torch.device) -> str:
    """``auto`` -> ``bfloat16`` where it is fast on ``device``, else ``float32``; others as given."""
    if precision not in AUTOCAST:
        raise ValueError(f"precision {precision!r}; choose one of {', '.join(AUTOCAST)}")
    if precision == "auto":
        return "bfloat16" if bf16_fast(device) else "float32"
    return precision


def autocast(precision: str, device: str | torch.device):
    """A context that computes forward passes in ``precision`` (resolved) on ``device``."""
    device = torch.device(device)
    if resolve_autocast(precision, device) == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
