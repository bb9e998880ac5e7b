"""Where one training step's peak memory goes on CPU: RSS after each stage, for one efficiency variant.

Explains the memory column of bench/efficiency.py: what the interpreter and libraries take before any model,
what the weights take, and what the forward/backward of one step adds (at SmolLM2's 49k vocabulary the
fp32 logits and their gradient are a large share at sequence length 512).

    python bench/memory_stages.py ot+lora
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import psutil

from fedot.models import DEFAULT_MODEL


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variant", choices=("full", "full+lora", "ot", "ot+lora"))
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    stages = []

    def mark(stage):
        rss = psutil.Process().memory_info().rss
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        stages.append({"stage": stage, "rss_bytes": rss, "peak_bytes": peak})
        print(f"{stage:<28}{rss / 2**20:>9.0f} MiB   peak {peak / 2**20:>7.0f} MiB", flush=True)

    mark("interpreter")
    import torch
    from efficiency import trainable

    import fedot.data_owner.tuning  # noqa: F401  (peft)
    import fedot.models  # noqa: F401  (transformers)

    mark("import torch, transformers, fedot")
    model, params = trainable(argparse.Namespace(model=args.model, shapes=None, device="cpu", bottom=2, top=2,
                                                 emulator_blocks=8), args.variant)
    mark("weights loaded")
    opt = torch.optim.AdamW(params, lr=1e-5)
    ids = torch.randint(0, 1000, (1, args.seq))
    for step in range(args.steps):
        loss = model(input_ids=ids, labels=ids).loss
        mark(f"step {step}: forward")
        loss.backward()
        mark(f"step {step}: backward")
        opt.step()
        opt.zero_grad(set_to_none=True)
        mark(f"step {step}: optimizer")
    out = Path(args.out or f"bench/results/memory-stages-{args.variant}.json")
    out.write_text(json.dumps({"command": "python " + " ".join(sys.argv), "args": vars(args), "stages": stages,
                               "weights_bytes": sum(q.numel() * q.element_size() for q in model.parameters()),
                               "trainable_bytes": sum(q.numel() * q.element_size() for q in params)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
