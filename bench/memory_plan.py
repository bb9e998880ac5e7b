"""The memory plan (``fedot sim --plan``) against measured peaks: SmolLM2 on CPU, and the paper's Table 6 shapes.

Each SmolLM2 case runs in its own child process (so its peak RSS is its own) exactly what the role runs: a data
owner loads its tier's emulator and takes ``--steps`` training steps of fedot's own ``train`` on full-length
sequences; the model owner loads the full model and the emulator and scores full-context perplexity windows. The
plan for the same case is computed from the config alone (meta device) and compared with two measurements: the live
peak (glibc told to return freed memory at once, so peak RSS is what was allocated at one time) and the peak RSS
with the default allocator, which also counts the freed heap glibc keeps for reuse. The OPT-1.3B rows
compare the plan (GPU, bf16 autocast, fp32 trainable weights and AdamW states, as Table 6 was measured) with the
paper's Table 6 (A6000, batch 1, length 512).

    .venv/bin/python bench/memory_plan.py            # writes bench/results/memory_plan.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
from pathlib import Path

from fedot.models import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
CASES = [  # (role, kept middle blocks, tuning, batch, length)
    ("client", 18, "lora", 4, 512),  # the smollm2 sims' data owner
    ("client", 18, "full", 4, 512),
    ("client", 8, "lora", 1, 512),  # Table 6's shape of experiment
    ("client", 8, "full", 1, 512),
    ("client", 18, "lora", 8, 256),
    ("owner", 18, "lora", 1, 2048),  # full model + emulator, one full-context window
]
TABLE6_MB = {("ft", "full"): 30458, ("ft", "lora"): 12470, ("ot", "full"): 9336, ("ot", "lora"): 6192}


def measure(case, queue):
    import torch

    from fedot.data_owner.train import TrainConfig, train
    from fedot.data_owner.tuning import load_tunable
    from fedot.emulator import EmulatorSpec, load_emulator
    from fedot.evaluation.perplexity import score_windows
    from fedot.models import load_model

    role, blocks, tuning, batch, length = case
    torch.set_num_threads(2)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    spec = EmulatorSpec(DEFAULT_MODEL, 2, 2, blocks)
    path, _ = spec.build()
    if role == "client":
        from fedot.data_owner.tuning import TuningConfig

        model, _ = load_tunable(path, TuningConfig.of(tuning), torch.float32, "cpu")
        examples = [(list(range(100, 100 + length)), list(range(100, 100 + length))) for _ in range(4 * batch)]
        train(model, examples, TrainConfig(batch_size=batch, max_length=length), lr=1e-5, steps=3, seed=0)
    else:
        full, emulator = load_model(spec.preflight()), load_emulator(path)[0]
        ids = list(range(100, 100 + length))
        for model in (full, emulator):
            score_windows(model, [(ids, ids)], 0)
    queue.put({"baseline_bytes": before, "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})


# glibc keeps freed heap memory for reuse, so peak RSS overstates what was live at once; with this threshold every
# allocation above 64 KiB is its own mapping, returned to the system when freed, and peak RSS is the live peak
RETURNING = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def peak(case, env: dict) -> int:
    """Peak RSS of the case in a fresh child process started with ``env`` added."""
    saved = {k: os.environ.get(k) for k in RETURNING}
    for k in RETURNING:
        os.environ.pop(k, None)
    os.environ.update(env)
    try:
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=measure, args=(case, queue))
        proc.start()
        got = queue.get()
        proc.join()
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
    return got["peak_bytes"]


def planned(case):
    from fedot.data_owner.tuning import TuningConfig
    from fedot.emulator.split import sandwich
    from fedot.memory import client_plan, owner_plan
    from fedot.models import config_of

    role, blocks, tuning, batch, length = case
    config = config_of(DEFAULT_MODEL)
    split = sandwich(30, 2, 2, blocks)
    if role == "client":
        return client_plan(config, split, TuningConfig.of(tuning), batch, length, "cpu")
    return owner_plan(config, split, length, "cpu")


def table6_rows():
    from transformers import OPTConfig

    from fedot.data_owner.tuning import TuningConfig
    from fedot.emulator.split import sandwich
    from fedot.memory import client_plan, training_plan

    sys.path.insert(0, str(ROOT / "bench"))
    from efficiency import SHAPES

    config = OPTConfig(**SHAPES["opt-1.3b"])
    rows = []
    for (variant, tuning), paper in TABLE6_MB.items():
        mode = TuningConfig.of(tuning)
        # the paper's setup: fp32 weights under bf16 autocast (accelerate --mixed_precision=bf16), and OPT's eager
        # attention of transformers 4.2x, which keeps the attention probabilities
        setup = dict(frozen_fp32=True, attention_scores=True)
        if variant == "ot":
            plan = client_plan(config, sandwich(24, 2, 2, 8), mode, 1, 512, "cuda", **setup)
        else:  # FT: every block trains, nothing is dropped
            every = sandwich(24, 2, 2, -1)
            plan = training_plan(config, every, every.kept, mode, 1, 512, "cuda", "FT", **setup)
        rows.append({"model": "opt-1.3b", "variant": f"{variant.upper()}{' + LoRA' if tuning == 'lora' else ''}",
                     "plan_mb": plan.total / 2**20, "paper_mb": paper, "ratio": plan.total / 2**20 / paper,
                     "parts_mb": {k: v / 2**20 for k, v in plan.parts.items()}})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "bench/results/memory_plan.json"))
    args = p.parse_args(argv)
    rows = []
    for case in CASES:
        live, default = (peak(case, allocator) for allocator in (RETURNING, {}))
        plan = planned(case)
        row = {"role": case[0], "emulator": f"2-{case[1]}-2", "tuning": case[2], "batch": case[3],
               "length": case[4], "live_peak_mb": live / 2**20, "default_rss_peak_mb": default / 2**20,
               "plan_mb": plan.total / 2**20, "plan_over_live": plan.total / live,
               "plan_over_default_rss": plan.total / default, "parts_mb": {k: v / 2**20 for k, v in plan.parts.items()}}
        rows.append(row)
        print(f"{row['role']:<7}{row['emulator']:<8}{row['tuning']:<6}b{row['batch']} s{row['length']:<5}"
              f"plan {row['plan_mb']:>6.0f} MiB  live peak {row['live_peak_mb']:>6.0f} ({row['plan_over_live']:.2f})"
              f"  default RSS peak {row['default_rss_peak_mb']:>6.0f} ({row['plan_over_default_rss']:.2f})", flush=True)
    table6 = table6_rows()
    for r in table6:
        print(f"{r['model']:<9}{r['variant']:<12} plan {r['plan_mb']:>7.0f} MB  paper {r['paper_mb']:>6} MB  "
              f"plan/paper {r['ratio']:.2f}")
    Path(args.out).write_text(json.dumps({"command": "python bench/memory_plan.py", "smollm2_cpu": rows,
                                          "table6_opt_1_3b": table6}, indent=1) + "\n")


if __name__ == "__main__":
    main()
