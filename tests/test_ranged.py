"""Large files by parallel HTTP ranges: complete, hashed as written, resumed after an interruption, refused when
corrupt or when the server cannot serve ranges."""

from __future__ import annotations

import hashlib
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fedot.delivery import ranged
from fedot.delivery.url import server
from fedot.emulator.artifact import ArtifactError


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setattr(ranged, "SEGMENT", 1 << 16)  # many segments of a small file
    data = os.urandom(1 << 20) + b"tail"
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "big.bin").write_bytes(data)
    httpd = server(tmp_path / "srv")
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/big.bin", data
    httpd.shutdown()


def test_parallel_ranges_write_the_file_and_its_hash(served, tmp_path):
    url, data = served
    dest = tmp_path / "out.bin"
    assert ranged.remote_size(url) == len(data)
    moved = ranged.parallel_download(url, dest, len(data), hashlib.sha256(data).hexdigest(), streams=4,
                                     progress=False)
    assert moved == len(data) and dest.read_bytes() == data and not dest.with_name("out.bin.segments").exists()


def test_an_interrupted_download_continues_with_the_bytes_it_lacks(served, tmp_path, monkeypatch):
    url, data = served
    dest, real, calls = tmp_path / "out.bin", ranged.urllib.request.urlopen, []

    def flaky(request, *a, **k):
        calls.append(request)
        if len(calls) == 6:
            raise OSError("connection reset")
        return real(request, *a, **k)

    monkeypatch.setattr(ranged.urllib.request, "urlopen", flaky)
    with pytest.raises(ArtifactError, match="stopped: connection reset"):
        ranged.parallel_download(url, dest, len(data), hashlib.sha256(data).hexdigest(), streams=1, progress=False)
    assert dest.with_name("out.bin.segments").exists()  # what arrived is kept
    monkeypatch.setattr(ranged.urllib.request, "urlopen", real)
    moved = ranged.parallel_download(url, dest, len(data), hashlib.sha256(data).hexdigest(), streams=3,
                                     progress=False)
    assert dest.read_bytes() == data and moved == len(data) - 5 * (1 << 16)  # the first five segments not again


def test_a_corrupt_download_is_discarded_with_the_reason(served, tmp_path):
    url, data = served
    with pytest.raises(ArtifactError, match="sha256 .* the manifest says .* discarded"):
        ranged.parallel_download(url, tmp_path / "out.bin", len(data), "0" * 64, streams=2, progress=False)
    assert not (tmp_path / "out.bin").exists()


def test_a_server_without_ranges_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(ranged, "SEGMENT", 1 << 16)
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "f").write_bytes(b"x" * (1 << 17))

    class Plain(SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(tmp_path / "srv"), **k)

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Plain)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ArtifactError, match="does not serve byte ranges"):
            ranged.parallel_download(f"http://127.0.0.1:{httpd.server_address[1]}/f", tmp_path / "o", 1 << 17,
                                     "0" * 64, streams=2, progress=False)
    finally:
        httpd.shutdown()
