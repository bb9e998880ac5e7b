"""Emulators: the lossy, shareable stand-in for a model's frozen middle.

``build_emulator`` is the model owner's entry point; each compression method
chooses the split and optionally transforms the kept emulator blocks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..models import DEFAULT_MODEL, cache_dir, load_config, resolve
from ..registry import architecture, num_layers
from ..split import sandwich
from . import distill as distill_module
from . import prune, quantize, src
from .artifact import ArtifactError, adapter_local, layers, read_manifest, to_local, to_original
from .build import Transform, build, resave
from .distill import DistillConfig

METHODS = ("uniform", "distill", "prune", "quantize")


def compression(arch, method: str, sparsity: float, bits: int, src_ratio: float) -> Transform | None:
    """The per-tensor compression of emulator blocks: the method's, then SRC on attention weights."""
    if method in ("uniform", "distill") and src_ratio == 0:
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


def method_params(method: str, sparsity: float, bits: int, src_ratio: float, distill: DistillConfig | None = None) -> dict:
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
    if method == "distill":
        distill = distill or DistillConfig()
        distill.check()
        params["distill"] = asdict(distill)
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
    distill: DistillConfig | None = None,
) -> Path:
    """Build (or reuse, by content key) the emulator of ``model`` and return its directory.

    With ``out=None`` the artifact goes to the cache under a key derived from the
    model and every build parameter, so repeated runs reuse it.
    """
    extra = method_params(method, sparsity, bits, src_ratio, distill)
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
    transform = compression(architecture(config), method, sparsity, bits, src_ratio)
    if method != "distill":
        return build(model_dir, split, out, source_model=model, method=method, params=params, transform=transform)
    return _distilled(model_dir, split, Path(out), model, params, transform, distill or DistillConfig())


def _distilled(model_dir, split, out: Path, model: str, params: dict, transform, cfg: DistillConfig) -> Path:
    """Build the layer-dropped emulator, distil its middle against the full model, write the result to ``out``."""
    from ..models import default_device, load_model, load_tokenizer

    start = build(model_dir, split, out.with_name(out.name + ".undistilled"), source_model=model, method="distill",
                  params=params, transform=transform)
    manifest = read_manifest(start)
    device = default_device()
    student, teacher = load_model(start, device=device), load_model(model_dir, device=device)
    record = distill_module.distill(student, teacher, load_tokenizer(start), manifest, cfg)
    del teacher
    result = {k: record[k] for k in ("held_out_mse_before", "held_out_mse_after", "history")}
    manifest = {k: v for k, v in manifest.items() if k != "sha256"}
    path = resave(student, out, start, {**manifest, "params": {**params, "distill_result": result}})
    shutil.rmtree(start)
    return path


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
    distill: DistillConfig = field(default_factory=DistillConfig)  # distill

    def check(self) -> Path:
        """Resolve the model and validate the split from its config alone; returns the model directory."""
        method_params(self.method, self.sparsity, self.bits, self.src_ratio, self.distill)
        model_dir = resolve(self.model)
        sandwich(num_layers(load_config(model_dir)), self.bottom, self.top, self.emulator_layers)
        return model_dir

    def build(self, out: str | Path | None = None) -> tuple[Path, dict]:
        """Build the artifact in ``out`` (default: reuse the cached one); returns its directory and verified manifest."""
        path = build_emulator(self.model, out, bottom=self.bottom, top=self.top, emulator_layers=self.emulator_layers,
                              method=self.method, sparsity=self.sparsity, bits=self.bits, src_ratio=self.src_ratio,
                              distill=self.distill)
        return path, read_manifest(path, verify=True)


__all__ = ["DistillConfig", "EmulatorSpec", "ArtifactError", "adapter_local", "build", "build_emulator", "layers", "read_manifest", "to_local", "to_original", "METHODS"]
