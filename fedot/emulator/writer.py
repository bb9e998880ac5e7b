"""Write an emulator artifact from a model directory and a :class:`~fedot.emulator.split.Split`.

Tensors are read one at a time from the checkpoint and only the kept ones are written, so building never holds even
one full copy of the model in memory. Compression methods plug in as a per-tensor ``transform`` of emulator blocks
and an ``extra`` writer for what the artifact holds beyond the kept blocks (the method's ``write_extra``). A parameter
the model has but the checkpoint lacks is an error (it would load as random weights); only non-persistent buffers,
which transformers rebuilds from the config, may be absent.
Everything is written to ``<out>.partial`` and renamed into place only when complete, so an interrupted build never
leaves a directory that looks like an artifact.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..architectures import PER_BLOCK_FIELDS, architecture, num_blocks, ties_head
from ..bars import bar
from ..models import load_config
from ..weights import WeightReader
from .artifact import MANIFEST, WEIGHTS, write_manifest
from .split import Split, SplitError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "tokenizer.model", "chat_template.jinja", "generation_config.json")

Transform = Callable[[str, torch.Tensor], torch.Tensor]
Extra = Callable[[Path], dict]  # writes a method's extra files into the folder; returns what the manifest records


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
    """Write a (re-trained) emulator model as an artifact with an updated manifest; every other file the source
    artifact lists (a method's extra files, the tokenizer) is kept."""
    out, source_dir = Path(out), Path(source_dir)
    refuse_foreign(out)
    tmp = _fresh(out)
    model.save_pretrained(tmp)
    for name in manifest.get("files", {}):
        if not (tmp / name).exists():
            shutil.copy(source_dir / name, tmp / name)
    return _finish(tmp, out, source_dir, manifest)


def persistent_names(config) -> tuple[list[str], set[str]]:
    """(every name in a model's state dict, the names of its parameters), from the config alone (meta device)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return list(model.state_dict().keys()), {n for n, _ in model.named_parameters(remove_duplicate=False)}


def write_artifact(model_dir: str | Path, split: Split, out: str | Path, manifest: dict,
                   transform: Transform | None = None, extra: Extra | None = None) -> Path:
    """Write the emulator artifact for ``split`` to ``out`` and return ``out``.

    ``transform(name, tensor)`` (names in full-model numbering) compresses emulator blocks; adapter blocks are always
    copied unchanged because the data owner trains them and the model owner plugs them back. ``extra`` writes what
    the method adds (e.g. ScaleOT's modules standing in for replaced blocks); anything it records makes the emulator
    lossy. ``manifest`` holds what the method records (source model, method, params); the block lists are added
    here.
    """
    model_dir, out = Path(model_dir), Path(out)
    refuse_foreign(out)
    config = load_config(model_dir)
    if split.num_blocks != num_blocks(config):
        raise SplitError(f"split is for {split.num_blocks} blocks but {model_dir} has {num_blocks(config)}")
    arch = architecture(config)
    to_local = split.to_local()
    names, parameters = persistent_names(config)
    reader = WeightReader(model_dir, expected_names=names)
    tensors: dict[str, torch.Tensor] = {}
    for name in bar(names, desc="emulator: copying kept tensors"):
        block = arch.block_index(name)
        if block is not None and block not in to_local:
            continue
        if arch.is_head(name) and ties_head(config):
            continue
        if name not in reader:
            if name in parameters:
                raise SplitError(f"{model_dir} has no tensor {name!r}, a parameter of this {arch.family} model; the "
                                 "checkpoint is incomplete or of another architecture (it would load as random "
                                 "weights): re-download or re-convert the model")
            continue  # buffers such as rotary inv_freq are rebuilt from the config
        tensor = reader.get(name)
        if transform is not None and block is not None and block in split.emulator:
            tensor = transform(name, tensor)
        tensors[arch.rename_block(name, to_local)] = tensor.contiguous()
    tmp = _fresh(out)
    save_file(tensors, tmp / WEIGHTS, metadata={"format": "pt"})
    reduced_config(config, list(split.kept)).save_pretrained(tmp)
    recorded = extra(tmp) if extra is not None else {}
    return _finish(tmp, out, model_dir, {
        **manifest,
        "family": arch.family,
        "num_blocks": split.num_blocks,
        "adapter_blocks": list(split.adapter),
        "emulator_blocks": list(split.emulator),
        "lossless": split.lossless and transform is None and not recorded,
        **recorded,
    })
