"""Emulators: the lossy, shareable stand-in for a model's frozen middle.

``build_emulator`` is the model owner's entry point; each compression method
chooses the split and optionally transforms the kept emulator blocks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..models import DEFAULT_MODEL, cache_dir, load_config, resolve
from ..registry import architecture, num_layers
from ..split import sandwich
from . import prune, quantize, src
from .artifact import ArtifactError, adapter_local, layers, read_manifest, to_local, to_original
from .build import Transform, build

METHODS = ("uniform", "prune", "quantize")


def compression(arch, method: str, sparsity: float, bits: int, src_ratio: float) -> Transform | None:
    """The per-tensor compression of emulator blocks: the method's, then SRC on attention weights."""
    if method == "uniform" and src_ratio == 0:
        return None

    def transform(name, tensor):
        if tensor.dim() != 2:  # norms and biases stay exact
            return tensor
        if method == "prune":
            tensor = prune.magnitude_prune(tensor, sparsity)
        elif method == "quantize":
            tensor = quantize.quantize_rtn(tensor, bits, out_dim=1 if arch.fan_in_fan_out else 0)
        if src_ratio and arch.is_attention_weight(name):
            tensor = src.truncate_rank(tensor, src_ratio)
        return tensor

    return transform


def method_params(method: str, sparsity: float, bits: int, src_ratio: float) -> dict:
    """Check and return the parameters that matter for ``method`` (recorded in the manifest)."""
    if method not in METHODS:
        raise ValueError(f"unknown emulator method {method!r}; choose one of {', '.join(METHODS)}")
    src.check(src_ratio)
    params = {"src_ratio": src_ratio}
    if method == "prune":
        prune.check(sparsity)
        params["sparsity"] = sparsity
    if method == "quantize":
        quantize.check(bits)
        params["bits"] = bits
    return params


def build_emulator(
    model: str,
    out: str | Path | None = None,
    *,
    bottom: int = 2,
    top: int = 2,
    emulator_layers: int | None = None,
    method: str = "uniform",
    sparsity: float = 0.5,
    bits: int = 4,
    src_ratio: float = 0.0,
) -> Path:
    """Build (or reuse, by content key) the emulator of ``model`` and return its directory.

    With ``out=None`` the artifact goes to the cache under a key derived from the
    model and every build parameter, so repeated runs reuse it.
    """
    extra = method_params(method, sparsity, bits, src_ratio)
    model_dir = resolve(model)
    config = load_config(model_dir)
    split = sandwich(num_layers(config), bottom, top, emulator_layers)
    params = {"bottom": bottom, "top": top, "emulator_layers": len(split.emulator), **extra}
    if out is None:
        weights = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(model_dir.glob("*.safetensors"))]
        key = hashlib.sha256(json.dumps([str(model_dir), weights, method, params], sort_keys=True).encode()).hexdigest()[:16]
        out = cache_dir() / "emulators" / key
        if (out / "manifest.json").exists():
            return out
    return build(model_dir, split, out, source_model=model, method=method, params=params,
                 transform=compression(architecture(config), method, sparsity, bits, src_ratio))


@dataclass
class EmulatorSpec:
    """What the model owner builds: which model, which split, which compression."""

    model: str = DEFAULT_MODEL
    bottom: int = 2
    top: int = 2
    emulator_layers: int | None = None
    method: str = "uniform"
    sparsity: float = 0.5  # prune
    bits: int = 4  # quantize
    src_ratio: float = 0.0  # SRC beta on the kept emulator blocks' attention (any method)

    def check(self) -> Path:
        """Resolve the model and validate the split from its config alone; returns the model directory."""
        method_params(self.method, self.sparsity, self.bits, self.src_ratio)
        model_dir = resolve(self.model)
        sandwich(num_layers(load_config(model_dir)), self.bottom, self.top, self.emulator_layers)
        return model_dir

    def build(self) -> tuple[Path, dict]:
        """Build or reuse the artifact; returns its directory and verified manifest."""
        path = build_emulator(self.model, bottom=self.bottom, top=self.top, emulator_layers=self.emulator_layers,
                              method=self.method, sparsity=self.sparsity, bits=self.bits, src_ratio=self.src_ratio)
        return path, read_manifest(path, verify=True)


__all__ = ["EmulatorSpec", "ArtifactError", "adapter_local", "build", "build_emulator", "layers", "read_manifest", "to_local", "to_original", "METHODS"]
