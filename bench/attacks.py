"""Robustness evidence on the real model through real `fedot sim` runs: attacks x rules, and dropout vs seeds.

Each grid point is one `fedot sim` run (Flower + Ray, SmolLM2-135M) in ``<out>/<name>``; a point whose results.json
exists is read, not rerun, so the grid can be interrupted and continued. Prints markdown tables and writes JSON.

    .venv/bin/python bench/attacks.py attacks [--out runs/attacks]
    .venv/bin/python bench/attacks.py dropout [--out runs/dropout]
    .venv/bin/python bench/attacks.py crash [--out runs/crash]    # after dropout: compares with its seed-0 run
    .venv/bin/python bench/attacks.py defaults [--out runs/defaults] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ATTACK_BASE = "num-rounds=1 steps=2 eval-limit=6 emulator-blocks=22 full-ft=false"
SEEDS = (0, 1)  # 3 would be better; 2 is what this machine's session had time for
DROPOUT_BASE = "num-rounds=5 steps=3 eval-every=5 full-ft=false"


def run(sim: str, out: Path, run_config: str) -> dict:
    results = out / "results.json"
    if not results.exists():
        cmd = [sys.executable, "-m", "fedot.cli", "sim", sim, "--run-dir", str(out), "--overwrite",
               "--run-config", run_config]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            return {"failed": (proc.stdout + proc.stderr).strip().splitlines()[-1][:200], "plugin": None}
    record = json.loads(results.read_text())
    rows = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    return {"plugin": record["numbers"]["plugin"], "zero_shot": record["numbers"]["zero_shot"],
            "rejected": sum(len(r.get("rejected", [])) for r in rows[1:]),
            "faults": sum(len(r.get("faults", [])) for r in rows[1:]), "command": record.get("command")}


def cell(point: dict) -> str:
    return "failed" if point["plugin"] is None else f"{point['plugin']:,.2f}"


def attacks(out: Path) -> dict:
    rules = ("fedavg", "median", "trimmed-mean", "krum")
    grid = {"none": [("0%", "")]}
    for attack in ("scale", "sign-flip", "examples-inflation"):
        grid[attack] = [(f"{int(f * 100)}%", f"fault-byzantine={f} fault-attack='{attack}'") for f in (0.3,)]
    table = {}
    for rule in rules:
        for attack, points in grid.items():
            for frac, extra in points:
                name = f"{rule}-{attack}-{frac.rstrip('%')}"
                cfg = f"{ATTACK_BASE} aggregation='{rule}' krum-malicious=3 {extra}"
                table[(rule, attack, frac)] = run("sims/smollm2_10clients", out / name, cfg)
                print(rule, attack, frac, table[(rule, attack, frac)], flush=True)
    lines = ["| attack | malicious | " + " | ".join(rules) + " |", "|---|---|" + "---|" * len(rules)]
    for attack, points in grid.items():
        for frac, _ in points:
            cells = [table[(r, attack, frac)] for r in rules]
            lines.append(f"| {attack} | {frac} | " + " | ".join(cell(c) for c in cells) + " |")
    return {"table": "\n".join(lines), "points": {"/".join(k): v for k, v in table.items()}}


BOUNDS = {"plain FedAvg": "max-weight-ratio=0 max-norm-ratio=0", "FedAvg, default bounds": ""}
DEFAULT = "FedAvg, default bounds"


def defaults(out: Path, seeds: tuple[int, ...] = (0,)) -> dict:
    """FedAvg with the default bounded influence (max-weight-ratio = max-norm-ratio = 10) beside plain FedAvg (both
    off), at 10% and 30% attackers, per attack and seed; the clean run once (the bounds leave honest runs exact)."""
    grid = [("none", "0%", "")] + [(attack, f"{int(f * 100)}%", f"fault-byzantine={f} fault-attack='{attack}'")
                                   for f in (0.1, 0.3) for attack in ("scale", "sign-flip", "examples-inflation")]
    points = {}
    for attack, frac, extra in grid:
        for variant, bounds in BOUNDS.items():
            if attack == "none" and bounds:  # the clean run once, as users run it: with the default bounds
                continue
            for seed in seeds:
                name = f"{attack}-{frac.rstrip('%')}-{'plain' if bounds else 'default'}-seed{seed}"
                cfg = f"{ATTACK_BASE} aggregation='fedavg' seed={seed} {bounds} {extra}"
                points[f"{variant}/{attack}/{frac}/seed{seed}"] = r = run("sims/smollm2_10clients", out / name, cfg)
                print(variant, attack, frac, seed, r, flush=True)
    lines = [f"| attack | malicious | {' | '.join(BOUNDS)} | seeds |", "|---|---|---|---|---|"]
    for attack, frac, _ in grid:
        cells = []
        for variant, bounds in BOUNDS.items():
            values = [points.get(f"{variant if attack != 'none' else DEFAULT}/{attack}/{frac}/seed{s}",
                                 {}).get("plugin") for s in seeds]
            ok = [v for v in values if v is not None]
            cells.append("failed" if not ok else f"{statistics.mean(ok):,.2f}" + (
                f" ± {statistics.stdev(ok):,.2f}" if len(ok) > 1 else ""))
        lines.append(f"| {attack} | {frac} | {' | '.join(cells)} | {len(seeds)} |")
    return {"table": "\n".join(lines), "points": points, "seeds": list(seeds)}


def dropout(out: Path) -> dict:
    points = {}
    for label, extra in (("no dropout", ""), ("30% dropout", "fault-dropout=0.3")):
        values = []
        for seed in SEEDS:
            r = run("sims/quickstart", out / f"{label.split()[0]}-seed{seed}", f"{DROPOUT_BASE} seed={seed} {extra}")
            points[f"{label}/seed{seed}"] = r
            values.append(r.get("plugin"))
            print(label, seed, r, flush=True)
        ok = [v for v in values if v is not None]
        points[label] = {"mean": statistics.mean(ok), "std": statistics.stdev(ok) if len(ok) > 1 else 0.0}
    lines = [f"| condition | plug-in per seed {SEEDS} | mean ± std | replies lost to dropout |", "|---|---|---|---|"]
    for label in ("no dropout", "30% dropout"):
        seeds = [points[f"{label}/seed{s}"] for s in SEEDS]
        lines.append(f"| {label} | {', '.join(cell(s) for s in seeds)} | "
                     f"{points[label]['mean']:,.2f} ± {points[label]['std']:,.2f} | "
                     f"{sum(s.get('faults', 0) for s in seeds)} |")
    return {"table": "\n".join(lines), "points": points}


def _kill_when(home: Path, ready, target: str, done) -> bool:
    """SIGKILL the processes named ``target`` that belong to this run's Flower home once ``ready()`` holds (one
    worker: the first found running; retried until one is, or ``done()``). True when something was killed."""
    import os
    import signal
    import time

    while not ready():
        time.sleep(0.2)
    while not done():
        for pid in subprocess.run(["pgrep", "-f", target], capture_output=True, text=True).stdout.split():
            try:
                if f"FLWR_HOME={home}".encode() in Path(f"/proc/{pid}/environ").read_bytes():
                    os.kill(int(pid), signal.SIGKILL)
                    print(f"killed {target} {pid}", flush=True)
                    if target != "flwr-simulation":
                        return True  # one worker is enough
            except OSError:
                pass
        if target == "flwr-simulation":
            return True
        time.sleep(0.1)
    return False


# (name, process, checkpointed round after which it is killed, environment); a worker: "ray::ClientAppActor.run" is
# an actor running a ClientApp (an idle one is "ray::ClientAppActor"); "worker-flower": the same kill with fedot's
# replacement of dead workers turned off (fedot_apps/ray_workers.py), i.e. Flower 1.41's own actor pool
CRASHES = (("server", "flwr-simulation", 2, {}), ("worker", "ray::ClientAppActor.run", 1, {}),
           ("worker-flower", "ray::ClientAppActor.run", 1, {"FEDOT_REPLACE_DEAD_WORKERS": "0"}))


def crash(out: Path) -> dict:
    """kill -9 of the ServerApp after round 2's checkpoint, then --resume; kill -9 of one Ray worker in round 2.

    Both against the uninterrupted no-dropout seed-0 run of ``dropout`` (same settings)."""
    import os
    import signal
    import time

    def rounds_done(run_dir):
        state = run_dir / "checkpoint" / "state.json"
        return json.loads(state.read_text())["round"] if state.exists() else 0

    saved = Path("bench/results/crash.json")
    record = {k: v for k, v in json.loads(saved.read_text()).items() if k in {c[0] for c in CRASHES}} \
        if saved.exists() else {}  # a crash already measured is kept, not rerun
    for name, target, when, extra_env in CRASHES:
        if name in record:
            continue
        run_dir, home = out / name, out / f"{name}-flwr"
        shutil.rmtree(run_dir, ignore_errors=True)  # ready() reads its checkpoint: never a previous run's
        env = {**os.environ, "FLWR_HOME": str(home), **extra_env}
        cmd = [sys.executable, "-m", "fedot.cli", "sim", "sims/quickstart", "--run-dir", str(run_dir), "--overwrite",
               "--run-config", f"{DROPOUT_BASE} seed=0"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        killed = _kill_when(home, lambda: rounds_done(run_dir) >= when or proc.poll() is not None, target,
                            lambda: proc.poll() is not None)
        killed_at = rounds_done(run_dir) if killed else None
        if target == "flwr-simulation":
            os.killpg(proc.pid, signal.SIGKILL)
            subprocess.run([sys.executable, "-m", "fedot.cli", "stop"], env=env, capture_output=True)
            resumed = subprocess.run([sys.executable, "-m", "fedot.cli", "sim", "sims/quickstart", "--resume",
                                      str(run_dir)], env=env, capture_output=True, text=True)
            status = resumed.returncode
        else:
            status = proc.wait()
        rows = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
        result = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").exists() else {}
        record[name] = {"killed_after_round": killed_at, "exit": status, "seconds": time.perf_counter() - t0,
                        "plugin": result.get("numbers", {}).get("plugin"),
                        "rejected": [r for row in rows[1:] for r in row.get("rejected", [])],
                        "accepted_per_round": {r["round"]: len(r.get("accepted") or []) for r in rows[1:]},
                        "rounds": [r["round"] for r in rows]}
        print(name, record[name], flush=True)
    dropout_json = Path("bench/results/dropout.json")  # the uninterrupted no-dropout seed-0 run (same settings)
    record["uninterrupted_plugin"] = json.loads(dropout_json.read_text())["points"]["no dropout/seed0"]["plugin"] \
        if dropout_json.exists() else None
    lines = ["| crash | killed after round | rounds in rounds.jsonl | valid replies per round (of 4) | exit | "
             "plug-in | uninterrupted plug-in |", "|---|---|---|---|---|---|---|"]
    for name, what in (("server", "kill -9 of the ServerApp (flwr-simulation) after round 2, then --resume"),
                       ("worker", "kill -9 of one Ray worker running a data owner (ClientAppActor) in round 2"),
                       ("worker-flower", "the same, with Flower 1.41's actor pool (FEDOT_REPLACE_DEAD_WORKERS=0)")):
        if name not in record:
            continue
        r = record[name]
        per_round = ", ".join(str(v) for v in r["accepted_per_round"].values()) if "accepted_per_round" in r else "—"
        lines.append(f"| {what} | {r['killed_after_round']} | {r['rounds']} | {per_round} | {r['exit']} | "
                     f"{cell(r)} | {cell({'plugin': record['uninterrupted_plugin']})} |")
    record["table"] = "\n".join(lines)
    return record


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("attacks", "dropout", "crash", "defaults"))
    p.add_argument("--out", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="defaults: seeds of every cell")
    args = p.parse_args(argv)
    out = Path(args.out or f"runs/{args.what}").resolve()
    jobs = {"attacks": attacks, "dropout": dropout, "crash": crash,
            "defaults": lambda o: defaults(o, tuple(args.seeds))}
    record = jobs[args.what](out)
    record["command"] = "python " + " ".join(sys.argv)
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path(f"bench/results/{args.what}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    print("\n" + record["table"])


if __name__ == "__main__":
    main()
