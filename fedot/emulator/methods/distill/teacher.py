"""The teacher's targets computed once: the full model's hidden state leaving the middle, per training block.

Distillation's teacher is frozen, so its output for a block of tokens never changes: an emulator that sees a block
again (a second epoch) and every other emulator of the same model cut at the same place (2-12-2 and 2-18-2 share it)
can reuse it. A cache is one append-only float32 file of targets plus an index from the block's number in its token
stream to its slot, under ``$FEDOT_CACHE/teacher/<key>``; the key hashes the model's content, the cut, the token
stream, the block length and the precision the teacher ran in, so a target is only ever reused for exactly the
computation that made it (a test checks cached and uncached steps give the same loss). Targets are written before
the index that names them and the index is saved atomically, so an interruption loses at most unindexed targets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

INDEX, DATA = "index.npy", "targets.f32"


def cache_key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


class TeacherCache:
    """Targets of shape (length, hidden) by block number, for one token stream."""

    def __init__(self, folder: Path, n_blocks: int, length: int, hidden: int):
        self.folder, self.shape = Path(folder), (length, hidden)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.block_bytes = length * hidden * 4
        index = self.folder / INDEX
        self.index = np.load(index) if index.exists() else np.full(n_blocks, -1, dtype=np.int64)
        if len(self.index) != n_blocks:
            raise ValueError(f"teacher cache {self.folder} indexes {len(self.index)} blocks, the stream has {n_blocks}")
        self.next_slot = int(self.index.max()) + 1 if len(self.index) else 0
        self.file = open(self.folder / DATA, "r+b" if (self.folder / DATA).exists() else "w+b")
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return int((self.index >= 0).sum())

    def targets(self, blocks: list[int], compute: Callable[[list[int]], torch.Tensor]) -> torch.Tensor:
        """Targets of ``blocks`` (a batch), computing (with ``compute(missing blocks)``) and storing what is new."""
        missing = sorted({b for b in blocks if self.index[b] < 0})
        fresh = {}
        if missing:
            computed = compute(missing).detach().float().cpu()
            for b, target in zip(missing, computed):
                self.index[b] = self.next_slot
                self.file.seek(self.next_slot * self.block_bytes)
                self.file.write(target.contiguous().numpy().tobytes())
                self.next_slot += 1
                fresh[b] = target
        out = []
        for b in blocks:
            if b in fresh:
                out.append(fresh[b])
                continue
            self.file.seek(int(self.index[b]) * self.block_bytes)
            data = np.frombuffer(self.file.read(self.block_bytes), dtype=np.float32).reshape(self.shape)
            out.append(torch.from_numpy(data.copy()))
        self.misses += len(missing)
        self.hits += sum(1 for b in blocks if b not in fresh)
        return torch.stack(out)

    def flush(self) -> None:
        """Make every stored target durable, then its index (atomically)."""
        self.file.flush()
        tmp = self.folder / (INDEX + ".tmp.npy")
        np.save(tmp, self.index)
        tmp.replace(self.folder / INDEX)

    def close(self) -> None:
        self.flush()
        self.file.close()
