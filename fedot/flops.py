"""Forward + backward FLOPs of one training step, counted from a model's shapes.

A step costs: the forward pass through every linear layer and attention; the
activation gradients through every module from the lowest trainable block
upwards (gradients must reach the bottom adapter, so with a sandwich that is the
whole emulator); and weight gradients only for trainable weights. The ratio of
two variants' counts is the speed-up a perfect implementation could reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .architectures import architecture
from .models import unwrap


@dataclass(frozen=True)
class StepFlops:
    forward: int
    activation_grad: int
    weight_grad: int

    @property
    def total(self) -> int:
        return self.forward + self.activation_grad + self.weight_grad


def _linears(model):
    """(name, in_features, out_features, trainable weight?) of every matmul layer, LoRA factors included."""
    from transformers.pytorch_utils import Conv1D

    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            yield name, m.in_features, m.out_features, m.weight.requires_grad
        elif isinstance(m, Conv1D):  # GPT-2 stores (in, out)
            yield name, m.weight.shape[0], m.weight.shape[1], m.weight.requires_grad


def step_flops(model, seq_len: int, batch: int = 1) -> StepFlops:
    """FLOPs of one training step on ``batch`` sequences of ``seq_len`` tokens (a multiply-add counts 2)."""
    base = unwrap(model)
    arch = architecture(base.config)
    tokens = batch * seq_len
    hidden = base.config.hidden_size
    blocks = len(base.get_submodule(arch.blocks))
    trainable_blocks = [arch.block_index(n.removeprefix("base_model.model."))
                        for n, p in model.named_parameters() if p.requires_grad]
    trainable_blocks = [b for b in trainable_blocks if b is not None]
    lowest = min(trainable_blocks) if trainable_blocks else 0
    fwd = act = wgrad = 0
    for name, fan_in, fan_out, trainable in _linears(model):
        flops = 2 * tokens * fan_in * fan_out
        fwd += flops
        block = arch.block_index(name.removeprefix("base_model.model."))
        if block is None or block >= lowest:  # the head and every block from the lowest trainable one up
            act += flops
        if trainable:
            wgrad += flops
    attention = 4 * batch * seq_len * seq_len * hidden  # QK^T and AV
    fwd += blocks * attention
    act += sum(2 * attention for b in range(blocks) if b >= lowest)
    return StepFlops(fwd, act, wgrad)
