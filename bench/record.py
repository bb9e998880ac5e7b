"""What every benchmark record carries besides its numbers: the command that made it and the machine it ran on.

A ratio means little without the command that reproduces it and the torch build / thread count it was measured
with, so the CPU benchmarks build their JSON with these two helpers and write it with ``save``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch


def command_of(script: str, args: argparse.Namespace) -> str:
    """``python bench/<script> --flag value ...`` with every parsed setting, defaults included (empty ones left out)."""
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in ("", None))
    return f"python bench/{script} {flags}"


def machine() -> dict:
    """The torch build, its thread count and the processor: what a tokens-per-second figure depends on."""
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine()}


def save(record: dict, out: str) -> None:
    """Print the record and, when ``out`` is given, write it there as JSON."""
    print(json.dumps(record, indent=1))
    if out:
        Path(out).write_text(json.dumps(record, indent=1) + "\n")
