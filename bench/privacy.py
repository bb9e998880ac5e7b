"""Privacy-utility evidence on the real model: plug-in perplexity against the (epsilon, delta) spent.

Each point is one `fedot sim sims/smollm2_10clients` run (Flower + Ray, SmolLM2-135M, 10 data owners) with
client-side fixed clipping (``dp = "client-fixed"``: Flower's DifferentialPrivacyClientSideFixedClipping +
fixedclipping_mod) at one noise multiplier, and the same run without DP. A point whose results.json exists is read,
not rerun. Writes bench/results/privacy.json with a markdown table.

    .venv/bin/python bench/privacy.py [--out runs/privacy] [--z 0.001 0.01 0.1 1.0] [--clip 1.0]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

BASE = "num-rounds=3 steps=3 eval-every=3 eval-limit=6 emulator-blocks=22 full-ft=false"
ROOT = Path(__file__).resolve().parents[1]


def run(out: Path, run_config: str) -> dict:
    if not (out / "results.json").exists():
        cmd = [sys.executable, "-m", "fedot.cli", "sim", "sims/smollm2_10clients", "--run-dir", str(out),
               "--overwrite", "--run-config", run_config]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            return {"failed": (proc.stdout + proc.stderr).strip().splitlines()[-1][:300]}
    record = json.loads((out / "results.json").read_text())
    n = record["numbers"]
    return {"plugin": n["plugin"], "zero_shot": n["zero_shot"], "emulator_finetuned": n["emulator_finetuned"],
            "gap": n["emulator_finetuned"] - n["plugin"], "privacy": record.get("privacy"),
            "command": record["command"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "runs/privacy"))
    ap.add_argument("--z", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0])
    ap.add_argument("--clip", type=float, default=1.0)
    args = ap.parse_args()
    out = Path(args.out)
    points = {"no DP": run(out / "none", BASE)}
    print("no DP", points["no DP"], flush=True)
    for z in args.z:
        name = f"z={z:g}"
        dp = f"dp='client-fixed' dp-noise-multiplier={z} dp-clip-norm={args.clip}"
        points[name] = run(out / f"z{z:g}", f"{BASE} {dp}")
        print(name, points[name], flush=True)
    lines = ["| DP | noise multiplier z | epsilon (delta 1e-5, 3 releases) | plug-in (↓) | OT emulator (↓) | "
             "owner's gap (emulator − plug-in) |", "|---|---|---|---|---|---|"]
    for name, p in points.items():
        if "failed" in p:
            lines.append(f"| {name} | | | failed: {p['failed']} | | |")
            continue
        eps = p["privacy"]["epsilon"] if p["privacy"] else math.inf
        z = p["privacy"]["noise_multiplier"] if p["privacy"] else "—"
        lines.append(f"| {'client-fixed, C = ' + format(args.clip, 'g') if p['privacy'] else 'none'} | {z} | "
                     f"{'∞' if math.isinf(eps) else format(eps, ',.4g')} | {p['plugin']:,.2f} | "
                     f"{p['emulator_finetuned']:,.2f} | {p['gap']:,.2f} |")
    zero = next((p["zero_shot"] for p in points.values() if "zero_shot" in p), None)
    table = "\n".join(lines)
    print(table, f"\nzero-shot: {zero}")
    Path(ROOT / "bench/results/privacy.json").write_text(json.dumps(
        {"command": "python bench/privacy.py " + " ".join(sys.argv[1:]), "base": BASE, "clip": args.clip,
         "zero_shot": zero, "points": points, "table": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
