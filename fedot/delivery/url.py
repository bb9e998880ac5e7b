"""``url`` delivery: the owner publishes the artifact directory at a URL, each data owner downloads it once.

This is how a 14 GB OPT-13B emulator travels: outside the federation's messages, from a web server or object store
the owner controls (``emulator-url``, ``http(s)://`` or ``file://``). A node downloads ``manifest.json`` first and
checks that it hashes to the id the owner sent in the training Message, then every file the manifest lists, with a
progress bar; an interrupted download continues where it stopped (an HTTP ``Range`` request; ``file://`` seeks),
and the complete artifact is verified file by file before it is used (:class:`~fedot.delivery.store.NodeStore`).
A file larger than a segment arrives as parallel byte ranges, hashed while it is written (``url_streams`` streams,
:mod:`fedot.delivery.ranged`); ``fedot emulator serve DIR`` serves a directory with Range support (``bytes=a-b``,
sent with ``sendfile``) for trying this out.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.parse
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..bars import bar as progress_bar
from ..emulator.artifact import MANIFEST, ArtifactError
from .ranged import SEGMENT, parallel_download, remote_size
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
            progress_bar(total=start + length, initial=start, unit="B", unit_scale=True, desc=dest.name,
                         verbose=progress) as bar:
        out.seek(start)
        out.truncate(start)
        while block := stream.read(BLOCK):
            out.write(block)
            moved += len(block)
            bar.update(len(block))
    return moved


def fetch(base_url: str, artifact_id: str, store: NodeStore, progress: bool = True, streams: int = 8) -> Path:
    """The artifact ``artifact_id`` from ``base_url`` into ``store`` (nothing downloaded when it is there); files
    larger than a segment over ``streams`` parallel ranges (http(s) only)."""
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
    digests = {}
    for name, sha in json.loads((part / MANIFEST).read_text())["files"].items():
        url = f"{base}/{check_name(name)}"
        size = remote_size(url) if streams > 1 and not base.startswith("file:") else 0
        if size > SEGMENT:
            parallel_download(url, part / name, size, sha, streams, progress)
            digests[name] = sha  # hashed as it was written
        else:
            download(url, part / name, progress=progress)
    return store.finish(artifact_id, digests)


def published_id(base_url: str, timeout: float = 30.0) -> str:
    """The id of the artifact served at ``base_url`` (the sha256 of its manifest), for the owner's pre-flight."""
    url = f"{check_url(base_url)}/{MANIFEST}"
    stream, _, _ = _open(url, 0, timeout)
    if stream is None:
        raise ArtifactError(f"{url} is empty")
    with stream:
        return hashlib.sha256(stream.read()).hexdigest()


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=a-`` and ``bytes=a-b`` support (a continued download, parallel ranges),
    the bytes sent with ``sendfile`` (no copy through Python)."""

    span: tuple[int, int] | None = None

    def log_message(self, format, *args):  # one line per request and per range: too many to print
        pass

    def send_head(self):
        first, _, last = self.headers.get("Range", "").removeprefix("bytes=").partition("-")
        path = Path(self.translate_path(self.path))
        self.span = None
        if not first.isdigit() or not path.is_file():
            return super().send_head()
        size, start = path.stat().st_size, int(first)
        end = min(int(last), size - 1) if last.isdigit() else size - 1
        if start >= size or end < start:
            self.send_error(416, "Requested Range Not Satisfiable")
            return None
        f = open(path, "rb")
        self.span = (start, end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return f

    def copyfile(self, source, outputfile):
        if self.span is None:
            return super().copyfile(source, outputfile)
        offset, count = self.span
        outputfile.flush()
        while count > 0:
            sent = os.sendfile(self.connection.fileno(), source.fileno(), offset, min(count, 1 << 30))
            if sent == 0:
                break
            offset, count = offset + sent, count - sent


def server(directory: str | Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``directory`` (call ``serve_forever``; ``server_address`` has the port)."""
    return ThreadingHTTPServer((host, port), partial(RangeHandler, directory=str(directory)))
