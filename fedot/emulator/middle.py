"""The emulator's middle: which hidden state leaves it, which parameters are its own, and how far it is from the full
model's middle. Shared by everything the owner trains the emulator with (distillation, per-round alignment).

A sandwich emulator (bottom and top adapter blocks around kept middle blocks) and the full model share their bottom
blocks, so both see the same hidden state entering the middle; offsite-tuning's Eq. 1 compares what leaves it.
"""

from __future__ import annotations

import torch

from ..architectures import architecture
from ..models import unwrap
from .artifact import to_local


def middle_indices(manifest: dict) -> tuple[int, int]:
    """(emulator index, full-model index) into ``hidden_states`` just after the middle; needs a sandwich adapter."""
    n, adapter = manifest["num_blocks"], sorted(manifest["adapter_blocks"])
    bottom = sum(1 for i in adapter if i < min(manifest["emulator_blocks"], default=n))
    top = len(adapter) - bottom
    if adapter != list(range(bottom)) + list(range(n - top, n)):
        raise ValueError(f"training the emulator's middle needs a sandwich adapter (bottom and top blocks); this "
                         f"split has adapter blocks {adapter}")
    return bottom + len(manifest["emulator_blocks"]), n - top


def middle_parameters(model, manifest: dict) -> dict[str, torch.Tensor]:
    """The emulator's middle-block parameters by name (what distillation and alignment train); a peft-wrapped model's
    by its base model's names, which are the artifact's tensor names."""
    base = unwrap(model)
    arch, middle = architecture(base.config), {to_local(manifest)[i] for i in manifest["emulator_blocks"]}
    return {n: p for n, p in base.named_parameters() if arch.block_index(n) in middle}


def normalised_mse(target: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Eq. 1's distance: the mean squared error of ``hidden`` against ``target``, in units of the target's RMS."""
    target = target.float()
    return ((target - hidden.float()) / target.pow(2).mean().sqrt()).pow(2).mean()


def token_normalised_mse(target: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Each position's squared error in units of that position's own target energy, averaged over positions.

    Why: Llama-family models put a massive activation on the first position (the attention sink): in SmolLM2-135M the
    hidden state leaving the middle has an RMS of ~991 there against a median of ~28 elsewhere, 0.834 of a 256-token
    sequence's energy (bench/results/sink.json). Eq. 1's single global RMS then weighs that one position more than
    all the others together. A pre-norm top block sees each position through its own RMSNorm, so each position's
    relative error is what reaches it. What this changes at an equal budget: docs/results/distillation.md.
    """
    target, hidden = target.float(), hidden.float()
    return ((target - hidden).pow(2).sum(-1) / target.pow(2).sum(-1).clamp_min(1e-12)).mean()


KD_DISTANCES = {"global": normalised_mse, "token": token_normalised_mse}  # the emulator-distill-kd-distance choices
