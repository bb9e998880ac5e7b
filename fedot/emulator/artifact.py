"""The emulator artifact: the only thing a data owner ever receives from the model owner.

A plain transformers model directory (loads with ``AutoModelForCausalLM``)
holding the embeddings, the adapter blocks, the kept emulator blocks, the final
norm and the head, plus ``manifest.json`` that records which blocks of the full
model these are. Dropped blocks are never written. A ScaleOT emulator also
holds ``harmonizers.safetensors``: small modules that stand in for the blocks in
``harmonized_layers``. Plain transformers loads the stored blocks only;
``fedot.models.load_model`` inserts the harmonizers where they belong, and the
block numbering below ("local") is that of the model with harmonizers inserted.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..weights import sha256_file

WEIGHTS = "model.safetensors"
HARMONIZERS = "harmonizers.safetensors"
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
        files = [(WEIGHTS, manifest["sha256"])]
        if manifest.get("harmonized_layers"):
            files.append((HARMONIZERS, manifest.get("harmonizers_sha256", "")))
        for name, expected in files:
            if not (path / name).exists():
                raise ArtifactError(f"{path / name} is missing; the artifact is incomplete, rebuild it")
            actual = sha256_file(path / name)
            if actual != expected:
                raise ArtifactError(f"{path / name} has sha256 {actual[:12]}…, manifest says {expected[:12]}…; "
                                    "the artifact is corrupt or was modified, rebuild it")
    return manifest


def stored_layers(manifest: dict) -> list[int]:
    """Full-model index of each block stored in the weights file, in file order."""
    return sorted(set(manifest["adapter_layers"]) | set(manifest["emulator_layers"]))


def layers(manifest: dict) -> list[int]:
    """Full-model index of each block of the loaded emulator (harmonizers included), in forward order."""
    return sorted(set(stored_layers(manifest)) | set(manifest.get("harmonized_layers", [])))


def to_original(manifest: dict) -> dict[int, int]:
    return dict(enumerate(layers(manifest)))


def to_local(manifest: dict) -> dict[int, int]:
    return {orig: local for local, orig in enumerate(layers(manifest))}


def adapter_local(manifest: dict) -> list[int]:
    """Artifact block indices of the adapter blocks (what a data owner trains)."""
    local = to_local(manifest)
    return [local[i] for i in manifest["adapter_layers"]]


def describe(manifest: dict) -> str:
    """One line naming the blocks of each role, for results tables."""
    text = f"{manifest['method']}: adapter {manifest['adapter_layers']}, emulator {manifest['emulator_layers']}"
    if manifest.get("harmonized_layers"):
        text += f", harmonizers {manifest['harmonized_layers']}"
    return text


def write_manifest(path: Path, manifest: dict) -> None:
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
