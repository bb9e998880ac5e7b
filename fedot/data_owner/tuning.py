"""What a data owner may train: the adapter blocks, fully, with LoRA, or only their biases (BitFit).

The adapter state that leaves a client is exactly the trainable tensors, in float32, named as in the *full* model
(block indices translated through the emulator manifest), so the model owner can plug them in by name. Each tuning
mode is registered in :data:`MODES` with what it makes trainable, which tensor names it returns, and how the model
owner folds them into the full model's weights (``fedot.plugin``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..architectures import Architecture, architecture
from ..settings import setting

_PEFT_PREFIX = "base_model.model."


class TuningError(ValueError):
    pass


class Mode:
    """A tuning mode: which adapter parameters train and how their update merges into the full model."""

    name: ClassVar[str]

    def prepare(self, model, arch: Architecture, blocks: set[int], cfg: TuningConfig):
        selected = 0
        for name, p in model.named_parameters():
            if arch.block_index(name) in blocks and self.trains(name):
                p.requires_grad_(True)
                selected += 1
        if selected == 0:
            raise TuningError(f"no trainable parameters for tuning {self.name!r} in blocks {sorted(blocks)} of this "
                              f"{arch.family} model" + self.empty_hint)
        return model

    empty_hint: ClassVar[str] = ""

    def trains(self, name: str) -> bool:
        return True

    def update_names(self, arch: Architecture, adapter_params: list[str], meta: dict) -> set[str]:
        """The tensor names an adapter file of this mode holds, given the full model's adapter parameter names."""
        return {n for n in adapter_params if self.trains(n)}

    def merge(self, base: dict[str, torch.Tensor], update: dict[str, torch.Tensor], meta: dict, arch: Architecture):
        """New float32 values of the full model's tensors touched by ``update``; ``base`` are the originals."""
        out = {}
        for name, value in update.items():
            if value.shape != base[name].shape:
                raise TuningError(f"{name}: adapter tensor has shape {tuple(value.shape)}, "
                                  f"model has {tuple(base[name].shape)}")
            out[name] = value.float()
        return out

    def describe(self, cfg: TuningConfig) -> dict:
        return {"mode": self.name}


class Full(Mode):
    name = "full"


class BitFit(Mode):
    name = "bitfit"
    empty_hint = "; this family has no bias terms, so BitFit cannot apply: use tuning 'full' or 'lora'"

    def trains(self, name: str) -> bool:
        return name.endswith(".bias")


class LoRA(Mode):
    name = "lora"

    def prepare(self, model, arch: Architecture, blocks: set[int], cfg: TuningConfig):
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=cfg.targets(arch), layers_to_transform=sorted(blocks),
                          layers_pattern=arch.blocks_pattern, fan_in_fan_out=arch.fan_in_fan_out, bias="none")
        return get_peft_model(model, lora)

    def update_names(self, arch: Architecture, adapter_params: list[str], meta: dict) -> set[str]:
        targets = set(meta.get("lora_targets") or arch.lora_targets)
        modules = [n[: -len(".weight")] for n in adapter_params
                   if n.endswith(".weight") and n.split(".")[-2] in targets]
        return {f"{m}.lora_{ab}.weight" for m in modules for ab in "AB"}

    def merge(self, base, update, meta, arch):
        """W + scaling * B @ A (transposed for GPT-2's Conv1D)."""
        scaling, out = float(meta["lora_scaling"]), {}
        for name in sorted(n for n in update if n.endswith(".lora_A.weight")):
            module = name[: -len(".lora_A.weight")]
            a, b, w = update[name].float(), update[f"{module}.lora_B.weight"].float(), base[f"{module}.weight"].float()
            delta = (b @ a) * scaling
            if arch.fan_in_fan_out:
                delta = delta.T
            if delta.shape != w.shape:
                raise TuningError(f"{module}: LoRA product has shape {tuple(delta.shape)}, weight has {tuple(w.shape)}")
            out[f"{module}.weight"] = w + delta
        return out

    def describe(self, cfg: TuningConfig) -> dict:
        return {"mode": self.name, "lora_rank": cfg.lora_rank, "lora_alpha": cfg.alpha, "lora_scaling": cfg.scaling,
                "lora_targets": cfg.target_list}


MODES: dict[str, Mode] = {m.name: m for m in (Full(), LoRA(), BitFit())}


def mode(name: str) -> Mode:
    if name not in MODES:
        raise TuningError(f"adapter metadata has unknown tuning mode {name!r}; expected one of {', '.join(MODES)}")
    return MODES[name]


@dataclass
class TuningConfig:
    mode: str = setting("full", "what a data owner trains in the adapter blocks: every parameter (full), peft LoRA "
                        "(lora) or the biases (bitfit)", choices=tuple(MODES), key="tuning")
    lora_rank: int = setting(4, "LoRA rank (the paper's 4)", ge=1)
    lora_alpha: float = setting(0.0, "LoRA alpha; 0: 2 x rank", ge=0)
    lora_dropout: float = setting(0.0, "LoRA dropout", ge=0, lt=1)
    lora_targets: str = setting("", "comma-separated LoRA target modules; empty: the model family's default")

    @property
    def target_list(self) -> list[str] | None:
        return [t.strip() for t in self.lora_targets.split(",") if t.strip()] or None

    def targets(self, arch: Architecture) -> list[str]:
        return list(self.target_list or arch.lora_targets)

    @property
    def alpha(self) -> float:
        return float(self.lora_alpha or 2 * self.lora_rank)

    @property
    def scaling(self) -> float:
        return self.alpha / self.lora_rank

    def describe(self) -> dict:
        """What plug-in needs to know about the returned tensors (stored in adapter file metadata)."""
        return MODES[self.mode].describe(self)


def canonical(name: str) -> str:
    """A parameter name without peft's wrapping (prefix and adapter name)."""
    if name.startswith(_PEFT_PREFIX):
        name = name[len(_PEFT_PREFIX):]
    return name.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")


def prepare(model: torch.nn.Module, adapter_blocks: list[int], cfg: TuningConfig) -> torch.nn.Module:
    """Freeze everything but the adapter blocks (indices in *this* model's numbering), as the mode says."""
    for p in model.parameters():
        p.requires_grad_(False)
    return MODES[cfg.mode].prepare(model, architecture(model.config), set(adapter_blocks), cfg)


def _arch(model) -> Architecture:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return architecture(base.config)


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


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor],
                         to_local: dict[int, int] | None = None) -> None:
    """Copy a (global) adapter state into the trainable parameters; names and shapes must match exactly."""
    arch = _arch(model)
    params = {canonical(n): p for n, p in model.named_parameters() if p.requires_grad}
    incoming = {arch.rename_block(k, to_local) if to_local is not None else k: v for k, v in state.items()}
    missing, unexpected = sorted(set(params) - set(incoming)), sorted(set(incoming) - set(params))
    if missing or unexpected:
        raise TuningError(f"adapter state does not match the trainable parameters: missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]}")
    with torch.no_grad():
        for name, p in params.items():
            if incoming[name].shape != p.shape:
                raise TuningError(f"{name}: adapter tensor has shape {tuple(incoming[name].shape)}, "
                                  f"model expects {tuple(p.shape)}")
            p.copy_(incoming[name].to(p.dtype))
