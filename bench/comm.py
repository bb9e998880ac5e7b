"""What travels in federated offsite-tuning, per client and in total, measured from real runs' rounds.jsonl.

Runs the quickstart twice through `flwr run` (full adapter and LoRA), reads the bytes each round logged, and
sets them against the two alternatives: re-sending the emulator every round, and plain federated fine-tuning
that sends the full model down and up every round. The measured adapter bytes are checked against the
formula (trainable parameters x 4 bytes) from the emulator's shapes.

    python bench/comm.py [--rounds 2] [--clients 4]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fedot.run.launch import run_sim
from fedot.sizes import artifact_sizes


def measure(run: Path, lora_rank: int) -> dict:
    rows = [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]
    results = json.loads((run / "results.json").read_text())
    mode = results["config"]["tuning"]["mode"]
    sizes = artifact_sizes(results["emulator"]["path"], lora_rank=lora_rank)
    trainable = sizes["bytes"]["trainable_full_adapter" if mode == "full" else f"trainable_lora_r{lora_rank}"]
    train_rows = [r for r in rows if r["round"] > 0]
    client_rounds = sum(len(r["sampled"]) for r in train_rows)
    clients = len({n for r in train_rows for n in r["sampled"]})
    adapter_down = sum(r["bytes_down"] for r in train_rows)
    adapter_up = sum(r["bytes_up"] for r in train_rows)
    emulator = sum(r.get("emulator_bytes_down", 0) for r in train_rows)
    per_round_down = adapter_down / client_rounds
    return {
        "run": str(run), "mode": mode, "clients": clients, "rounds": len(train_rows),
        "emulator_bytes_once_per_client": emulator / clients,
        "adapter_bytes_down_per_client_round": per_round_down,
        "adapter_bytes_up_per_client_round": adapter_up / client_rounds,
        "formula_adapter_bytes": trainable, "formula_agrees": per_round_down == trainable,
        "total_fedot": emulator + adapter_down + adapter_up,
        "total_naive_resend_emulator": sizes["artifact_file_bytes"] * client_rounds + adapter_up,
        "total_full_model_fedavg": 2 * sizes["bytes"]["full_model"] * client_rounds,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--out", default="bench/results/comm.json")
    args = p.parse_args(argv)
    rows = []
    for mode in ("full", "lora"):
        run = Path(f"runs/bench-comm-{mode}").resolve()
        run_sim("sims/pydocs_4clients", [f"num-rounds={args.rounds} steps=1 batch-size=1 max-length=32 "
                                         f"eval-limit=1 eval-every={args.rounds} full-ft=false tuning=\"{mode}\""],
                args.clients, run)
        rows.append(measure(run, lora_rank=4))
    mib = lambda b: f"{b / 2**20:,.2f}"  # noqa: E731
    print(f"\n{'mode':<6}{'emulator once/client':>22}{'adapter down/round':>20}{'adapter up/round':>18}"
          f"{'formula ok':>11}"
          f"{'total fedot':>13}{'naive resend':>14}{'full-model FL':>15}   (MiB)")
    for r in rows:
        print(f"{r['mode']:<6}{mib(r['emulator_bytes_once_per_client']):>22}{mib(r['adapter_bytes_down_per_client_round']):>20}"
              f"{mib(r['adapter_bytes_up_per_client_round']):>18}{str(r['formula_agrees']):>11}{mib(r['total_fedot']):>13}"
              f"{mib(r['total_naive_resend_emulator']):>14}{mib(r['total_full_model_fedavg']):>15}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": "python " + " ".join(sys.argv), "rows": rows}, indent=2) + "\n")
    if not all(r["formula_agrees"] for r in rows):
        sys.exit("measured adapter bytes disagree with the formula")


if __name__ == "__main__":
    main()
