"""Robustness evidence on the real model through real `fedot sim` runs: attacks x rules, and dropout vs seeds.

Each grid point is one `fedot sim` run (Flower + Ray, SmolLM2-135M) in ``<out>/<name>``; a point whose results.json
exists is read, not rerun, so the grid can be interrupted and continued. Prints markdown tables and writes JSON.

    .venv/bin/python bench/attacks.py attacks [--out runs/attacks]
    .venv/bin/python bench/attacks.py dropout [--out runs/dropout]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ATTACK_BASE = "num-rounds=1 local-steps=2 eval-limit=6 emulator-blocks=22 full-ft=false"
DROPOUT_BASE = "num-rounds=5 eval-every=5 full-ft=false"


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
                cfg = f"{ATTACK_BASE} aggregation='{rule}' malicious=3 {extra}"
                table[(rule, attack, frac)] = run("sims/smollm2_10clients", out / name, cfg)
                print(rule, attack, frac, table[(rule, attack, frac)], flush=True)
    lines = ["| attack | malicious | " + " | ".join(rules) + " |", "|---|---|" + "---|" * len(rules)]
    for attack, points in grid.items():
        for frac, _ in points:
            cells = [table[(r, attack, frac)] for r in rules]
            lines.append(f"| {attack} | {frac} | " + " | ".join(cell(c) for c in cells) + " |")
    return {"table": "\n".join(lines), "points": {"/".join(k): v for k, v in table.items()}}


def dropout(out: Path) -> dict:
    points = {}
    for label, extra in (("no dropout", ""), ("30% dropout", "fault-dropout=0.3")):
        values = []
        for seed in (0, 1, 2):
            r = run("sims/quickstart", out / f"{label.split()[0]}-seed{seed}", f"{DROPOUT_BASE} seed={seed} {extra}")
            points[f"{label}/seed{seed}"] = r
            values.append(r.get("plugin"))
            print(label, seed, r, flush=True)
        ok = [v for v in values if v is not None]
        points[label] = {"mean": statistics.mean(ok), "std": statistics.stdev(ok) if len(ok) > 1 else 0.0}
    lines = ["| condition | plug-in per seed (0, 1, 2) | mean ± std | replies lost to dropout |", "|---|---|---|---|"]
    for label in ("no dropout", "30% dropout"):
        seeds = [points[f"{label}/seed{s}"] for s in (0, 1, 2)]
        lines.append(f"| {label} | {', '.join(cell(s) for s in seeds)} | "
                     f"{points[label]['mean']:,.2f} ± {points[label]['std']:,.2f} | "
                     f"{sum(s.get('faults', 0) for s in seeds)} |")
    return {"table": "\n".join(lines), "points": points}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("attacks", "dropout"))
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    out = Path(args.out or f"runs/{args.what}").resolve()
    record = {"attacks": attacks, "dropout": dropout}[args.what](out)
    record["command"] = "python " + " ".join(sys.argv)
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path(f"bench/results/{args.what}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    print("\n" + record["table"])


if __name__ == "__main__":
    main()
