"""Load an emulator artifact as a model: the stored blocks through transformers, harmonizers inserted by fedot.

This is the one loader for artifacts, on both sides: the data owner trains through it and the model owner
evaluates the tuned emulator with it. With ``expected_id`` the artifact is verified file by file first, so a
replaced or corrupt artifact is refused before any weight is read.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..models import load_model
from .artifact import HARMONIZERS, blocks, read_manifest


def load_emulator(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                  expected_id: str | None = None):
    """The emulator model of the artifact at ``path`` and its manifest."""
    path = Path(path)
    manifest = read_manifest(path, verify=expected_id is not None, expected_id=expected_id)
    model = load_model(path, dtype, device)
    if manifest.get("harmonized_blocks"):
        from .methods.scaleot.harmonizer import insert_harmonizers, load_harmonizers

        harmonizers = load_harmonizers(path / HARMONIZERS, model.config, manifest["harmonized_blocks"])
        insert_harmonizers(model, harmonizers, blocks(manifest))
    return model, manifest
