"""What a data owner may train: the adapter blocks, fully, with LoRA, or only their biases (BitFit).

The adapter state that leaves a client is exactly the trainable tensors, in float32, named as in the *full* model
(block indices translated through the emulator manifest), so the model owner can plug them in by name. Each
tuning mode is registered in :data:`TUNING_MODES` with what it makes trainable, which tensor names it returns, and
how the model owner folds them into the full model's weights (``fedot.plugin``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..architectures import Architecture, architecture
from ..models import unwrap
from ..registry import Registry
from ..settings import Choice, registry_group, selector, setting

_PEFT_PREFIX = "base_model.model."


class TuningError(ValueError):
    pass


class TuningMode:
    """A tuning mode: which adapter parameters train and how their update merges into the full model."""

    empty_hint: ClassVar[str] = ""

    def prepare(self, model, arch: Architecture, blocks: set[int], cfg: TuningConfig):
        selected = 0
        for name, p in model.named_parameters():
            if arch.block_index(name) in blocks and self.trains(name):
                p.requires_grad_(True)
                selected += 1
        if selected == 0:
            raise TuningError(f"no trainable parameters for tuning {cfg.mode!r} in blocks {sorted(blocks)} of this "
                              f"{arch.family} model" + self.empty_hint)
        return model

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

    def metadata(self, cfg: TuningConfig) -> dict:
        return {"mode": cfg.mode}


TUNING_MODES: Registry[TuningMode] = Registry("tuning mode")
TUNING_MODES.register("full", TuningMode(), help="every parameter of the adapter blocks")


@dataclass
class LoraSettings:
    rank: int = setting(4, "LoRA rank (the paper's 4)", ge=1)
    alpha: float = setting(0.0, "LoRA alpha; 0: 2 x rank", ge=0)
    dropout: float = setting(0.0, "LoRA dropout", ge=0, lt=1)
    targets: str = setting("", "comma-separated LoRA target modules; empty: the model family's default")

    @property
    def target_list(self) -> list[str] | None:
        return [t.strip() for t in self.targets.split(",") if t.strip()] or None

    def modules(self, arch: Architecture) -> list[str]:
        return list(self.target_list or arch.lora_targets)

    @property
    def alpha_value(self) -> float:
        return float(self.alpha or 2 * self.rank)

    @property
    def scaling(self) -> float:
        return self.alpha_value / self.rank


class LoRA(TuningMode):
    def prepare(self, model, arch: Architecture, blocks: set[int], cfg: TuningConfig):
        from peft import LoraConfig, get_peft_model

        o = cfg.options["lora"]
        lora = LoraConfig(r=o.rank, lora_alpha=o.alpha_value, lora_dropout=o.dropout, target_modules=o.modules(arch),
                          layers_to_transform=sorted(blocks), layers_pattern=arch.blocks_pattern,
                          fan_in_fan_out=arch.fan_in_fan_out, bias="none")
        return get_peft_model(model, lora)

    def update_names(self, arch: Architecture, adapter_params: list[str], meta: dict) -> set[str]:
        targets = set(meta.get("lora_targets") or arch.lora_targets)
        modules = [n[: -len(".weight")] for n in adapter_params
                   if n.endswith(".weight") and n.split(".")[-2] in targets]
        return {f"{m}.lora_{ab}.weight" for m in modules for ab in "AB"}

    def merge(self, base, update, meta, arch):
        """W + scaling * B @ A (transposed for GPT-2's Conv1D), computed in float32 on the weight's device."""
        scaling, out = float(meta["lora_scaling"]), {}
        for name in sorted(n for n in update if n.endswith(".lora_A.weight")):
            module = name[: -len(".lora_A.weight")]
            w = base[f"{module}.weight"].float()
            a, b = (update[f"{module}.lora_{x}.weight"].to(w.device, torch.float32) for x in "AB")
            delta = (b @ a) * scaling
            if arch.fan_in_fan_out:
                delta = delta.T
            if delta.shape != w.shape:
                raise TuningError(f"{module}: LoRA product has shape {tuple(delta.shape)}, weight has {tuple(w.shape)}")
            out[f"{module}.weight"] = w + delta
        return out

    def metadata(self, cfg: TuningConfig) -> dict:
        o = cfg.options["lora"]
        return {"mode": cfg.mode, "lora_rank": o.rank, "lora_alpha": o.alpha_value, "lora_scaling": o.scaling,
                "lora_targets": o.target_list}


TUNING_MODES.register("lora", LoRA(), help="peft LoRA on the adapter blocks", settings=LoraSettings)


class BitFit(TuningMode):
    empty_hint = "; this family has no bias terms, so BitFit cannot apply: use tuning 'full' or 'lora'"

    def trains(self, name: str) -> bool:
        return name.endswith(".bias")


TUNING_MODES.register("bitfit", BitFit(), help="only the adapter blocks' biases (BitFit)")


def mode(name: str) -> TuningMode:
    """The tuning mode an adapter file's metadata names."""
    try:
        return TUNING_MODES[name]
    except ValueError as e:
        raise TuningError(f"adapter metadata: {e}") from None


@dataclass
class TuningConfig(Choice):
    mode: str = selector(TUNING_MODES, "full", "what a data owner trains in the adapter blocks", key="tuning")
    options: dict = registry_group(TUNING_MODES.settings_groups, prefix="")

    def metadata(self) -> dict:
        """What plug-in needs to know about the returned tensors (stored in adapter file metadata)."""
        return TUNING_MODES[self.mode].metadata(self)


def canonical(name: str) -> str:
    """A parameter name without peft's wrapping (prefix and adapter name)."""
    if name.startswith(_PEFT_PREFIX):
        name = name[len(_PEFT_PREFIX):]
    return name.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")


def prepare(model: torch.nn.Module, adapter_blocks: list[int], cfg: TuningConfig) -> torch.nn.Module:
    """Freeze everything but the adapter blocks (indices in *this* model's numbering), as the mode says."""
    for p in model.parameters():
        p.requires_grad_(False)
    return TUNING_MODES[cfg.mode].prepare(model, architecture(model.config), set(adapter_blocks), cfg)


def _arch(model) -> Architecture:
    return architecture(unwrap(model).config)


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


def load_tunable(path, cfg: TuningConfig, dtype=torch.float32, device="cpu", expected_id: str | None = None):
    """The data owner's model: the emulator artifact at ``path`` with only its adapter trainable, and the manifest."""
    from ..emulator import adapter_local, load_emulator

    model, manifest = load_emulator(path, dtype, device, expected_id=expected_id)
    return prepare(model, adapter_local(manifest), cfg), manifest
