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
from ..split import Split, sandwich
from . import distill as distill_module
from . import prune, quantize, scaleot, src
from .artifact import ArtifactError, adapter_local, layers, read_manifest, to_local, to_original
from .build import Transform, build, resave
from .distill import DistillConfig
from .scaleot import LayerReplaceConfig

METHODS = ("uniform", "distill", "scaleot", "prune", "quantize")
_SRC_DEFAULT = {"scaleot": 0.8}  # beta when not given: the paper's default for ScaleOT, off otherwise


def compression(arch, method: str, sparsity: float, bits: int, src_ratio: float) -> Transform | None:
    """The per-tensor compression of emulator blocks: the method's, then SRC on attention weights."""
    if method not in ("prune", "quantize") and src_ratio == 0:
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
    bottom: int = 2  # sandwich methods (all but scaleot)
    top: int = 2
    emulator_layers: int | None = None
    method: str = "uniform"
    sparsity: float = 0.5  # prune
    bits: int = 4  # quantize
    src_ratio: float | None = None  # SRC beta on kept emulator blocks' attention (any method; None: the method's default)
    distill: DistillConfig = field(default_factory=DistillConfig)  # distill
    n_adapter: int = 4  # scaleot: N_a adapter blocks, chosen by importance
    alpha: float = 0.25  # scaleot: fraction of all blocks replaced by harmonizers
    importance: str = ""  # scaleot: directory from `fedot emulator importance`; empty: learn (and cache) it
    layer_replace: LayerReplaceConfig = field(default_factory=LayerReplaceConfig)  # scaleot, when learning

    @property
    def beta(self) -> float:
        return _SRC_DEFAULT.get(self.method, 0.0) if self.src_ratio is None else self.src_ratio

    def params(self) -> dict:
        """Check and return the parameters that matter for the method (recorded in the manifest)."""
        if self.method not in METHODS:
            raise ValueError(f"unknown emulator method {self.method!r}; choose one of {', '.join(METHODS)}")
        src.check(self.beta)
        params = {"src_ratio": self.beta}
        if self.method == "prune":
            prune.check(self.sparsity)
            params["sparsity"] = self.sparsity
        if self.method == "quantize":
            quantize.check(self.bits)
            params["bits"] = self.bits
        if self.method == "distill":
            self.distill.check()
            params["distill"] = asdict(self.distill)
        if self.method == "scaleot":
            if not self.importance:  # with stored scores, their own groups are checked in split()
                scaleot.policy.check(self.n_adapter, self.layer_replace.n_groups, self.alpha)
                self.layer_replace.check()
            params.update(n_adapter=self.n_adapter, alpha=self.alpha)
        return params

    def split(self, n: int, record: dict | None = None) -> tuple[Split, list[int]]:
        """The split of a model of ``n`` blocks, and the blocks harmonizers replace (scaleot only).

        Without an importance ``record`` a scaleot split is checked with equal
        scores, which fails exactly when the real selection would (N_a, alpha, groups).
        """
        if self.method != "scaleot":
            return sandwich(n, self.bottom, self.top, self.emulator_layers), []
        if record is None:
            record = {"scores": [0.0] * n, "groups": scaleot.groups(n, self.layer_replace.n_groups)}
        chosen = scaleot.select(record["scores"], record["groups"], self.n_adapter, self.alpha)
        return Split(n, tuple(chosen["adapter"]), tuple(chosen["emulator"])).validate(), chosen["harmonized"]

    def check(self) -> Path:
        """Resolve the model and validate everything that can be from its config alone; returns the model directory."""
        self.params()
        model_dir = resolve(self.model)
        n = num_layers(load_config(model_dir))
        self.split(n, scaleot.read_importance(self.importance, n) if self.method == "scaleot" and self.importance else None)
        return model_dir

    def build(self, out: str | Path | None = None) -> tuple[Path, dict]:
        """Build the artifact in ``out`` (default: reuse the cached one); returns its directory and verified manifest."""
        path = _build(self, out)
        return path, read_manifest(path, verify=True)


def build_emulator(model: str, out: str | Path | None = None, **spec) -> Path:
    """Build (or reuse, by content key) the emulator of ``model``; ``spec`` are :class:`EmulatorSpec` fields.

    With ``out=None`` the artifact goes to the cache under a key derived from the
    model and every build parameter, so repeated runs reuse it.
    """
    return _build(EmulatorSpec(model, **spec), out)


def _build(spec: EmulatorSpec, out: str | Path | None) -> Path:
    params = spec.params()
    model_dir = resolve(spec.model)
    config = load_config(model_dir)
    n = num_layers(config)
    record = importance = None
    if spec.method == "scaleot":
        importance = Path(spec.importance) if spec.importance else scaleot.importance_for(
            model_dir, spec.model, spec.layer_replace, cache_dir())
        record = scaleot.read_importance(importance, n)
        params.update(n_groups=len(record["groups"]), importance_dir=str(importance),
                      importance_scores=record["scores"], layer_replace=record["config"])
    split, harmonized = spec.split(n, record)
    if spec.method != "scaleot":
        params.update(bottom=spec.bottom, top=spec.top, emulator_layers=len(split.emulator))
    if out is None:
        weights = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(model_dir.glob("*.safetensors"))]
        key = hashlib.sha256(json.dumps([str(model_dir), weights, spec.method, params], sort_keys=True).encode()).hexdigest()[:16]
        out = cache_dir() / "emulators" / key
        if (out / "manifest.json").exists():
            return out
    transform = compression(architecture(config), spec.method, spec.sparsity, spec.bits, spec.beta)
    if spec.method == "distill":
        return _distilled(model_dir, split, Path(out), spec.model, params, transform, spec.distill)
    harmonizers = scaleot.load_harmonizers(importance / scaleot.HARMONIZERS, config, harmonized) if harmonized else None
    return build(model_dir, split, out, source_model=spec.model, method=spec.method, params=params, transform=transform,
                 harmonizers=harmonizers)


__all__ = ["DistillConfig", "EmulatorSpec", "LayerReplaceConfig", "ArtifactError", "adapter_local", "build", "build_emulator", "layers", "read_manifest", "to_local", "to_original", "METHODS"]
