"""``url`` delivery: the owner publishes the artifact directory at a URL, each data owner downloads it once.

This is how a 14 GB OPT-13B emulator travels: outside the federation's messages, from a web server or object store
the owner controls (``emulator-url``, ``http(s)://`` or ``file://``). A node downloads ``manifest.json`` first and
checks that it hashes to the id the owner sent in the training Message, then every file the manifest lists, with a
progress bar; an interrupted download continues where it stopped (an HTTP ``Range`` request; ``file://`` seeks),
and the complete artifact is verified file by file before it is used (:class:`~fedot.delivery.store.NodeStore`).
``fedot emulator serve DIR`` serves a directory with Range support for trying this out.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.parse
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tqdm import tqdm

from ..emulator.artifact import MANIFEST, ArtifactError
from .store import NodeStore, check_name

BLOCK = 1 << 20


def check_url(url: str) -> str:
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https", "file"):
        raise ArtifactError(f"emulator-url {url!r} must be an http://, https:// or file:// URL of the directory "
                            "that holds the published artifact")
    return url.rstrip("/")


def _open(url: str, start: int, timeout: float):
    """(stream, bytes it will yield, whether it starts at ``start``) for ``url`` from byte ``start``."""
    if url.startswith("file:"):
        f = open(urllib.request.url2pathname(urllib.parse.urlparse(url).path), "rb")
        size = f.seek(0, 2)
        f.seek(min(start, size))
        return f, max(size - start, 0), True
    headers = {"Range": f"bytes={start}-"} if start else {}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416:  # nothing after ``start``: the file is complete
            return None, 0, True
        raise ArtifactError(f"cannot download {url}: HTTP {e.code} {e.reason}") from e
    except OSError as e:
        raise ArtifactError(f"cannot download {url}: {e}") from e
    return resp, int(resp.headers.get("Content-Length") or 0), resp.status == 206 or not start


def download(url: str, dest: Path, progress: bool = True, timeout: float = 60.0) -> int:
    """Download ``url`` to ``dest``, continuing a partial ``dest``; returns the bytes transferred."""
    start = dest.stat().st_size if dest.exists() else 0
    stream, length, resumed = _open(url, start, timeout)
    if stream is None:
        return 0
    if not resumed:  # the server ignored the Range request: start again
        start = 0
    moved = 0
    with stream, open(dest, "r+b" if dest.exists() else "wb") as out, \
            tqdm(total=start + length, initial=start, unit="B", unit_scale=True, desc=dest.name,
                 disable=not progress, leave=False) as bar:
        out.seek(start)
        out.truncate(start)
        while block := stream.read(BLOCK):
            out.write(block)
            moved += len(block)
            bar.update(len(block))
    return moved


def fetch(base_url: str, artifact_id: str, store: NodeStore, progress: bool = True) -> Path:
    """The artifact ``artifact_id`` from ``base_url`` into ``store`` (nothing downloaded when it is there)."""
    ready = store.get(artifact_id)
    if ready is not None:
        return ready
    base, part = check_url(base_url), store.incoming(artifact_id)
    part.mkdir(parents=True, exist_ok=True)
    (part / MANIFEST).unlink(missing_ok=True)  # small: always fetched whole, then checked against the id
    download(f"{base}/{MANIFEST}", part / MANIFEST, progress=False)
    actual = hashlib.sha256((part / MANIFEST).read_bytes()).hexdigest()
    if actual != artifact_id:
        shutil.rmtree(part, ignore_errors=True)
        raise ArtifactError(f"{base}/{MANIFEST} is artifact {actual[:12]}…, the model owner sent {artifact_id[:12]}…; "
                            "the URL serves another or a modified emulator")
    for name in json.loads((part / MANIFEST).read_text())["files"]:
        download(f"{base}/{check_name(name)}", part / name, progress=progress)
    return store.finish(artifact_id)


def published_id(base_url: str, timeout: float = 30.0) -> str:
    """The id of the artifact served at ``base_url`` (the sha256 of its manifest), for the owner's pre-flight."""
    url = f"{check_url(base_url)}/{MANIFEST}"
    stream, _, _ = _open(url, 0, timeout)
    if stream is None:
        raise ArtifactError(f"{url} is empty")
    with stream:
        return hashlib.sha256(stream.read()).hexdigest()


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=N-`` support, so that an interrupted download can continue."""

    def send_head(self):
        start = self.headers.get("Range", "").removeprefix("bytes=").split("-")[0]
        path = Path(self.translate_path(self.path))
        if not start.isdigit() or not path.is_file():
            return super().send_head()
        size, start = path.stat().st_size, int(start)
        if start >= size:
            self.send_error(416, "Requested Range Not Satisfiable")
            return None
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        return f


def server(directory: str | Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``directory`` (call ``serve_forever``; ``server_address`` has the port)."""
    return ThreadingHTTPServer((host, port), partial(RangeHandler, directory=str(directory)))
