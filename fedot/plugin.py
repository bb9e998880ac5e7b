"""Plug a tuned adapter back into the full model (the model owner's last step).

Tensors are matched by full-model name. A LoRA update is merged into the
original adapter weights (W + scaling * B @ A); a full or BitFit update replaces
them. Anything missing, extra or mis-shaped is an error: a silent fallback would
return the un-tuned model and look like a result.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .registry import Architecture, architecture

_META_KEY = "fedot"


class PluginError(ValueError):
    pass


def save_adapter(path: str | Path, state: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write an adapter state (float32) with the metadata plug-in needs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    save_file(tensors, path, metadata={"format": "pt", _META_KEY: json.dumps(meta)})
    return path


def load_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"adapter file {path} does not exist; pass the adapter.safetensors a client or a run wrote")
    with safe_open(path, "pt") as f:
        meta = json.loads((f.metadata() or {}).get(_META_KEY, "null"))
        if meta is None:
            raise PluginError(f"{path} has no fedot metadata; it was not written by fedot.plugin.save_adapter")
        return {k: f.get_tensor(k) for k in f.keys()}, meta


def adapter_parameters(model: torch.nn.Module, adapter_layers: list[int]) -> dict[str, torch.Tensor]:
    """The full model's parameters that belong to adapter blocks, by name (views, not copies)."""
    arch = architecture(model.config)
    blocks = set(adapter_layers)
    return {n: p for n, p in model.named_parameters() if arch.block_index(n) in blocks}


def expected_update_names(arch: Architecture, adapter_params: list[str], meta: dict) -> set[str]:
    mode = meta.get("mode")
    if mode == "full":
        return set(adapter_params)
    if mode == "bitfit":
        return {n for n in adapter_params if n.endswith(".bias")}
    if mode == "lora":
        targets = set(meta.get("lora_targets") or arch.lora_targets)
        modules = [n[: -len(".weight")] for n in adapter_params if n.endswith(".weight") and n.split(".")[-2] in targets]
        return {f"{m}.lora_{ab}.weight" for m in modules for ab in "AB"}
    raise PluginError(f"adapter metadata has unknown mode {mode!r}; expected full, lora or bitfit")


def merged(base: dict[str, torch.Tensor], update: dict[str, torch.Tensor], meta: dict, arch: Architecture) -> dict[str, torch.Tensor]:
    """New values of the adapter tensors touched by ``update`` (float32), given their original values ``base``."""
    expected = expected_update_names(arch, list(base), meta)
    missing, unexpected = sorted(expected - set(update)), sorted(set(update) - expected)
    if missing or unexpected:
        raise PluginError(
            f"adapter does not match the model's adapter blocks ({meta.get('mode')} mode): "
            f"missing {missing[:4]}{'…' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}{'…' if len(unexpected) > 4 else ''}"
        )
    out = {}
    if meta["mode"] != "lora":
        for name, value in update.items():
            if value.shape != base[name].shape:
                raise PluginError(f"{name}: adapter tensor has shape {tuple(value.shape)}, model has {tuple(base[name].shape)}")
            out[name] = value.float()
        return out
    scaling = float(meta["lora_scaling"])
    for name in sorted(n for n in update if n.endswith(".lora_A.weight")):
        module = name[: -len(".lora_A.weight")]
        a, b, w = update[name].float(), update[f"{module}.lora_B.weight"].float(), base[f"{module}.weight"].float()
        delta = (b @ a) * scaling
        if arch.fan_in_fan_out:
            delta = delta.T
        if delta.shape != w.shape:
            raise PluginError(f"{module}: LoRA product has shape {tuple(delta.shape)}, weight has {tuple(w.shape)}")
        out[f"{module}.weight"] = w + delta
    return out


def plug_in(model: torch.nn.Module, update: dict[str, torch.Tensor], meta: dict,
            base: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """Write the tuned adapter into ``model`` in place.

    ``base`` holds the original adapter tensors; pass a saved copy when plugging
    repeatedly into the same model (each LoRA update must merge into the
    original weights, not into the previous round's).
    """
    arch = architecture(model.config)
    params = adapter_parameters(model, meta["adapter_layers"])
    new = merged(base if base is not None else params, update, meta, arch)
    with torch.no_grad():
        for name, value in new.items():
            params[name].copy_(value.to(params[name].dtype))
    return model


def plug_in_dir(model: str, adapter: str | Path, out: str | Path) -> Path:
    """Load the full model, plug in an adapter file and save a normal model directory."""
    from .models import load_model, load_tokenizer, resolve

    update, meta = load_adapter(adapter)  # read and check before loading the full model
    model_dir = resolve(model)
    full = load_model(model_dir)
    plug_in(full, update, meta)
    out = Path(out)
    full.save_pretrained(out)
    load_tokenizer(model_dir).save_pretrained(out)
    return out
