"""The README's main job timed as a new user meets it: a first run on an empty cache, then a second run.

Each run is ``fedot sim sims/quickstart`` in a subprocess with its own ``FEDOT_CACHE`` and data owners' caches
(``FEDOT_NODE_CACHE``; both empty before the first run,
so converting the embedded model, building the emulator and both zero-shot evaluations are included) and its own
Flower home. Every output line is timestamped; the phases come from the progress lines and from the timings the run
writes (rounds.jsonl: ``eval_seconds`` / ``train_seconds``; results.json: ``baseline_seconds``):

    start-up   command start -> the ServerApp's first line (Flower SuperLink, Ray, the ServerApp process)
    model      -> "emulator ready" (load or convert the full model, build or reuse the emulator)
    delivery   the emulator to every data owner (delivery.jsonl; nothing to send when their caches hold it)
    zero-shot  round 0's evaluations (full model and emulator; cached after the first run)
    training   every round's send -> aggregate (data owners' local steps, Ray scheduling, transfers)
    evaluation plug-in and tuned emulator after the rounds that evaluate
    baseline   the FT baseline (train + evaluate; cached after the first run)
    tear-down  the ServerApp's last line -> command exit (Flower, Ray and SuperLink shutdown, report)

    .venv/bin/python bench/main_job.py [--runs 2] [--sim sims/quickstart] [--keep-alive]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = ("start-up", "model", "delivery", "zero-shot", "training", "evaluation", "baseline", "tear-down")


def timed_run(cmd: list[str], env: dict, log: Path) -> list[tuple[float, str]]:
    t0 = time.perf_counter()
    lines = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc, \
            open(log, "w") as out:
        for line in proc.stdout:
            lines.append((time.perf_counter() - t0, line.rstrip("\n")))
            out.write(f"[{lines[-1][0]:9.1f}] {line}")
            print(f"[{lines[-1][0]:7.1f}] {line}", end="", flush=True)
    lines.append((time.perf_counter() - t0, ""))
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); log: {log}")
    return lines


def first(lines, text: str) -> float:
    return next(t for t, line in lines if text in line)


def phases(lines, run_dir: Path) -> dict:
    from fedot.run.progress import MARK

    rows = [json.loads(x) for x in (run_dir / "rounds.jsonl").read_text().splitlines()]
    result = json.loads((run_dir / "results.json").read_text())
    server = first(lines, "outputs in")
    done = max(t for t, line in lines if MARK in line and "done in" in line)
    out = {"start-up": server, "model": first(lines, "emulator ready") - server,
           "delivery": sum(json.loads(x).get("seconds", 0.0)
                           for x in (run_dir / "delivery.jsonl").read_text().splitlines()),
           "zero-shot": rows[0].get("eval_seconds", 0.0),
           "training": sum(r.get("train_seconds", 0.0) for r in rows[1:]),
           "evaluation": sum(r.get("eval_seconds", 0.0) for r in rows[1:]),
           "baseline": result.get("baseline_seconds", 0.0), "tear-down": lines[-1][0] - done}
    out["total"] = lines[-1][0]
    out["numbers"] = result["numbers"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sim", default="sims/quickstart")
    p.add_argument("--runs", type=int, default=2, help="consecutive runs sharing one cache (the first starts empty)")
    p.add_argument("--keep-alive", action="store_true", help="pass --keep-alive (SuperLink and Ray stay up)")
    p.add_argument("--out", default="bench/results/main_job.json")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fedot-main-job-"))
    env = {**os.environ, "FEDOT_CACHE": str(work / "cache"), "FEDOT_NODE_CACHE": str(work / "nodes"),
           "FLWR_HOME": str(work / "flwr")}
    runs = []
    try:
        for i in range(args.runs):
            run_dir = work / f"run{i + 1}"
            cmd = [sys.executable, "-m", "fedot.cli", "sim", args.sim, "--run-dir", str(run_dir)]
            cmd += ["--keep-alive"] if args.keep_alive else []
            runs.append(phases(timed_run(cmd, env, work / f"run{i + 1}.log"), run_dir))
    finally:
        subprocess.run([sys.executable, "-m", "fedot.cli", "stop"], env=env, capture_output=True)
    print(f"\n{'phase':<12}" + "".join(f"{'run ' + str(i + 1):>10}" for i in range(len(runs))))
    for name in (*PHASES, "total"):
        print(f"{name:<12}" + "".join(f"{r[name]:>9.1f}s" for r in runs))
    record = {"command": "python " + " ".join(sys.argv), "sim": args.sim, "keep_alive": args.keep_alive,
              "cpus": os.cpu_count(), "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {args.out}; logs in {work}")


if __name__ == "__main__":
    main()
