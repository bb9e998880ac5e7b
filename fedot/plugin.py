"""Plug a tuned adapter back into the full model (the model owner's last step).

Tensors are matched by full-model name and folded in as their tuning mode says (``fedot.data_owner.tuning``): a
LoRA update is merged into the original adapter weights (W + scaling * B @ A); a full or BitFit update replaces
them. Anything missing, extra or mis-shaped is an error: a silent fallback would return the un-tuned model and look
like a result.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .architectures import Architecture, architecture
from .data_owner.tuning import TuningError, mode
from .files import atomic_path

_META_KEY = "fedot"


class PluginError(ValueError):
    pass


def adapter_metadata(tuning, manifest: dict, source_model: str, task: str) -> dict:
    """What an adapter file says about itself: its tuning mode (and LoRA factors), its blocks, where it came from."""
    return {**tuning.metadata(), "adapter_blocks": manifest["adapter_blocks"], "source_model": source_model,
            "emulator_id": manifest["id"], "task": task}


def save_adapter(path: str | Path, state: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write an adapter state (float32) with the metadata plug-in needs, atomically."""
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt", _META_KEY: json.dumps(meta)})
    return Path(path)


def load_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"adapter file {path} does not exist; pass the adapter.safetensors a client or a run wrote")
    with safe_open(path, "pt") as f:
        meta = json.loads((f.metadata() or {}).get(_META_KEY, "null"))
        if meta is None:
            raise PluginError(f"{path} has no fedot metadata; it was not written by fedot.plugin.save_adapter")
        return {k: f.get_tensor(k) for k in f.keys()}, meta


def original_adapter(model_dir: str | Path, adapter_blocks: list[int]) -> dict[str, torch.Tensor]:
    """The adapter blocks' weights as the checkpoint stores them, in float32: what a plug-in merges into, so a model
    held in 16 bits rounds the merged weight once rather than its original and then the sum."""
    from .emulator.writer import persistent_names
    from .models import load_config
    from .weights import WeightReader

    config = load_config(model_dir)
    arch, blocks = architecture(config), set(adapter_blocks)
    names, parameters = persistent_names(config)
    reader = WeightReader(model_dir, expected_names=names)
    return {n: reader.get(n).float() for n in sorted(parameters) if arch.block_index(n) in blocks}


def adapter_parameters(model: torch.nn.Module, adapter_blocks: list[int]) -> dict[str, torch.Tensor]:
    """The full model's parameters that belong to adapter blocks, by name (views, not copies)."""
    arch = architecture(model.config)
    blocks = set(adapter_blocks)
    return {n: p for n, p in model.named_parameters() if arch.block_index(n) in blocks}


def merged(base: dict[str, torch.Tensor], update: dict[str, torch.Tensor], meta: dict,
           arch: Architecture) -> dict[str, torch.Tensor]:
    """New values of the adapter tensors touched by ``update`` (float32), given their original values ``base``."""
    try:
        tuning = mode(meta.get("mode"))
        expected = tuning.update_names(arch, list(base), meta)
        missing, unexpected = sorted(expected - set(update)), sorted(set(update) - expected)
        if missing or unexpected:
            raise PluginError(f"adapter does not match the model's adapter blocks ({meta.get('mode')} tuning): "
                              f"missing {missing[:4]}{'…' if len(missing) > 4 else ''}, "
                              f"unexpected {unexpected[:4]}{'…' if len(unexpected) > 4 else ''}")
        return tuning.merge(base, update, meta, arch)
    except TuningError as e:
        raise PluginError(str(e)) from e


def plug_in(model: torch.nn.Module, update: dict[str, torch.Tensor], meta: dict,
            base: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """Write the tuned adapter into ``model`` in place.

    ``base`` holds the original adapter tensors; pass a saved copy when plugging repeatedly into the same model
    (each LoRA update must merge into the original weights, not into the previous round's).
    """
    arch = architecture(model.config)
    params = adapter_parameters(model, meta["adapter_blocks"])
    new = merged(base if base is not None else params, update, meta, arch)
    with torch.no_grad():
        for name, value in new.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    return model


def plugged_model(model: str, adapter: str | Path, dtype=torch.float32, device="cpu"):
    """The full model with an adapter file plugged in (read and checked before the model is loaded)."""
    from .models import load_model, resolve

    update, meta = load_adapter(adapter)
    full = load_model(resolve(model), dtype, device)
    return plug_in(full, update, meta)


def plug_in_dir(model: str, adapter: str | Path, out: str | Path) -> Path:
    """Load the full model, plug in an adapter file and save a normal model directory."""
    from .models import load_tokenizer, resolve

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new --out directory")
    full = plugged_model(model, adapter)
    full.save_pretrained(out)
    load_tokenizer(resolve(model)).save_pretrained(out)
    return out
