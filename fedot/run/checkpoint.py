"""Checkpoints of a federated run: after every round, everything needed to continue it, written atomically.

A checkpoint is the global adapter (``checkpoint/adapter-r<round>.safetensors``, with the server optimiser's moments
when the rule has them: FedAdam's m_t and v_t) and ``checkpoint/state.json`` (the round, the nodes that already hold
the emulator, the learning-rate schedule position, the Python RNG state Flower samples clients with, the DP
accountant's compositions, the adapter file's sha256; with emulator alignment, the run dir's emulator version the
next round ships). The adapter file is written first under a new name, then
state.json is replaced atomically, then the previous adapter file is removed: a ``kill -9`` at any instant leaves
one complete checkpoint, and a resumed run loses at most the round in progress. ``rounds.jsonl`` rows after the
checkpointed round are dropped on resume.
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
OPTIMISER = ("m_t", "v_t")  # Flower's FedOpt state, saved as "<name>.<tensor>"


class CheckpointError(RuntimeError):
    pass


@dataclass
class Checkpoint:
    round: int
    adapter: dict[str, torch.Tensor]
    seen: list[int]
    lr: float
    optimiser: dict[str, dict[str, np.ndarray]]
    rng_state: tuple
    privacy: dict | None = None  # the DP accountant's compositions and the (adaptive) clipping norm
    emulator: dict | None = None  # with emulator alignment: {"dir", "id"} of the current re-aligned emulator


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save(out: Path, server_round: int, adapter: dict[str, torch.Tensor], strategy,
         emulator: dict | None = None) -> Path:
    from safetensors.torch import save_file

    folder = Path(out) / DIR
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"adapter.{k}": v.detach().contiguous().cpu() for k, v in adapter.items()}
    for name in OPTIMISER:
        for k, v in (getattr(strategy.flower_rule, name, None) or {}).items():
            tensors[f"{name}.{k}"] = torch.from_numpy(np.ascontiguousarray(v))
    weights = folder / f"adapter-r{server_round}.safetensors"
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp))
    version, state, rest = random.getstate()
    write_json(folder / "state.json", {
        "round": server_round, "weights": weights.name, "sha256": _sha256(weights), "seen": sorted(strategy.seen),
        "lr": strategy.lr_for_round(server_round), "rng_state": [version, list(state), rest],
        "privacy": strategy.privacy.state() if strategy.privacy else None, "emulator": emulator})
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
    optimiser = {name: {k.removeprefix(f"{name}."): v.numpy() for k, v in tensors.items() if k.startswith(f"{name}.")}
                 for name in OPTIMISER}
    version, rng, rest = state["rng_state"]
    return Checkpoint(state["round"], adapter, state["seen"], state["lr"], optimiser, (version, tuple(rng), rest),
                      state.get("privacy"), state.get("emulator"))


def restore(strategy, checkpoint: Checkpoint) -> None:
    """Put a strategy (and Flower's client sampling) back where the checkpointed round left them."""
    strategy.seen.update(checkpoint.seen)
    for name, arrays in checkpoint.optimiser.items():
        if arrays and hasattr(strategy.flower_rule, name):
            setattr(strategy.flower_rule, name, arrays)
    random.setstate(checkpoint.rng_state)
    if checkpoint.privacy and strategy.privacy:
        strategy.privacy.load_state(checkpoint.privacy)
