"""Read a checkpoint's tensors one at a time, by the names the model itself uses.

The model owner only ever needs a few of a large model's tensors at once (the
emulator blocks, the adapter), so reading them lazily from safetensors (or a
memory-mapped ``.bin``) keeps peak memory at the size of what is kept.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open


class WeightReader:
    def __init__(self, model_dir: str | Path, expected_names: list[str] | None = None):
        self.dir = Path(model_dir)
        self._files: dict[str, Path] = {}
        self._bins: dict[Path, dict] = {}
        # a sharded checkpoint's index names each tensor's file, so shards holding only dropped blocks are never opened
        index = next(iter([*self.dir.glob("*.safetensors.index.json"), *self.dir.glob("*.bin.index.json")]), None)
        if index is not None:
            for name, file in json.loads(index.read_text())["weight_map"].items():
                self._files[name] = self.dir / file
        else:
            for file in sorted(self.dir.glob("*.safetensors")):
                with safe_open(file, "pt") as f:
                    for name in f.keys():
                        self._files[name] = file
        if not self._files:
            for file in sorted(self.dir.glob("pytorch_model*.bin")):
                for name in self._bin(file):
                    self._files[name] = file
        if not self._files:
            raise FileNotFoundError(f"no *.safetensors or pytorch_model*.bin weights in {self.dir}")
        # Hub checkpoints of some families are saved from the base model (keys without "transformer."
        # or "model."); map the model's own names onto whatever the files use.
        self._alias: dict[str, str] = {}
        for name in expected_names or []:
            if name not in self._files and "." in name and name.split(".", 1)[1] in self._files:
                self._alias[name] = name.split(".", 1)[1]

    def _bin(self, file: Path) -> dict:
        if file not in self._bins:
            self._bins[file] = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
        return self._bins[file]

    def __contains__(self, name: str) -> bool:
        return self._alias.get(name, name) in self._files

    def names(self) -> list[str]:
        inverse = {v: k for k, v in self._alias.items()}
        return [inverse.get(n, n) for n in self._files]

    def get(self, name: str) -> torch.Tensor:
        key = self._alias.get(name, name)
        file = self._files[key]
        if file.suffix == ".bin":
            return self._bin(file)[key].clone()
        with safe_open(file, "pt") as f:
            return f.get_tensor(key)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_hash(state: dict[str, torch.Tensor], meta: dict | None = None) -> str:
    """The identity of a set of tensors (an adapter): sha256 over each name, dtype, shape and bytes, in name order,
    with ``meta`` (how it is plugged in) alongside; the same tensors give the same hash on any device."""
    h = hashlib.sha256(json.dumps(meta or {}, sort_keys=True, default=str).encode())
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
