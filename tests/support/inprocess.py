"""Test support for the in-process grid (:mod:`fedot_apps.inprocess`): a small, fast run config for tiny models."""

from __future__ import annotations

from fedot_apps.inprocess import InProcessGrid, outputs, run_in_process, run_server

__all__ = ["InProcessGrid", "outputs", "run_config", "run_in_process", "run_server"]


def run_config(model_dir, out, **overrides) -> dict:
    """A small, fast run config for tiny models (keys as in a sim's run config)."""
    return {"model": str(model_dir), "run-dir": str(out), "emulator-blocks": 2, "bottom": 1, "top": 1,
            "num-rounds": 2, "steps": 2, "batch-size": 2, "max-length": 64, "warmup-ratio": 0.0,
            "eval-limit": 1, "lr": 1e-3, **overrides}
