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
from ..registry import num_layers
from ..split import sandwich
from .artifact import ArtifactError, adapter_local, layers, read_manifest, to_local, to_original
from .build import build

METHODS = ("uniform",)


def build_emulator(
    model: str,
    out: str | Path | None = None,
    *,
    bottom: int = 2,
    top: int = 2,
    emulator_layers: int | None = None,
    method: str = "uniform",
) -> Path:
    """Build (or reuse, by content key) the emulator of ``model`` and return its directory.

    With ``out=None`` the artifact goes to the cache under a key derived from the
    model and every build parameter, so repeated runs reuse it.
    """
    if method not in METHODS:
        raise ValueError(f"unknown emulator method {method!r}; choose one of {', '.join(METHODS)}")
    model_dir = resolve(model)
    config = load_config(model_dir)
    split = sandwich(num_layers(config), bottom, top, emulator_layers)
    params = {"bottom": bottom, "top": top, "emulator_layers": len(split.emulator)}
    if out is None:
        weights = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(model_dir.glob("*.safetensors"))]
        key = hashlib.sha256(json.dumps([str(model_dir), weights, method, params], sort_keys=True).encode()).hexdigest()[:16]
        out = cache_dir() / "emulators" / key
        if (out / "manifest.json").exists():
            return out
    return build(model_dir, split, out, source_model=model, method=method, params=params)


@dataclass
class EmulatorSpec:
    """What the model owner builds: which model, which split, which compression."""

    model: str = DEFAULT_MODEL
    bottom: int = 2
    top: int = 2
    emulator_layers: int | None = None
    method: str = "uniform"

    def check(self) -> Path:
        """Resolve the model and validate the split from its config alone; returns the model directory."""
        if self.method not in METHODS:
            raise ValueError(f"unknown emulator method {self.method!r}; choose one of {', '.join(METHODS)}")
        model_dir = resolve(self.model)
        sandwich(num_layers(load_config(model_dir)), self.bottom, self.top, self.emulator_layers)
        return model_dir

    def build(self) -> tuple[Path, dict]:
        """Build or reuse the artifact; returns its directory and verified manifest."""
        path = build_emulator(self.model, bottom=self.bottom, top=self.top, emulator_layers=self.emulator_layers,
                              method=self.method)
        return path, read_manifest(path, verify=True)


__all__ = ["EmulatorSpec", "ArtifactError", "adapter_local", "build", "build_emulator", "layers", "read_manifest", "to_local", "to_original", "METHODS"]
