"""Load an emulator artifact as a model: the stored blocks through transformers, completed by its method.

This is the one loader for artifacts, on both sides: the data owner trains through it and the model owner
evaluates the tuned emulator with it. The method the manifest names completes the model with what it wrote beside
the blocks (:meth:`fedot.emulator.methods.Method.on_load`). With ``expected_id`` the artifact is verified file by
file first, so a replaced or corrupt artifact is refused before any weight is read.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..models import load_model
from .artifact import read_manifest
from .methods import METHODS


def load_emulator(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                  expected_id: str | None = None):
    """The emulator model of the artifact at ``path`` and its manifest."""
    path = Path(path)
    manifest = read_manifest(path, verify=expected_id is not None, expected_id=expected_id)
    model = load_model(path, dtype, device)
    METHODS[manifest["method"]].on_load(model, path, manifest)
    return model, manifest
