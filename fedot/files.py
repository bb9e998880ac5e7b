"""Writing files so that a crash never leaves half of one: write a temporary file beside it, then rename.

A rename within a directory is atomic on POSIX, so a reader (or a resumed run) sees either the old file or the new
one, never a truncated mix.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block completes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, record, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(record, indent=indent, default=str) + "\n")


def link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as the same bytes as ``src``: a hard link where the file system allows, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def shown(path: str | Path) -> str:
    """``path`` as a reader should see it in a report or a command: relative to the working directory when it lies
    below it (a repository's results stay valid on another machine), absolute otherwise."""
    path = Path(path).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)
