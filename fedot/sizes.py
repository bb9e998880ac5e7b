"""Parameter and byte counts of what each party holds or sends, read from an emulator artifact."""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open

from .architectures import architecture
from .data_owner.tuning import LoraSettings
from .emulator.artifact import extra_tensor_files, read_manifest, stored_blocks, weight_files
from .models import load_config


def artifact_sizes(path: str | Path, lora_rank: int = 4) -> dict:
    """Counts for the full model, the emulator, the adapter and its trainable tensors.

    The full model is not needed: adapter blocks are stored uncompressed in the
    artifact and all blocks of a family share one shape, so
    full = non-block + num_blocks x (one adapter block).
    """
    path = Path(path)
    manifest = read_manifest(path)
    config = load_config(path)
    arch = architecture(config)
    stored = {orig: i for i, orig in enumerate(stored_blocks(manifest))}  # block numbering of the weights file
    adapter = {stored[i] for i in manifest["adapter_blocks"]}
    files = sorted(set(weight_files(path).values()))  # one file, or one per block (fedot.emulator.shards)
    shapes, itemsize = {}, 4
    for file in files:
        part, itemsize = _shapes(path / file)
        shapes.update(part)
    extra = extra_tensor_files(path, manifest)  # modules a method stores beside the blocks (ScaleOT's harmonizers)
    extra_numel = sum(_prod(s) for f in extra for s in _shapes(path / f)[0].values())
    numel = {n: _prod(s) for n, s in shapes.items()}
    block_of = {n: arch.block_index(n) for n in numel}
    non_block = sum(v for n, v in numel.items() if block_of[n] is None)
    adapter_params = {n: v for n, v in numel.items() if block_of[n] in adapter}
    one_block = sum(adapter_params.values()) // max(len(adapter), 1)
    lora = sum(
        lora_rank * (shapes[n][0] + shapes[n][1])
        for n in adapter_params
        if n.endswith(".weight") and len(shapes[n]) == 2 and n.split(".")[-2] in LoraSettings().modules(arch)
    )
    counts = {
        "full_model": non_block + manifest["num_blocks"] * one_block,
        "emulator": sum(numel.values()) + extra_numel,
        "extra_modules": extra_numel,
        "adapter": sum(adapter_params.values()),
        "trainable_full_adapter": sum(adapter_params.values()),
        f"trainable_lora_r{lora_rank}": lora,
        "trainable_bitfit": sum(v for n, v in adapter_params.items() if n.endswith(".bias")),
    }
    return {
        "params": counts,
        "bytes": {k: v * itemsize for k, v in counts.items()},
        "artifact_file_bytes": sum((path / f).stat().st_size for f in (*files, *extra)),
    }


def _shapes(file: Path) -> tuple[dict[str, list[int]], int]:
    shapes, itemsize = {}, 4
    with safe_open(file, "pt") as f:
        for name in f.keys():
            sl = f.get_slice(name)
            shapes[name] = sl.get_shape()
            itemsize = {"F32": 4, "BF16": 2, "F16": 2}.get(sl.get_dtype(), 4)
    return shapes, itemsize


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
