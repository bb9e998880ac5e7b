"""Precision: the dtype frozen weights are stored in, and the autocast forward passes compute in.

Frozen weights may be 16-bit (``dtype``: bfloat16 halves a data owner's emulator and the owner's full model on a GPU)
while the tensors that train stay float32: a model holding both computes every forward pass under autocast to the
16-bit type (:func:`model_autocast`), in training, in validation and in evaluation alike, so no matrix product ever
mixes dtypes. float16 is refused for training (it needs loss scaling, which fedot does not do) and allowed for
evaluation. Separately, distillation may autocast its fp32 models to bf16 where the hardware is fast at it
(:func:`resolve_autocast`: AVX-512 BF16 or AMX CPUs, CUDA GPUs with bf16).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .settings import SettingError, setting

AUTOCAST = ("auto", "float32", "bfloat16")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


def model_autocast(model):
    """Autocast to the model's 16-bit storage dtype when it has one (mixed with float32 trainable tensors, a forward
    pass needs it); nothing for an all-float32 model."""
    low = {p.dtype for p in model.parameters()} & {torch.bfloat16, torch.float16}
    if not low:
        return contextlib.nullcontext()
    return torch.autocast(next(model.parameters()).device.type, dtype=low.pop())


@dataclass
class Precision:
    dtype: str = setting("auto", "dtype of frozen weights (trainable tensors stay float32, forward passes autocast to "
                         "it): auto: bfloat16 on a GPU, float32 on a CPU; float16: evaluation only (training it would "
                         "need loss scaling)", choices=("auto", *DTYPES))

    def torch_dtype(self, device: str | torch.device) -> torch.dtype:
        if self.dtype != "auto":
            return DTYPES[self.dtype]
        if torch.device(device).type == "cuda":  # a plan made without the GPU assumes one with bf16
            old = torch.cuda.is_available() and not torch.cuda.is_bf16_supported()
            return torch.float16 if old else torch.bfloat16
        return torch.float32

    def check_training(self, device: str | torch.device = "cpu") -> None:
        if self.torch_dtype(device) == torch.float16:
            raise SettingError("dtype = 'float16' cannot train here: float16 gradients underflow without loss scaling, "
                               "which fedot does not do; use dtype = 'bfloat16' (or 'float32')")
