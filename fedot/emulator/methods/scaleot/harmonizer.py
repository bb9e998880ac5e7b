"""Harmonizers: the lightweight networks that stand in for dropped blocks (ScaleOT §"Dynamic LayerReplace").

A harmonizer is a low-rank FFN with ReLU on a residual path, h + U·ReLU(D·rms(h)).
U starts at zero, so an untrained harmonizer is exactly a dropped block and
training can only move it towards a better alignment of the hidden spaces.
The input is RMS-normalised (no learned scale) because residual streams of
pre-norm models carry a few very large channels that would otherwise saturate
D. It takes the block's call signature and returns what the block returns, so
it can sit in the model's ModuleList in place of a block.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ....architectures import architecture
from ...stand_ins import insert

HARMONIZERS = "harmonizers.safetensors"  # where an artifact or an importance directory keeps them


class Harmonizer(torch.nn.Module):
    def __init__(self, hidden_size: int, rank: int, returns_tuple: bool = False):
        super().__init__()
        self.down = torch.nn.Linear(hidden_size, rank, bias=False)
        self.up = torch.nn.Linear(rank, hidden_size, bias=False)
        torch.nn.init.zeros_(self.up.weight)
        self.returns_tuple = returns_tuple

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        x = hidden_states.to(self.down.weight.dtype)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        out = hidden_states + self.up(torch.relu(self.down(x))).to(hidden_states.dtype)
        return (out, None) if self.returns_tuple else out


def hidden_size(config) -> int:
    return int(getattr(config, "hidden_size", None) or config.n_embd)


def new_harmonizers(config, rank: int, indices) -> dict[int, Harmonizer]:
    """One fresh harmonizer per block index."""
    returns_tuple = architecture(config).block_returns_tuple
    return {i: Harmonizer(hidden_size(config), rank, returns_tuple) for i in indices}


def save_harmonizers(path: str | Path, harmonizers: dict[int, Harmonizer]) -> Path:
    """Tensors named ``{block}.down.weight`` / ``{block}.up.weight`` by full-model block index."""
    tensors = {f"{i}.{name}": p.detach().to("cpu", torch.float32).contiguous()
               for i, h in harmonizers.items() for name, p in h.state_dict().items()}
    save_file(tensors, path, metadata={"format": "pt"})
    return Path(path)


def load_harmonizers(path: str | Path, config, indices=None) -> dict[int, Harmonizer]:
    """The harmonizers stored in ``path`` (all, or only ``indices``), ready to insert into a model of ``config``."""
    with safe_open(path, "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    stored = sorted({int(k.split(".")[0]) for k in tensors})
    indices = stored if indices is None else list(indices)
    missing = sorted(set(indices) - set(stored))
    if missing:
        raise ValueError(f"{path} has no harmonizers for blocks {missing}; "
                         "retrain importance with `fedot emulator importance`")
    rank = tensors[f"{indices[0]}.down.weight"].shape[0] if indices else 1
    out = new_harmonizers(config, rank, indices)
    for i, h in out.items():
        h.load_state_dict({n: tensors[f"{i}.{n}"] for n in h.state_dict()})
    return out


def insert_harmonizers(model, harmonizers: dict[int, torch.nn.Module], positions: list[int]) -> None:
    """Insert harmonizers into ``model``'s blocks so block ``j`` of the result is ``positions[j]`` of the full model
    (:func:`fedot.emulator.stand_ins.insert`)."""
    insert(model, harmonizers, positions)
