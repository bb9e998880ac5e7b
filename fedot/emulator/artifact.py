"""The emulator artifact: the only thing a data owner ever receives from the model owner.

A plain transformers model directory (loads with ``AutoModelForCausalLM``)
holding the embeddings, the adapter blocks, the kept emulator blocks, the final
norm and the head, plus ``manifest.json`` that records which blocks of the full
model these are. Dropped blocks are never written.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..weights import sha256_file

WEIGHTS = "model.safetensors"
MANIFEST = "manifest.json"
REQUIRED_KEYS = ("source_model", "method", "num_layers", "adapter_layers", "emulator_layers", "sha256")


class ArtifactError(ValueError):
    pass


def read_manifest(path: str | Path, verify: bool = False) -> dict:
    path = Path(path)
    file = path / MANIFEST
    if not file.exists():
        raise ArtifactError(f"{path} is not an emulator artifact: {MANIFEST} is missing (build one with `fedot emulator build`)")
    manifest = json.loads(file.read_text())
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ArtifactError(f"{file} lacks {missing}; rebuild the emulator with `fedot emulator build`")
    if verify:
        actual = sha256_file(path / WEIGHTS)
        if actual != manifest["sha256"]:
            raise ArtifactError(f"{path / WEIGHTS} has sha256 {actual[:12]}…, manifest says {manifest['sha256'][:12]}…; the artifact is corrupt or was modified, rebuild it")
    return manifest


def layers(manifest: dict) -> list[int]:
    """Full-model index of each block in the artifact, in artifact order."""
    return sorted(set(manifest["adapter_layers"]) | set(manifest["emulator_layers"]))


def to_original(manifest: dict) -> dict[int, int]:
    return dict(enumerate(layers(manifest)))


def to_local(manifest: dict) -> dict[int, int]:
    return {orig: local for local, orig in enumerate(layers(manifest))}


def adapter_local(manifest: dict) -> list[int]:
    """Artifact block indices of the adapter blocks (what a data owner trains)."""
    local = to_local(manifest)
    return [local[i] for i in manifest["adapter_layers"]]


def write_manifest(path: Path, manifest: dict) -> None:
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
