"""Checkpoints of a federated run: after every round, everything needed to continue it, written atomically.

A checkpoint is the global adapter (``checkpoint/adapter-r<round>.safetensors``, with the strategy's tensors when it
has them: FedAdam's m_t and v_t) and ``checkpoint/state.json`` (the round, the strategy's own state as its
``state()`` gives it: the nodes that already hold the emulator, the DP accountant's compositions; the learning-rate
schedule position, the Python RNG state Flower samples clients with, the adapter file's sha256; with emulator
alignment, the run dir's emulator version the next round ships). The adapter file is written first under a new name,
then state.json is replaced atomically, then the previous adapter file is removed: a ``kill -9`` at any instant
leaves one complete checkpoint, and a resumed run loses at most the round in progress. ``rounds.jsonl`` rows after
the checkpointed round are dropped on resume.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_path, write_json

DIR = "checkpoint"


class CheckpointError(RuntimeError):
    pass


@dataclass
class Checkpoint:
    round: int
    adapter: dict[str, torch.Tensor]
    strategy: dict  # what the strategy's ``state()`` gave (``load_state`` takes it back), tensors included
    lr: float
    rng_state: tuple
    emulator: dict | None = None  # with emulator alignment: {"dir", "id"} of the current re-aligned emulator


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save(out: Path, server_round: int, adapter: dict[str, torch.Tensor], strategy: dict, lr: float,
         emulator: dict | None = None) -> Path:
    """``strategy``: the strategy's ``state()``; its ``tensors`` (name -> {key: array}) go into the adapter file."""
    from safetensors.torch import save_file

    folder = Path(out) / DIR
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"adapter.{k}": v.detach().contiguous().cpu() for k, v in adapter.items()}
    for name, arrays in strategy.get("tensors", {}).items():
        tensors.update({f"{name}.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
    weights = folder / f"adapter-r{server_round}.safetensors"
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp))
    version, state, rest = random.getstate()
    write_json(folder / "state.json", {
        "round": server_round, "weights": weights.name, "sha256": _sha256(weights), "lr": lr,
        "rng_state": [version, list(state), rest], "emulator": emulator,
        **{k: v for k, v in strategy.items() if k != "tensors"}, "tensors": sorted(strategy.get("tensors", {}))})
    for old in folder.glob("adapter-r*.safetensors"):
        if old != weights:
            old.unlink(missing_ok=True)
    return folder


def load(out: Path) -> Checkpoint | None:
    """The run's last complete checkpoint, verified; None if it never completed a round."""
    from safetensors.torch import load_file

    folder = Path(out) / DIR
    if not (folder / "state.json").exists():
        return None
    state = json.loads((folder / "state.json").read_text())
    weights = folder / state["weights"]
    if not weights.exists() or _sha256(weights) != state["sha256"]:
        raise CheckpointError(f"checkpoint {weights} is missing or does not match its sha256 in state.json; the run "
                              "cannot be resumed from it (start it again with --overwrite)")
    tensors = load_file(str(weights))
    adapter = {k.removeprefix("adapter."): v for k, v in tensors.items() if k.startswith("adapter.")}
    names = state.get("tensors", ("m_t", "v_t"))  # checkpoints before strategies had state() stored FedAdam's moments
    own = {k: v for k, v in state.items() if k not in ("round", "weights", "sha256", "lr", "rng_state", "emulator")}
    own["tensors"] = {n: {k.removeprefix(f"{n}."): v.numpy() for k, v in tensors.items() if k.startswith(f"{n}.")}
                      for n in names}
    version, rng, rest = state["rng_state"]
    return Checkpoint(state["round"], adapter, own, state["lr"], (version, tuple(rng), rest), state.get("emulator"))


def restore(strategy, checkpoint: Checkpoint) -> None:
    """Put a strategy (and Flower's client sampling) back where the checkpointed round left them."""
    strategy.load_state(checkpoint.strategy)
    random.setstate(checkpoint.rng_state)
