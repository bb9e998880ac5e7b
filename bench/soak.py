"""Soak: 50 rounds of `fedot sim` with 10 data owners under dropout, stragglers and attackers, resources sampled.

A small random Llama (8 blocks, hidden 64, SmolLM2's tokenizer: the shape of the embedded model, minutes instead
of hours) runs through the real stack (local SuperLink, Flower's simulation engine, Ray workers) with every fault
at once: 30% of the data owners fail each round (``fault-dropout``), every reply is delayed by up to
``fault-straggler-s`` with a ``round-timeout-s`` that cuts the slowest, and 10% of the data owners send sign-flipped
updates under the coordinate-wise median. After every round the ServerApp's process (``flwr-simulation``: the model
owner and Flower's driver) and each Ray worker are sampled (RSS, open files, threads), with the checkpoint's size.
Reported: the slope of each series over the rounds after warm-up (least squares, MiB or count per round), first
and last values, whether ``rounds.jsonl`` holds every round once, and the run's final status.

    .venv/bin/python bench/soak.py [--rounds 50] [--out runs/soak]      # writes bench/results/soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from fedot.run.deploy import free_port
from fedot.run.log import read_rows

FAULTS = ("fault-dropout=0.3 fault-straggler-s=2.0 round-timeout-s=20 fault-byzantine=0.1 fault-attack='sign-flip' "
          "aggregation='median'")
BUDGET = "steps=2 batch-size=2 max-length=64 eval-every=10 eval-limit=2 full-ft=false bottom=1 top=1 emulator-blocks=3"
WARM_UP = 5  # rounds left out of the slopes (allocator and caches filling)


def small_model(out: Path) -> Path:
    """A random 8-block Llama with the embedded model's tokenizer, saved as a model directory."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from fedot.models import DEFAULT_MODEL, resolve

    if (out / "config.json").exists():
        return out
    tokenizer = AutoTokenizer.from_pretrained(resolve(DEFAULT_MODEL))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=8,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _ours(pid: int, home: Path) -> bool:
    try:
        return f"FLWR_HOME={home}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def sample(home: Path, checkpoint: Path) -> dict:
    """RSS (MiB), open files and threads of the ServerApp process and of each Ray worker of this run."""
    import psutil

    server, workers = None, []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if ("flwr-simulation" in cmd or "ray::ClientAppActor" in cmd) and _ours(p.info["pid"], home):
            try:
                with p.oneshot():
                    info = {"rss_mib": p.memory_info().rss / 2**20, "open_files": p.num_fds(),
                            "threads": p.num_threads()}
            except psutil.NoSuchProcess:
                continue
            if "flwr-simulation" in cmd:
                server = info
            else:
                workers.append(info)
    size = sum(f.stat().st_size for f in checkpoint.rglob("*") if f.is_file()) if checkpoint.exists() else 0
    return {"server": server, "workers": workers, "checkpoint_bytes": size}


def slope(ys: list[float]) -> float:
    """Least-squares slope per round."""
    n = len(ys)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sum((i - mx) ** 2 for i in range(n))


def summarise(samples: list[dict]) -> dict:
    steady = samples[WARM_UP:] if len(samples) > WARM_UP + 2 else samples
    series = {
        "server_rss_mib": [s["server"]["rss_mib"] for s in steady if s["server"]],
        "server_open_files": [s["server"]["open_files"] for s in steady if s["server"]],
        "server_threads": [s["server"]["threads"] for s in steady if s["server"]],
        "worker_rss_mib_max": [max(w["rss_mib"] for w in s["workers"]) for s in steady if s["workers"]],
        "worker_open_files_max": [max(w["open_files"] for w in s["workers"]) for s in steady if s["workers"]],
        "worker_threads_max": [max(w["threads"] for w in s["workers"]) for s in steady if s["workers"]],
        "checkpoint_bytes": [s["checkpoint_bytes"] for s in steady],
    }
    return {name: {"slope_per_round": slope(ys), "first": ys[0], "last": ys[-1], "min": min(ys), "max": max(ys)}
            for name, ys in series.items() if ys}


def soak(out: Path, rounds: int, clients: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    model = small_model(out / "model")
    home, run_dir = out / "flwr-home", out / "run"
    env = {**os.environ, "FLWR_HOME": str(home), "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(free_port()),
           "FLWR_LOCAL_CONTROL_API_PORT": str(free_port())}  # beside any other local SuperLink
    run_config = f"model={json.dumps(str(model))} num-rounds={rounds} {BUDGET} {FAULTS}"
    cmd = [sys.executable, "-m", "fedot.cli", "sim", "sims/quickstart", "--num-clients", str(clients), "--run-dir",
           str(run_dir), "--overwrite", "--run-config", run_config]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    samples, seen = [], 0
    log = run_dir / "rounds.jsonl"
    while proc.poll() is None:
        done = len(log.read_text().splitlines()) if log.exists() else 0
        if done > seen and done > 1:  # a round (not round 0's zero-shot) was written: sample after it
            seen = done
            samples.append({"round": done - 1, "seconds": time.monotonic() - t0,
                            **sample(home, run_dir / "checkpoint")})
        time.sleep(0.2)
    output = proc.stdout.read()
    subprocess.run([sys.executable, "-m", "fedot.cli", "stop"], env=env, capture_output=True)
    rows = read_rows(run_dir)
    reasons: dict[str, int] = {}
    for row in rows[1:]:
        for r in row.get("rejected", []):
            key = r["reason"].split(":")[0][:60]
            reasons[key] = reasons.get(key, 0) + 1
    return {"command": "python " + " ".join(sys.argv), "run_config": run_config, "clients": clients,
            "rounds": rounds, "exit": proc.returncode, "seconds": time.monotonic() - t0,
            "status": (re.findall(r"finished:\w+", output) or [None])[-1],
            "rounds_logged": [r["round"] for r in rows],
            "complete": [r["round"] for r in rows] == list(range(rounds + 1)),
            "accepted_per_round": [len(r.get("accepted") or []) for r in rows[1:]],
            "rejected_reasons": reasons, "faults": sum(len(r.get("faults") or []) for r in rows[1:]),
            "warm_up_rounds": WARM_UP, "summary": summarise(samples), "samples": samples, "tail": output[-1500:]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/soak")
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--json", default="bench/results/soak.json")
    args = p.parse_args(argv)
    record = soak(Path(args.out).resolve(), args.rounds, args.clients)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k not in ("samples", "tail")}, indent=2))


if __name__ == "__main__":
    main()
