"""Write an emulator artifact from a model directory and a :class:`~fedot.emulator.split.Split`.

Tensors are read one at a time from the checkpoint and only the kept ones are written, so building never holds even
one full copy of the model in memory. Compression methods plug in as a per-tensor ``transform`` of emulator blocks.
Everything is written to ``<out>.partial`` and renamed into place only when complete, so an interrupted build never
leaves a directory that looks like an artifact.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from ..models import load_config
from ..registry import PER_BLOCK_FIELDS, architecture, num_blocks, ties_head
from ..weights import WeightReader, model_state_names
from .artifact import HARMONIZERS, MANIFEST, WEIGHTS, write_manifest
from .split import Split, SplitError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "tokenizer.model", "chat_template.jinja", "generation_config.json")

Transform = Callable[[str, torch.Tensor], torch.Tensor]


def reduced_config(config, kept: list[int]):
    """The full model's config with only the ``kept`` blocks."""
    arch = architecture(config)
    reduced = config.__class__.from_dict(config.to_dict())
    setattr(reduced, arch.num_blocks_key, len(kept))
    for field in PER_BLOCK_FIELDS:
        values = getattr(reduced, field, None)
        if isinstance(values, list) and len(values) == num_blocks(config):
            setattr(reduced, field, [values[i] for i in kept])
    return reduced


def refuse_foreign(out: Path) -> None:
    """Never overwrite a directory that is not an artifact (a user's files)."""
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise FileExistsError(f"{out} exists and is not an emulator artifact; choose an empty or new output directory")


def _fresh(out: Path) -> Path:
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _finish(tmp: Path, out: Path, model_dir: Path, manifest: dict) -> Path:
    """Copy the tokenizer, write the manifest (hashing every file) and move ``tmp`` into place."""
    for file in TOKENIZER_FILES:
        if (model_dir / file).exists() and not (tmp / file).exists():
            shutil.copy(model_dir / file, tmp / file)
    write_manifest(tmp, manifest)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def resave(model, out: str | Path, source_dir: str | Path, manifest: dict) -> Path:
    """Write a (re-trained) emulator model as an artifact with an updated manifest; harmonizers are kept."""
    out, source_dir = Path(out), Path(source_dir)
    refuse_foreign(out)
    tmp = _fresh(out)
    model.save_pretrained(tmp)
    if (source_dir / HARMONIZERS).exists():
        shutil.copy(source_dir / HARMONIZERS, tmp / HARMONIZERS)
    return _finish(tmp, out, source_dir, manifest)


def write_artifact(model_dir: str | Path, split: Split, out: str | Path, manifest: dict,
                   transform: Transform | None = None, harmonizers: dict[int, torch.nn.Module] | None = None) -> Path:
    """Write the emulator artifact for ``split`` to ``out`` and return ``out``.

    ``transform(name, tensor)`` (names in full-model numbering) compresses emulator blocks; adapter blocks are always
    copied unchanged because the data owner trains them and the model owner plugs them back. ``harmonizers``
    (ScaleOT) stand in for middle blocks that are neither kept nor dropped outright. ``manifest`` holds what the
    method records (source model, method, params); the block lists are added here.
    """
    model_dir, out = Path(model_dir), Path(out)
    refuse_foreign(out)
    config = load_config(model_dir)
    if split.num_blocks != num_blocks(config):
        raise SplitError(f"split is for {split.num_blocks} blocks but {model_dir} has {num_blocks(config)}")
    harmonizers = harmonizers or {}
    wrong = sorted(set(harmonizers) - set(split.middle) | set(harmonizers) & set(split.emulator))
    if wrong:
        raise SplitError(f"harmonizers for blocks {wrong} would replace adapter or kept emulator blocks")
    arch = architecture(config)
    to_local = split.to_local()
    names = model_state_names(config)
    reader = WeightReader(model_dir, expected_names=names)
    tensors: dict[str, torch.Tensor] = {}
    for name in tqdm(names, desc="emulator: copying kept tensors", leave=False):
        block = arch.block_index(name)
        if block is not None and block not in to_local:
            continue
        if arch.is_head(name) and ties_head(config):
            continue
        if name not in reader:
            continue  # non-persistent buffers such as rotary inv_freq are rebuilt from the config
        tensor = reader.get(name)
        if transform is not None and block is not None and block in split.emulator:
            tensor = transform(name, tensor)
        tensors[arch.rename_block(name, to_local)] = tensor.contiguous()
    tmp = _fresh(out)
    save_file(tensors, tmp / WEIGHTS, metadata={"format": "pt"})
    reduced_config(config, list(split.kept)).save_pretrained(tmp)
    if harmonizers:
        from .methods.scaleot.harmonizer import save_harmonizers

        save_harmonizers(tmp / HARMONIZERS, harmonizers)
    return _finish(tmp, out, model_dir, {
        **manifest,
        "family": arch.family,
        "num_blocks": split.num_blocks,
        "adapter_blocks": list(split.adapter),
        "emulator_blocks": list(split.emulator),
        "lossless": split.lossless and transform is None and not harmonizers,
        **({"harmonized_blocks": sorted(harmonizers)} if harmonizers else {}),
    })
