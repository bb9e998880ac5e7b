"""What one emulator delivery costs each process of a real deployment, by chunk size.

For each ``emulator-chunk-mb`` a fresh deployment (``fedot.run.deploy``: a SuperLink with TLS and N SuperNodes,
empty node caches) runs one short round of ``sims/quickstart`` while a sampler records every 0.2 s the resident
memory of each process the deployment started, grouped by role: the SuperLink (with its object store), the
ServerApp process (the owner: full model + emulator + the Messages it builds), each SuperNode and the ClientApp
processes they start per Message. The largest chunk is above the artifact's size: the whole emulator in one
Message, what delivery would be without chunking. Delivery time and Messages come from ``delivery.jsonl``.

Then the same with ``url`` delivery (the artifact served over HTTP by this process; the SuperLink relays nothing of
it, each node's first training ClientApp downloads it, so its cost shows in round 1's training time).

    .venv/bin/python bench/delivery.py [--chunks 32 128 1024] [--no-url] [--nodes 2]  # bench/results/delivery.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedot.run.deploy import Deployment  # noqa: E402
from fedot.run.launch import prepare  # noqa: E402

ROLES = {"flower-superlink": "superlink", "flwr-serverapp": "serverapp", "flower-supernode": "supernode",
         "flwr-clientapp": "clientapp"}


def role(proc: psutil.Process) -> str | None:
    cmd = " ".join(proc.cmdline())
    return next((r for exe, r in ROLES.items() if exe in cmd), None)


class Sampler(threading.Thread):
    """Peak RSS per role over the deployment's process trees (a role's peak is its largest single process), during
    the delivery (until ``delivery.jsonl`` appears) and after it (training, evaluation)."""

    def __init__(self, deployment: Deployment, run_dir: Path):
        super().__init__(daemon=True)
        self.deployment, self.run_dir, self.done = deployment, run_dir, threading.Event()
        self.peaks: dict[str, dict[str, int]] = {"delivery": {}, "after": {}}

    def run(self):
        while not self.done.is_set():
            phase = self.peaks["after" if (self.run_dir / "delivery.jsonl").exists() else "delivery"]
            for leader in list(self.deployment.procs):
                try:
                    tree = [psutil.Process(leader.pid), *psutil.Process(leader.pid).children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for p in tree:
                    try:
                        name, rss = role(p), p.memory_info().rss
                    except psutil.NoSuchProcess:
                        continue
                    if name:
                        phase[name] = max(phase.get(name, 0), rss)
            time.sleep(0.2)


def measure(mode: str, chunk_mb: float, nodes: int, work: Path) -> dict:
    """One deployment run; ``url`` mode serves the owner's artifact over HTTP from this process."""
    name = f"{mode}-{chunk_mb:g}"
    run_dir = work / f"run-{name}"
    overrides = [f"num-clients={nodes} num-rounds=1 steps=1 eval-limit=1 full-ft=false "
                 f"emulator-chunk-mb={chunk_mb} wait-for-clients-s=120 emulator-delivery='{mode}'"]
    httpd = None
    if mode == "url":
        from fedot.delivery.url import server

        base = [overrides[0].replace("emulator-delivery='url'", "emulator-delivery='message'")]
        _, _, cfg, _ = prepare(ROOT / "sims/quickstart", base, print_config=True)
        httpd = server(cfg.emulator.build()[0])
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        overrides.append(f"emulator-url='http://127.0.0.1:{httpd.server_address[1]}'")
    sim, flat, cfg, run_dir = prepare(ROOT / "sims/quickstart", overrides, run_dir=run_dir, overwrite=True)
    with Deployment(work / f"deployment-{name}", nodes, tls=True, data_dir=flat.get("data-dir")) as deployment:
        sampler = Sampler(deployment, run_dir)
        sampler.start()
        _, status = deployment.run(sim, flat, run_dir)
        sampler.done.set()
        sampler.join()
    if httpd is not None:
        httpd.shutdown()
    delivery = json.loads((run_dir / "delivery.jsonl").read_text().splitlines()[0])
    round1 = json.loads((run_dir / "rounds.jsonl").read_text().splitlines()[1])
    return {"mode": mode, "chunk_mb": chunk_mb if mode == "message" else None, "status": status,
            "delivery_seconds": delivery.get("seconds"), "round1_train_seconds": round1["train_seconds"],
            "bytes_sent_by_owner": delivery.get("bytes_sent"),
            "messages_per_node": max((n["messages"] for n in delivery.get("nodes", {}).values()), default=0),
            "peak_rss_mib": {phase: {k: v / 2**20 for k, v in sorted(peaks.items())}
                             for phase, peaks in sampler.peaks.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=float, nargs="*", default=[32, 128, 1024], help="message delivery chunk sizes "
                    "(none: url only); points already in --out for other settings are kept")
    ap.add_argument("--url", action=argparse.BooleanOptionalAction, default=True, help="also measure url delivery")
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench/results/delivery.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fedot-delivery-"))
    os.environ.setdefault("FEDOT_DATA_DIR", str(ROOT.parent / "shared/data"))
    old = json.loads(Path(args.out).read_text())["points"] if Path(args.out).exists() else []
    todo = [("message", c) for c in args.chunks] + ([("url", 32)] if args.url else [])
    points = [p for p in old if (p["mode"], p["chunk_mb"] or 32) not in todo]
    for mode, chunk in todo:
        points.append(measure(mode, chunk, args.nodes, work))
        print(json.dumps(points[-1]), flush=True)
    record = {"command": "python bench/delivery.py " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
              "nodes": args.nodes, "points": points}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
