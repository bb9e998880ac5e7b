"""Modules that stand in for a model's blocks at positions the stored blocks do not fill.

A compressed emulator stores fewer blocks than the full model. Some methods fill the other positions at load time so
the emulator keeps (part of) the full model's depth: ScaleOT inserts harmonizers (small trained modules), CRaSh and
uniform layer-drop with ``share`` repeat a kept block in place of the blocks it stands for (weight sharing). The
manifest says which positions are filled how (``harmonized_blocks``, ``shared_blocks``); :func:`insert` rebuilds the
block list so that block ``j`` of the result is full-model block ``positions[j]``, updates the config's block count
and per-block fields, and renumbers every block's cache index to its position (a repeated block is its own module
object sharing the kept block's parameters, so generation's key-value cache never mixes two positions).
"""

from __future__ import annotations

import copy

import torch

from ..architectures import PER_BLOCK_FIELDS, architecture, blocks_of


def shared_copy(block: torch.nn.Module) -> torch.nn.Module:
    """A new module object for ``block`` that shares its parameters and buffers (no weights are copied)."""
    memo = {id(t): t for t in (*block.parameters(), *block.buffers())}
    return copy.deepcopy(block, memo)


def insert(model, stand_ins: dict[int, torch.nn.Module], positions: list[int]) -> None:
    """Fill ``model``'s block list so block ``j`` is full-model block ``positions[j]``: ``stand_ins`` at their
    positions, the model's current blocks at the others, in order."""
    arch = architecture(model.config)
    current = list(blocks_of(model))
    if len(current) + len(stand_ins) != len(positions):
        raise ValueError(f"{len(current)} blocks + {len(stand_ins)} stand-ins do not fill {len(positions)} positions")
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    real = iter(current)
    merged = [stand_ins[i].to(device, dtype) if i in stand_ins else next(real) for i in positions]
    config_before = {f: getattr(model.config, f, None) for f in PER_BLOCK_FIELDS}
    parent, attr = arch.blocks.rsplit(".", 1)
    setattr(model.get_submodule(parent), attr, torch.nn.ModuleList(merged))
    setattr(model.config, arch.num_blocks_key, len(merged))
    for field, values in config_before.items():
        if isinstance(values, list) and len(values) == len(current):
            it, last, filled = iter(values), values[0], []
            for i in positions:  # a stand-in takes the entry of the block before it
                if i not in stand_ins:
                    last = next(it)
                filled.append(last)
            setattr(model.config, field, filled)
    for j, block in enumerate(merged):  # every block's key-value cache slot is its position
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = j


def shared_blocks(model, manifest: dict, positions: list[int]) -> dict[int, torch.nn.Module]:
    """The stand-ins ``shared_blocks`` asks for: position -> a parameter-sharing copy of the stored block it
    repeats (``manifest["shared_blocks"]`` maps full-model positions to kept full-model blocks)."""
    from .artifact import stored_blocks

    stored = {orig: block for orig, block in zip(stored_blocks(manifest), blocks_of(model))}
    return {int(pos): shared_copy(stored[int(kept)]) for pos, kept in manifest.get("shared_blocks", {}).items()}
