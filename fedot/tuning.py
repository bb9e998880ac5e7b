"""What a data owner may train: the adapter blocks, fully, with LoRA, or only their biases (BitFit).

The adapter state that leaves a client is exactly the trainable tensors, in
float32, named as in the *full* model (block indices translated through the
emulator manifest), so the model owner can plug them in by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .registry import Architecture, architecture

MODES = ("full", "lora", "bitfit")
_PEFT_PREFIX = "base_model.model."


class TuningError(ValueError):
    pass


@dataclass
class TuningConfig:
    mode: str = "full"
    lora_rank: int = 4
    lora_alpha: float | None = None  # default: 2 * rank
    lora_dropout: float = 0.0
    lora_targets: list[str] | None = None  # default: the family's entry in the registry

    def __post_init__(self):
        if isinstance(self.lora_targets, str):
            self.lora_targets = [t.strip() for t in self.lora_targets.split(",") if t.strip()] or None
        if self.mode not in MODES:
            raise TuningError(f"tuning mode {self.mode!r} is unknown; choose one of {', '.join(MODES)}")
        if self.mode == "lora" and self.lora_rank < 1:
            raise TuningError(f"LoRA rank must be >= 1 (got {self.lora_rank})")
        if not 0 <= self.lora_dropout < 1:
            raise TuningError(f"LoRA dropout must be in [0, 1) (got {self.lora_dropout})")

    @property
    def alpha(self) -> float:
        return float(self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_rank)

    @property
    def scaling(self) -> float:
        return self.alpha / self.lora_rank

    def describe(self) -> dict:
        """What plug-in needs to know about the returned tensors (stored in adapter file metadata)."""
        d = {"mode": self.mode}
        if self.mode == "lora":
            d.update(lora_rank=self.lora_rank, lora_alpha=self.alpha, lora_scaling=self.scaling, lora_targets=self.lora_targets)
        return d


def canonical(name: str) -> str:
    """A parameter name without peft's wrapping (prefix and adapter name)."""
    if name.startswith(_PEFT_PREFIX):
        name = name[len(_PEFT_PREFIX):]
    return name.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")


def targets(cfg: TuningConfig, arch: Architecture) -> list[str]:
    return list(cfg.lora_targets or arch.lora_targets)


def prepare(model: torch.nn.Module, adapter_blocks: list[int], cfg: TuningConfig) -> torch.nn.Module:
    """Freeze everything but the adapter blocks (indices in *this* model's numbering); wrap with LoRA if asked."""
    arch = architecture(model.config)
    blocks = set(adapter_blocks)
    for p in model.parameters():
        p.requires_grad_(False)
    if cfg.mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.lora_rank,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=targets(cfg, arch),
            layers_to_transform=sorted(blocks),
            layers_pattern=arch.blocks_pattern,
            fan_in_fan_out=arch.fan_in_fan_out,
            bias="none",
        )
        model = get_peft_model(model, lora)
        return model
    selected = 0
    for name, p in model.named_parameters():
        if arch.block_index(name) in blocks and (cfg.mode == "full" or name.endswith(".bias")):
            p.requires_grad_(True)
            selected += 1
    if selected == 0:
        raise TuningError(
            f"no trainable parameters for mode {cfg.mode!r} in blocks {sorted(blocks)} of this {arch.family} model"
            + ("; this family has no bias terms, so BitFit cannot apply: use mode 'full' or 'lora'" if cfg.mode == "bitfit" else "")
        )
    return model


def trainable_state(model: torch.nn.Module, to_original: dict[int, int] | None = None) -> dict[str, torch.Tensor]:
    """The trainable tensors by full-model name, as detached float32 CPU copies."""
    arch = _arch(model)
    state = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = canonical(name)
            if to_original is not None:
                key = arch.rename_block(key, to_original)
            state[key] = p.detach().to("cpu", torch.float32).clone()
    return state


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor], to_local: dict[int, int] | None = None) -> None:
    """Copy a (global) adapter state into the trainable parameters; names and shapes must match exactly."""
    arch = _arch(model)
    params = {canonical(n): p for n, p in model.named_parameters() if p.requires_grad}
    incoming = {arch.rename_block(k, to_local) if to_local is not None else k: v for k, v in state.items()}
    missing, unexpected = sorted(set(params) - set(incoming)), sorted(set(incoming) - set(params))
    if missing or unexpected:
        raise TuningError(f"adapter state does not match the trainable parameters: missing {missing[:5]}, unexpected {unexpected[:5]}")
    with torch.no_grad():
        for name, p in params.items():
            if incoming[name].shape != p.shape:
                raise TuningError(f"{name}: adapter tensor has shape {tuple(incoming[name].shape)}, model expects {tuple(p.shape)}")
            p.copy_(incoming[name].to(p.dtype))


def _arch(model) -> Architecture:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return architecture(base.config)
