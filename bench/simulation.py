"""What Flower + Ray cost: `flwr run` vs the same experiment as a plain in-process loop, then client scaling.

Overhead: the quickstart with the same clients, rounds, steps and evaluation, once through `fedot sim`
(SuperLink + Ray workers) and once with fedot_apps.inprocess (the same ServerApp, strategy and ClientApp
called one after another in this process), at two per-client budgets: Flower's start-up and tear-down cost
a fixed time, so the overhead ratio depends on how much work it is spread over. Scaling: 4, 10, 50, 100
clients with a small per-client budget: wall time, peak memory (PSS) of the whole process tree (sampled every
0.5 s) and its split by process role, emulator loads per worker.

    python bench/simulation.py [--clients 4 10 50 100] [--overhead-clients 10] [--overhead-steps 2 40]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import psutil

from fedot.run.launch import run_sim  # noqa: E402
from fedot.run.services import flwr_home, superlink_pids  # noqa: E402
from fedot.run.sim_folder import Sim  # noqa: E402

BUDGET = {"task": "arc_easy", "partitioning": "iid", "num-rounds": 1, "steps": 2, "batch-size": 1,
          "max-length": 64,
          "eval-limit": 1, "full-ft": False}


def _kind(proc: psutil.Process) -> str:
    """A process's role, for the memory breakdown: Ray actors name themselves in their title."""
    cmd = " ".join(proc.cmdline())
    for kind in ("ClientAppActor", "raylet", "gcs_server", "flower-superlink", "flower-superexec", "flwr-serverapp",
                 "flwr-simulation", "ray"):
        if kind in cmd:
            return kind
    return "bench (this process)" if proc.pid == os.getpid() else proc.name()


class TreeMemory:
    """Peak summed PSS of this process, its children and the local SuperLink's tree, and its split by role at the peak.

    PSS, not RSS: every process maps the same torch libraries and Ray's shared object store, and RSS would count
    those pages once per process.
    """

    def __init__(self):
        self.peak = 0
        self.breakdown: dict[str, int] = {}
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
            by_kind: dict[str, int] = {}
            for p in procs:
                try:
                    kind = _kind(p)
                    by_kind[kind] = by_kind.get(kind, 0) + p.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            if sum(by_kind.values()) > self.peak:
                self.peak, self.breakdown = sum(by_kind.values()), by_kind
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


def flwr_run(clients: int, tag: str, local_steps: int = BUDGET["steps"]) -> dict:
    run = Path(f"runs/bench-sim-{tag}").resolve()
    t = time.perf_counter()
    with TreeMemory() as mem:
        run_sim("sims/pydocs_4clients", [overrides({"steps": local_steps})], clients, run)
    wall = time.perf_counter() - t
    rows = [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]
    loads = {}
    for r in rows[1:]:
        for worker, n in r.get("emulator_loads_by_worker", {}).items():
            loads[worker] = max(loads.get(worker, 0), n)
    return {"clients": clients, "wall_s": wall, "server_app_s": server_app_seconds(run),
            "peak_tree_pss_bytes": mem.peak, "peak_breakdown_bytes": mem.breakdown,
            "workers": len(loads),
            "emulator_loads_per_worker": sorted(set(loads.values())), "accepted": sum(len(r.get("accepted",
                                                                                                [])) for r in rows)}


def in_process(clients: int, local_steps: int) -> dict:
    from fedot_apps.inprocess import run_in_process

    run = Path(f"runs/bench-sim-inprocess-{local_steps}").resolve()
    rc = {**Sim("sims/pydocs_4clients").declared(), **BUDGET, "steps": local_steps, "run-dir": str(run),
          "data-dir": os.environ.get("FEDOT_DATA_DIR", "")}
    t = time.perf_counter()
    with TreeMemory() as mem:
        run_in_process(rc, clients)
    return {"clients": clients, "wall_s": time.perf_counter() - t, "server_app_s": server_app_seconds(run),
            "peak_tree_pss_bytes": mem.peak, "peak_breakdown_bytes": mem.breakdown}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, nargs="*", default=[4, 10, 50, 100], help="scaling runs (none: skip)")
    p.add_argument("--overhead-clients", type=int, default=10)
    p.add_argument("--overhead-steps", type=int, nargs="*", default=[2, 40],
                   help="local steps per client, one pair of runs each (none: skip)")
    p.add_argument("--out", default="bench/results/simulation.json")
    args = p.parse_args(argv)
    n = args.overhead_clients
    overhead = []
    for steps in args.overhead_steps:
        base, flwr = in_process(n, steps), flwr_run(n, f"overhead-{n}-{steps}", steps)
        overhead.append({"local_steps": steps, "in_process": base, "flwr": flwr,
                         "overhead": flwr["wall_s"] / base["wall_s"] - 1,
                         "overhead_inside_server_app": flwr["server_app_s"] / base["server_app_s"] - 1})
    if overhead:
        print(f"\noverhead at {n} clients{'local steps':>14}{'flwr run s':>12}{'in-process s':>14}{'overhead':>10}"
              f"{'start-up+tear-down s (flwr / in-process)':>42}{'inside ServerApp':>18}")
    for o in overhead:
        f, b = o["flwr"], o["in_process"]
        fixed = f"{f['wall_s'] - f['server_app_s']:.1f} / {b['wall_s'] - b['server_app_s']:.1f}"
        print(f"{'':>20}{o['local_steps']:>14}{f['wall_s']:>12.1f}{b['wall_s']:>14.1f}{o['overhead']:>+10.1%}"
              f"{fixed:>42}{o['overhead_inside_server_app']:>+18.1%}")
    scaling = [flwr_run(c, f"scale-{c}") for c in args.clients]
    if scaling:
        print(f"\n{'clients':>8}{'wall s':>9}{'ServerApp s':>13}{'peak tree PSS MiB':>19}{'workers':>9}"
              f"{'emulator loads/worker':>23}")
    for r in scaling:
        print(f"{r['clients']:>8}{r['wall_s']:>9.1f}{r['server_app_s']:>13.1f}{r['peak_tree_pss_bytes'] / 2**20:>19.0f}"
              f"{r['workers']:>9}{str(r['emulator_loads_per_worker']):>23}")
        roles = sorted(r["peak_breakdown_bytes"].items(), key=lambda kv: -kv[1])
        print(f"{'':>8}at the peak (MiB): " + ", ".join(f"{k} {v / 2**20:,.0f}" for k, v in roles))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": "python " + " ".join(sys.argv), "overhead": overhead,
                                          "scaling": scaling}, indent=2) + "\n")


if __name__ == "__main__":
    main()
