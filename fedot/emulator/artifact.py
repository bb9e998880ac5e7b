"""The emulator artifact: the only thing a data owner ever receives from the model owner.

A plain transformers model directory (loads with ``AutoModelForCausalLM``) holding the embeddings, the adapter
blocks, the kept emulator blocks, the final norm and the head, plus ``manifest.json`` that records which blocks of
the full model these are. Dropped blocks are never written. A method may write more (ScaleOT writes modules that
stand in for the blocks in ``harmonized_blocks``, :meth:`fedot.emulator.methods.Method.write_extra`); plain
transformers loads the stored blocks only, :func:`fedot.emulator.loader.load_emulator` lets the method complete the
model, and the block numbering called "local" below is that of the completed model.

Integrity: the manifest lists the sha256 of every other file of the artifact (weights, harmonizers, config,
tokenizer), and the artifact's identity is the sha256 of ``manifest.json`` itself. Checking that one hash and then
every listed file (and that no other file is present) verifies the whole directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..weights import sha256_file

FORMAT = 2
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"  # the per-block layout (fedot.emulator.shards): tensor -> file
MANIFEST = "manifest.json"
REQUIRED_KEYS = ("format", "source_model", "method", "params", "family", "num_blocks", "adapter_blocks",
                 "emulator_blocks", "lossless", "files")


class ArtifactError(ValueError):
    pass


def artifact_id(path: str | Path) -> str:
    """The artifact's identity: the sha256 of its manifest, which lists the sha256 of every other file."""
    return sha256_file(Path(path) / MANIFEST)


def write_manifest(path: Path, manifest: dict) -> str:
    """Hash every file in ``path`` into the manifest, write it, and return the artifact id."""
    files = {f.name: sha256_file(f) for f in sorted(path.iterdir()) if f.is_file() and f.name != MANIFEST}
    record = {**{k: v for k, v in manifest.items() if k not in ("id", "files")}, "format": FORMAT, "files": files}
    (path / MANIFEST).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return artifact_id(path)


def read_manifest(path: str | Path, verify: bool = False, expected_id: str | None = None,
                  digests: dict[str, str] | None = None) -> dict:
    """The manifest (with its ``id``); ``verify`` checks every file, ``expected_id`` the artifact's identity;
    ``digests``: sha256 of files already computed as they were written (not read again)."""
    path = Path(path)
    file = path / MANIFEST
    if not file.exists():
        raise ArtifactError(f"{path} is not an emulator artifact: {MANIFEST} is missing "
                            "(build one with `fedot emulator build`)")
    raw = file.read_bytes()
    manifest = json.loads(raw)
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{file} is format {manifest.get('format', 1)}, this fedot reads format {FORMAT}; "
                            "rebuild the emulator with `fedot emulator build`")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ArtifactError(f"{file} lacks {missing}; rebuild the emulator with `fedot emulator build`")
    manifest["id"] = hashlib.sha256(raw).hexdigest()
    if expected_id is not None and manifest["id"] != expected_id:
        raise ArtifactError(f"emulator at {path} is {manifest['id'][:12]}…, the model owner sent {expected_id[:12]}…; "
                            "the artifact was replaced or modified")
    if verify:
        verify_files(path, manifest["files"], digests)
    return manifest


def verify_files(path: Path, files: dict[str, str], digests: dict[str, str] | None = None) -> None:
    """Every listed file present with its sha256 (``digests``: computed while a file was written), and nothing else
    in the directory."""
    present = {f.name for f in path.iterdir() if f.is_file() and f.name != MANIFEST}
    extra = sorted(present - set(files))
    if extra:
        raise ArtifactError(f"{path} holds files its manifest does not list: {extra}; the artifact was modified")
    for name, expected in files.items():
        if not (path / name).exists():
            raise ArtifactError(f"{path / name} is missing; the artifact is incomplete, rebuild or re-fetch it")
        actual = (digests or {}).get(name) or sha256_file(path / name)
        if actual != expected:
            raise ArtifactError(f"{path / name} has sha256 {actual[:12]}…, manifest says {expected[:12]}…; "
                                "the artifact is corrupt or was modified, rebuild or re-fetch it")


def weight_files(path: str | Path) -> dict[str, str]:
    """Tensor name -> the file of the artifact at ``path`` that holds it, in either layout."""
    from safetensors import safe_open

    path = Path(path)
    if (path / INDEX).exists():
        return json.loads((path / INDEX).read_text())["weight_map"]
    with safe_open(path / WEIGHTS, "pt") as f:
        return dict.fromkeys(f.keys(), WEIGHTS)


def extra_tensor_files(path: str | Path, manifest: dict) -> list[str]:
    """Tensor files a method wrote beside the blocks (modules standing in for replaced blocks)."""
    weights = set(weight_files(path).values())
    return sorted(f for f in manifest["files"] if f.endswith(".safetensors") and f not in weights)


def stored_blocks(manifest: dict) -> list[int]:
    """Full-model index of each block stored in the weights file, in file order."""
    return sorted(set(manifest["adapter_blocks"]) | set(manifest["emulator_blocks"]))


def stand_in_blocks(manifest: dict) -> list[int]:
    """Full-model positions filled at load time by modules other than stored blocks (:mod:`fedot.emulator.stand_ins`):
    harmonizers, or repeats of a kept block."""
    return sorted({*manifest.get("harmonized_blocks", []), *map(int, manifest.get("shared_blocks", {}))})


def blocks(manifest: dict) -> list[int]:
    """Full-model index of each block of the loaded emulator (stand-ins included), in forward order."""
    return sorted(set(stored_blocks(manifest)) | set(stand_in_blocks(manifest)))


def to_original(manifest: dict) -> dict[int, int]:
    return dict(enumerate(blocks(manifest)))


def to_local(manifest: dict) -> dict[int, int]:
    return {orig: local for local, orig in enumerate(blocks(manifest))}


def adapter_local(manifest: dict) -> list[int]:
    """Artifact block indices of the adapter blocks (what a data owner trains)."""
    local = to_local(manifest)
    return [local[i] for i in manifest["adapter_blocks"]]


def lossless(manifest: dict) -> bool:
    """Every middle block kept and no block compressed: shipping this 'emulator' ships the whole model."""
    return bool(manifest.get("lossless"))


def split_label(manifest: dict) -> str:
    """One line naming the blocks of each role, for results tables."""
    text = f"{manifest['method']}: adapter {manifest['adapter_blocks']}, emulator {manifest['emulator_blocks']}"
    if manifest.get("harmonized_blocks"):
        text += f", harmonizers {manifest['harmonized_blocks']}"
    if manifest.get("shared_blocks"):
        text += f", shared {sorted(map(int, manifest['shared_blocks']))}"
    return text
