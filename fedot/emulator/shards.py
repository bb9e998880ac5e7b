"""The per-block layout of an emulator artifact: one file per block, so an updated emulator ships only what changed.

An emulator the owner re-aligns every round (:mod:`fedot.emulator.alignment`) changes its middle blocks and nothing
else; in the build layout (one ``model.safetensors``) every change would be a whole new file to send. Here each
stored block is its own shard (``block-NNN.safetensors``, the artifact's local block numbering), the embeddings,
final norm and head share ``rest.safetensors``, and ``model.safetensors.index.json`` maps every tensor to its shard, so
transformers loads it as any sharded checkpoint. A shard whose tensors did not change is the same file, byte for
byte, in the next version (it is linked, never rewritten), so the two manifests list the same sha256 for it and a
data owner that holds one version is sent only the other's changed files
(:meth:`fedot.delivery.store.NodeStore.seed`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..architectures import architecture
from ..files import link_or_copy
from ..models import load_config
from .artifact import INDEX, MANIFEST, WEIGHTS, ArtifactError, read_manifest, weight_files
from .writer import _finish, _fresh, refuse_foreign

REST = "rest.safetensors"


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every stored tensor of an artifact (local names), in either layout."""
    out: dict[str, torch.Tensor] = {}
    by_file: dict[str, list[str]] = {}
    for name, file in weight_files(path).items():
        by_file.setdefault(file, []).append(name)
    for file, names in by_file.items():
        with safe_open(path / file, "pt") as f:
            out.update({n: f.get_tensor(n) for n in names})
    return out


def shard_of(arch, name: str) -> str:
    block = arch.block_index(name)
    return REST if block is None else f"block-{block:03d}.safetensors"


def write_sharded(source: str | Path, out: str | Path, manifest: dict,
                  replace: dict[str, torch.Tensor] | None = None) -> tuple[dict, list[str]]:
    """Write the artifact at ``source`` to ``out`` in the per-block layout, with the tensors in ``replace`` (local
    names) taking the place of the stored ones; ``manifest`` holds the new manifest's fields.

    Returns the new manifest (with its id) and the shards whose contents differ from ``source``'s (all of them when
    ``source`` is in the one-file layout). Unknown names and changed shapes are refused before anything is written.
    """
    source, out = Path(source), Path(out)
    refuse_foreign(out)
    arch = architecture(load_config(source))
    files, replace = weight_files(source), dict(replace or {})
    tensors = read_tensors(source)
    unknown = sorted(set(replace) - set(tensors))
    if unknown:
        raise ArtifactError(f"the emulator at {source} has no tensors {unknown[:4]}; an update may only replace "
                            "stored tensors")
    for name, value in replace.items():
        if tuple(value.shape) != tuple(tensors[name].shape):
            raise ArtifactError(f"{name}: the update has shape {tuple(value.shape)}, the emulator "
                                f"{tuple(tensors[name].shape)}")
    changed = {n for n, v in replace.items() if not torch.equal(v.detach().to("cpu", tensors[n].dtype), tensors[n])}
    shards: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        value = replace[name].detach().to("cpu", tensor.dtype) if name in changed else tensor
        shards.setdefault(shard_of(arch, name), {})[name] = value.contiguous()
    tmp = _fresh(out)
    rewritten = []
    for shard, part in sorted(shards.items()):
        same_file = {files[n] for n in part} == {shard} and not part.keys() & changed
        if same_file and set(part) == {n for n, f in files.items() if f == shard}:
            link_or_copy(source / shard, tmp / shard)  # untouched: same bytes, same sha256
        else:
            save_file(part, tmp / shard, metadata={"format": "pt"})
            rewritten.append(shard)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    weight_map = {n: shard for shard, part in shards.items() for n in part}
    (tmp / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(
        weight_map.items()))}, indent=1) + "\n")
    for f in source.iterdir():  # config, tokenizer, harmonizers: unchanged
        if f.is_file() and f.name not in {WEIGHTS, INDEX, MANIFEST, *files.values()}:
            link_or_copy(f, tmp / f.name)
    _finish(tmp, out, source, manifest)
    return read_manifest(out), rewritten
