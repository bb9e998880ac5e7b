"""A large file over HTTP as parallel byte ranges, written in place and hashed while it arrives, resumable.

One stream over loopback or a fast link is bounded by a single connection's window and one thread's copying; an
OPT-13B emulator (13.4 GiB) then takes minutes per data owner. The file is cut into segments of :data:`SEGMENT`
bytes; ``streams`` threads each fetch one segment at a time with ``Range: bytes=a-b`` and write it at its offset
(``os.pwrite`` into the file, preallocated to its size). Progress is kept beside the file (``<file>.segments``), so an
interrupted download continues with the bytes it lacks. A hashing thread reads the file in order as its complete
prefix grows (from the page cache), so the sha256 is ready when the last segment lands: the file is verified while it
is written, not read again afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..bars import bar as progress_bar
from ..emulator.artifact import ArtifactError

SEGMENT = 64 << 20
BLOCK = 1 << 20


def remote_size(url: str, timeout: float = 60.0) -> int:
    """The size of the file at ``url`` (a HEAD request)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as resp:
            return int(resp.headers["Content-Length"])
    except (urllib.error.URLError, KeyError, ValueError) as e:
        raise ArtifactError(f"cannot read the size of {url}: {e}") from e


class _Progress:
    """Bytes written of each segment, persisted beside the file so a later download continues."""

    def __init__(self, dest: Path, size: int):
        self.path, self.lock = dest.with_name(dest.name + ".segments"), threading.Lock()
        saved = json.loads(self.path.read_text()) if self.path.exists() and dest.exists() else {}
        starts = range(0, size, SEGMENT)
        self.done = {s: saved.get("done", {}).get(str(s), 0) if saved.get("size") == size else 0 for s in starts}
        self.size = size

    def add(self, start: int, n: int) -> None:
        with self.lock:
            self.done[start] += n

    def prefix(self) -> int:
        """Bytes from the file's start that are complete."""
        with self.lock:
            total = 0
            for start, n in self.done.items():
                total = start + n
                if n < min(SEGMENT, self.size - start):
                    break
            return total

    def save(self) -> None:
        with self.lock:
            text = json.dumps({"size": self.size, "done": {str(k): v for k, v in self.done.items()}})
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(self.path)


def parallel_download(url: str, dest: Path, size: int, expected_sha256: str, streams: int = 8,
                      progress: bool = True, timeout: float = 60.0) -> int:
    """Download ``url`` (``size`` bytes) to ``dest`` in parallel ranges, continuing a partial one; raises
    :class:`ArtifactError` (and deletes it) when its sha256 is not ``expected_sha256``. Returns bytes transferred."""
    state = _Progress(dest, size)
    fd = os.open(dest, os.O_RDWR | os.O_CREAT)
    moved = [0]
    failure: list[BaseException] = []
    bar = progress_bar(total=size, initial=sum(state.done.values()), unit="B", unit_scale=True, desc=dest.name,
                       verbose=progress)
    arrived = threading.Condition()

    def segment(start: int) -> None:
        end = min(start + SEGMENT, size)
        offset = start + state.done[start]
        if offset >= end or failure:
            return
        request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-{end - 1}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                if resp.status != 206:
                    raise ArtifactError(f"{url} does not serve byte ranges (HTTP {resp.status}); serve the "
                                        "artifact with `fedot emulator serve` or any server that does")
                while offset < end and (block := resp.read(min(BLOCK, end - offset))):
                    os.pwrite(fd, block, offset)
                    offset += len(block)
                    state.add(start, len(block))
                    moved[0] += len(block)
                    bar.update(len(block))
                    with arrived:
                        arrived.notify_all()
            if offset < end:
                raise ArtifactError(f"{url} ended at byte {offset} of a range up to {end}")
        except BaseException as e:  # the others stop; the progress so far is kept for the next try
            failure.append(e)
            with arrived:
                arrived.notify_all()

    digest = hashlib.sha256()

    def hasher() -> None:  # reads the complete prefix in order as it grows
        hashed = 0
        with open(dest, "rb") as f:
            while hashed < size and not failure:
                with arrived:
                    arrived.wait_for(lambda: state.prefix() > hashed or bool(failure), timeout=1.0)
                ready = state.prefix()
                while hashed < ready:
                    block = f.read(min(BLOCK, ready - hashed))
                    digest.update(block)
                    hashed += len(block)

    try:
        os.ftruncate(fd, size)
        hashing = threading.Thread(target=hasher, daemon=True)
        hashing.start()
        with ThreadPoolExecutor(max_workers=streams) as pool:
            for start in state.done:
                pool.submit(segment, start)
        hashing.join()
    finally:
        os.close(fd)
        bar.close()
        state.save()
    if failure:
        raise ArtifactError(f"download of {url} stopped: {failure[0]}") from failure[0]
    if digest.hexdigest() != expected_sha256:
        dest.unlink(missing_ok=True)
        state.path.unlink(missing_ok=True)
        raise ArtifactError(f"{dest.name} downloaded from {url} has sha256 {digest.hexdigest()[:12]}…, the manifest "
                            f"says {expected_sha256[:12]}…; it was discarded")
    state.path.unlink(missing_ok=True)
    return moved[0]
