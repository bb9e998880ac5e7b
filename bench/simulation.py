"""What Flower + Ray cost: `flwr run` vs the same experiment as a plain in-process loop, then client scaling.

Overhead: the quickstart with the same clients, rounds, steps and evaluation, once through `fedot sim`
(SuperLink + Ray workers) and once with fedot_apps.inprocess (the same ServerApp, strategy and ClientApp
called one after another in this process). Scaling: 4, 10, 50, 100 clients with a small per-client budget:
wall time, peak memory of the whole process tree (sampled every 0.5 s), emulator loads per worker.

    python bench/simulation.py [--clients 4 10 50 100] [--overhead-clients 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import tomllib
from pathlib import Path

import psutil

from fedot.sim import flwr_home, run_sim, superlink_pids

BUDGET = {"task": "arc_easy", "partitioning": "iid", "num-rounds": 1, "local-steps": 2, "batch-size": 1, "max-length": 64, "eval-limit": 1, "full-ft": False}


class TreeMemory:
    """Peak summed RSS of this process, its children and the local SuperLink's tree."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        me = psutil.Process()
        while not self._stop.is_set():
            procs = {me, *me.children(recursive=True)}
            for pid in superlink_pids(flwr_home()):
                try:
                    procs.add(psutil.Process(pid))
                except psutil.NoSuchProcess:
                    pass
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def overrides(extra: dict) -> str:
    return " ".join(f"{k}={json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else v}"
                    for k, v in {**BUDGET, **extra}.items())


def server_app_seconds(run: Path) -> float:
    """The ServerApp's own time (model owner set-up, rounds, report): the wall time less start-up and tear-down."""
    return json.loads((run / "results.json").read_text())["wall_seconds"]


def flwr_run(clients: int, tag: str) -> dict:
    run = Path(f"runs/bench-sim-{tag}").resolve()
    t = time.perf_counter()
    with TreeMemory() as mem:
        run_sim("sims/quickstart", [overrides({})], clients, run)
    wall = time.perf_counter() - t
    rows = [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]
    loads = {}
    for r in rows[1:]:
        for worker, n in r.get("emulator_loads_by_worker", {}).items():
            loads[worker] = max(loads.get(worker, 0), n)
    return {"clients": clients, "wall_s": wall, "server_app_s": server_app_seconds(run), "peak_tree_rss_bytes": mem.peak,
            "workers": len(loads),
            "emulator_loads_per_worker": sorted(set(loads.values())), "accepted": sum(len(r.get("accepted", [])) for r in rows)}


def in_process(clients: int) -> dict:
    from fedot_apps.inprocess import run_in_process

    config = tomllib.loads(Path("sims/quickstart/pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    run = Path("runs/bench-sim-inprocess").resolve()
    rc = {**config, **BUDGET, "run-dir": str(run), "data-dir": os.environ.get("FEDOT_DATA_DIR", "")}
    t = time.perf_counter()
    with TreeMemory() as mem:
        run_in_process(rc, clients)
    return {"clients": clients, "wall_s": time.perf_counter() - t, "server_app_s": server_app_seconds(run),
            "peak_tree_rss_bytes": mem.peak}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, nargs="+", default=[4, 10, 50, 100])
    p.add_argument("--overhead-clients", type=int, default=10)
    p.add_argument("--out", default="bench/results/simulation.json")
    args = p.parse_args(argv)
    n = args.overhead_clients
    base = in_process(n)
    flwr = flwr_run(n, f"overhead-{n}")
    overhead = flwr["wall_s"] / base["wall_s"] - 1
    in_run = flwr["server_app_s"] / base["server_app_s"] - 1
    print(f"\noverhead at {n} clients: flwr run {flwr['wall_s']:.1f}s vs in-process {base['wall_s']:.1f}s -> {overhead:+.1%}"
          f"\n  of which start-up/tear-down: {flwr['wall_s'] - flwr['server_app_s']:.1f}s vs {base['wall_s'] - base['server_app_s']:.1f}s;"
          f" inside the ServerApp: {flwr['server_app_s']:.1f}s vs {base['server_app_s']:.1f}s -> {in_run:+.1%}")
    scaling = [flwr_run(c, f"scale-{c}") for c in args.clients]
    print(f"\n{'clients':>8}{'wall s':>9}{'ServerApp s':>13}{'peak tree MiB':>15}{'workers':>9}{'emulator loads/worker':>23}")
    for r in scaling:
        print(f"{r['clients']:>8}{r['wall_s']:>9.1f}{r['server_app_s']:>13.1f}{r['peak_tree_rss_bytes'] / 2**20:>15.0f}{r['workers']:>9}"
              f"{str(r['emulator_loads_per_worker']):>23}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": "python " + " ".join(sys.argv), "in_process": base, "flwr": flwr,
                                          "overhead": overhead, "overhead_inside_server_app": in_run,
                                          "scaling": scaling}, indent=2) + "\n")


if __name__ == "__main__":
    main()
