"""Delivering an OPT-13B-sized emulator by url: one HTTP stream (fedot before ranged downloads) against parallel
byte ranges hashed as they arrive, side by side in one run, on loopback.

A synthetic artifact of ``--gib`` GiB (default 13.4: the 2-18-2 OPT-13B emulator, one ``model.safetensors`` as
``fedot emulator build`` writes it) with a real manifest is served by ``fedot emulator serve`` in its own process; a
data owner's download (``fedot.delivery.url.fetch`` into a fresh node store, verification included) runs in another
process for each mode, while this process samples both processes' resident memory every 0.2 s. Reports seconds,
MB/s and peak RSS per process.

    .venv/bin/python bench/delivery_large.py [--gib 13.4] [--streams 1 8]   # bench/results/delivery_large.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
FETCH = """
import sys, time
from fedot.delivery.store import NodeStore
from fedot.delivery.url import fetch
t = time.perf_counter()
fetch(sys.argv[1], sys.argv[2], NodeStore(sys.argv[3]), progress=False, streams=int(sys.argv[4]))
print(time.perf_counter() - t)
"""


def synthetic_artifact(folder: Path, gib: float) -> str:
    from fedot.emulator.artifact import write_manifest

    folder.mkdir(parents=True)
    block = os.urandom(64 << 20)
    size = int(gib * 2**30)
    with open(folder / "model.safetensors", "wb") as f:
        for offset in range(0, size, len(block)):
            f.write(block[: min(len(block), size - offset)])
    (folder / "config.json").write_text("{}")
    return write_manifest(folder, {"source_model": "synthetic", "method": "uniform", "params": {}, "family": "opt",
                                   "num_blocks": 40, "adapter_blocks": [0, 1, 38, 39],
                                   "emulator_blocks": list(range(2, 38, 2)), "lossless": False})


def peak_rss(procs: list[psutil.Process], stop) -> dict:
    peaks = {}
    while not stop():
        for name, p in procs:
            try:
                peaks[name] = max(peaks.get(name, 0), sum(c.memory_info().rss for c in [p, *p.children(True)]))
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.2)
    return peaks


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gib", type=float, default=13.4)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--out", default=str(ROOT / "bench/results/delivery_large.json"))
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fedot-delivery-large-", dir=os.environ.get("TMPDIR")))
    try:
        t = time.perf_counter()
        artifact_id = synthetic_artifact(work / "artifact", args.gib)
        print(f"synthetic {args.gib} GiB artifact written and hashed in {time.perf_counter() - t:.0f} s", flush=True)
        server = subprocess.Popen([sys.executable, "-m", "fedot.cli", "emulator", "serve", str(work / "artifact"),
                                   "--port", "0"], stdout=subprocess.PIPE, text=True)
        line = server.stdout.readline()
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        rows = []
        for streams in args.streams:
            store = work / f"node-{streams}"
            client = subprocess.Popen([sys.executable, "-c", FETCH, url, artifact_id, str(store), str(streams)],
                                      stdout=subprocess.PIPE, text=True)
            peaks = peak_rss([("server", psutil.Process(server.pid)), ("data owner", psutil.Process(client.pid))],
                             lambda: client.poll() is not None)
            seconds = float(client.stdout.read().strip().splitlines()[-1])
            assert client.returncode == 0
            rows.append({"streams": streams, "seconds": seconds, "mb_per_s": args.gib * 2**30 / seconds / 1e6,
                         "peak_rss_mib": {k: v / 2**20 for k, v in peaks.items()}})
            print(json.dumps(rows[-1]), flush=True)
            shutil.rmtree(store)
        server.terminate()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = {"command": "python bench/delivery_large.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "gib": args.gib, "cpus": os.cpu_count(), "rows": rows,
              "speedup": rows[0]["seconds"] / rows[-1]["seconds"] if len(rows) > 1 else None}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
