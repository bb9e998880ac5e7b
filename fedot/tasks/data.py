"""Where task data comes from: a data directory in the layout of fedot's shared offline data, or the hub.

The directory is passed explicitly (a run's ``data-dir``, a data owner's node config) or read from
``FEDOT_DATA_DIR``; nothing writes the environment. Splits that a published dataset lacks are carved
deterministically from what exists, by a hash of each example's identity, so a run never evaluates on an example it
trained on, on any machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

DATA_ENV = "FEDOT_DATA_DIR"


class DataNotFoundError(FileNotFoundError):
    pass


def data_dir(root: str | Path | None = None) -> Path | None:
    """The data directory: ``root`` when given (a run's ``data-dir``), else ``FEDOT_DATA_DIR``, else None (hub)."""
    value = str(root) if root else os.environ.get(DATA_ENV)
    return Path(value).expanduser().resolve() if value else None


def data_file(relative: str, root: str | Path | None = None) -> Path:
    """A file under the data directory; a clear error naming the expected path when it is absent."""
    root = data_dir(root)
    if root is None:
        raise DataNotFoundError(f"{DATA_ENV} is not set; point it at the offline data directory "
                                f"(expected file: <{DATA_ENV}>/{relative})")
    path = root / relative
    if not path.exists():
        raise DataNotFoundError(f"{path} does not exist; set {DATA_ENV} to a data directory that contains {relative}")
    return path


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def bucket(key: str, salt: str = "fedot") -> float:
    """A stable pseudo-random number in [0, 1) for an example's identity."""
    return int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:12], 16) / 16**12


def carve(docs: list[dict], key, fractions: dict[str, float]) -> dict[str, list[dict]]:
    """Split ``docs`` into named parts by stable hash buckets; fractions are cumulative in the given order."""
    out = {name: [] for name in fractions}
    for doc in docs:
        b, edge = bucket(key(doc)), 0.0
        for name, frac in fractions.items():
            edge += frac
            if b < edge or name == list(fractions)[-1]:
                out[name].append(doc)
                break
    return out


def from_hub(path: str, name: str | None, split: str) -> list[dict]:
    """Load a split from the Hugging Face hub (users with a network and no ``FEDOT_DATA_DIR``)."""
    try:
        import datasets

        return list(datasets.load_dataset(path, name, split=split))
    except Exception as e:
        raise DataNotFoundError(
            f"could not load {path}{'/' + name if name else ''} [{split}] from the hub ({type(e).__name__}); "
            f"set {DATA_ENV} to an offline data directory"
        ) from e
