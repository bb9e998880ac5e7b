"""What building an emulator will read and write, from the model's config alone (no weights, no network).

The writer (:mod:`fedot.emulator.writer`) copies the kept tensors one at a time; this says in advance which they are
and how many bytes they take in the checkpoint's dtype: the embeddings, final norm and head, each adapter block and
each kept emulator block (dropped blocks are never read), and, when the checkpoint's shard index is at hand
(``model.safetensors.index.json`` or ``pytorch_model.bin.index.json``, as the hub's sharded checkpoints have), which
shard files hold the blocks read and which are never opened. ``fedot emulator build --plan`` prints it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..architectures import architecture, ties_head
from .split import Split

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def artifact_layout(config, split: Split) -> dict:
    """Tensor counts and bytes of the artifact of ``split``, by part, in the checkpoint's dtype (``torch_dtype``)."""
    from transformers import AutoModelForCausalLM

    arch = architecture(config)
    dtype = str(getattr(config, "dtype", None) or "float32").removeprefix("torch.")
    width = DTYPE_BYTES.get(dtype, 4)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    parts: dict[str, dict] = {}
    for name, t in model.state_dict().items():
        block = arch.block_index(name)
        if block is None:
            if arch.is_head(name) and ties_head(config):
                continue
            part = "embeddings, final norm, head"
        elif block in split.adapter:
            part = f"adapter block {block}"
        elif block in split.emulator:
            part = f"emulator block {block}"
        else:
            continue  # dropped: never read
        entry = parts.setdefault(part, {"tensors": 0, "bytes": 0})
        entry["tensors"] += 1
        entry["bytes"] += t.numel() * width
    return {"dtype": dtype, "parts": parts, "bytes": sum(p["bytes"] for p in parts.values()),
            "dropped_blocks": [b for b in split.middle if b not in split.emulator]}


def shards_read(model_dir: str | Path, config, split: Split) -> dict | None:
    """Which shard files of a sharded checkpoint the build reads (with the blocks each gives) and which it never
    opens; None when the checkpoint has no shard index."""
    model_dir = Path(model_dir)
    index = next((p for n in ("model.safetensors.index.json", "pytorch_model.bin.index.json")
                  if (p := model_dir / n).exists()), None)
    if index is None:
        return None
    arch = architecture(config)
    kept = set(split.kept)
    read: dict[str, set] = {}
    files = set()
    for name, file in json.loads(index.read_text())["weight_map"].items():
        files.add(file)
        block = arch.block_index(name) if arch.block_index(name) is not None else arch.block_index("model." + name)
        if block is None or block in kept:
            read.setdefault(file, set()).add("non-block" if block is None else block)
    return {"index": index.name, "read": {f: sorted(b, key=str) for f, b in sorted(read.items())},
            "never_opened": sorted(files - set(read))}


def layout_text(layout: dict, shards: dict | None, split: Split) -> str:
    gib = 2**30
    lines = [f"adapter blocks {list(split.adapter)}, emulator blocks {list(split.emulator)}, dropped (never read) "
             f"{layout['dropped_blocks']}", f"artifact tensors ({layout['dtype']}):"]
    for part, p in layout["parts"].items():
        lines.append(f"  {part:<32}{p['tensors']:>6} tensors {p['bytes'] / gib:>9.3f} GiB")
    lines.append(f"  {'total':<32}{'':>14}{layout['bytes'] / gib:>9.3f} GiB")
    if shards is None:
        lines.append("source shards: the checkpoint's shard index is not here (a hub model not yet downloaded, or "
                     "one file): which shards are read is known once it is")
    else:
        for f, blocks in shards["read"].items():
            lines.append(f"  reads {f}: {', '.join(map(str, blocks))}")
        lines.append(f"  never opens: {', '.join(shards['never_opened']) or 'none'}")
    return "\n".join(lines)
