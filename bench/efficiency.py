"""Client-side efficiency, the paper's Table 6: one training step of full fine-tuning vs offsite-tuning.

Four variants side by side in one run: full FT, full FT + LoRA, OT (emulator, full adapter), OT + LoRA.
Each runs in its own child process (so its peak RSS is its own), with warm-up steps excluded and the median
of the timed steps reported. Next to each speed-up: the limit from forward+backward FLOPs (fedot.flops).

    python bench/efficiency.py                                    # SmolLM2-135M on CPU
    python bench/efficiency.py --shapes opt-1.3b --device cuda    # random weights, real OPT shapes, bf16
    python bench/efficiency.py --shapes opt-6.7b --device meta    # FLOP limits only: no weights, no steps
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import time
from pathlib import Path

from fedot.models import DEFAULT_MODEL

SHAPES = {  # real OPT shapes; weights random (speed and memory do not depend on the values)
    "opt-1.3b": dict(hidden_size=2048, num_hidden_layers=24, ffn_dim=8192, num_attention_heads=32, vocab_size=50272,
                     max_position_embeddings=2048, word_embed_proj_dim=2048),
    "opt-6.7b": dict(hidden_size=4096, num_hidden_layers=32, ffn_dim=16384, num_attention_heads=32, vocab_size=50272,
                     max_position_embeddings=2048, word_embed_proj_dim=4096),
}
VARIANTS = ("full", "full+lora", "ot", "ot+lora")


def _model(args, variant):
    import torch
    from transformers import AutoModelForCausalLM, OPTConfig

    from fedot.emulator import EmulatorSpec, adapter_local, load_emulator
    from fedot.emulator.split import sandwich
    from fedot.models import load_model

    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    offsite = variant.startswith("ot")
    if args.shapes:
        layers = SHAPES[args.shapes]["num_hidden_layers"]
        split = sandwich(layers, args.bottom, args.top, args.emulator_blocks)
        kept = len(split.kept) if offsite else layers
        config = OPTConfig(**{**SHAPES[args.shapes], "num_hidden_layers": kept})
        with torch.device(args.device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        adapter = [split.to_local()[i] for i in split.adapter] if offsite else list(range(layers))
        return model, adapter
    spec = EmulatorSpec(args.model, args.bottom, args.top, args.emulator_blocks)
    if offsite:
        path, manifest = spec.build()
        return load_emulator(path, dtype, args.device)[0], adapter_local(manifest)
    model = load_model(spec.preflight(), dtype, args.device)
    return model, list(range(model.config.num_hidden_layers))


def trainable(args, variant):
    """The variant's model with only what it trains requiring grad, and those parameters."""
    from fedot.data_owner.tuning import TuningConfig, prepare

    model, adapter = _model(args, variant)
    if variant == "full":
        model.requires_grad_(True)
    else:
        tuning = TuningConfig.of("lora", rank=4) if variant.endswith("lora") else TuningConfig.of("full")
        model = prepare(model, adapter, tuning)
    return model, [p for p in model.parameters() if p.requires_grad]


def _child(args, variant, queue):
    import torch

    from fedot.flops import step_flops

    torch.manual_seed(0)
    model, params = trainable(args, variant)
    row = {"variant": variant, "flops": step_flops(model, args.seq, args.batch).total,
           "trainable_params": sum(p.numel() for p in params)}
    if args.device == "meta":
        queue.put(row)
        return
    for p in params:
        p.data = p.data.float()
    opt = torch.optim.AdamW(params, lr=1e-5)
    ids = torch.randint(0, 1000, (args.batch, args.seq), device=args.device)
    cuda = args.device.startswith("cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    times = []
    for step in range(args.warmup + args.steps):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        with autocast:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put({**row, "median_step_s": statistics.median(times), "step_times_s": times,
               "tokens_per_s": args.batch * args.seq / statistics.median(times), "peak_memory_bytes": peak,
               "memory_kind": "cuda max_memory_allocated" if cuda else "peak RSS"})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--shapes", choices=SHAPES, default=None,
                   help="random-weight OPT of these shapes instead of --model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--bottom", type=int, default=2)
    p.add_argument("--top", type=int, default=2)
    p.add_argument("--emulator-blocks", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.device == "meta" and not args.shapes:
        p.error("--device meta counts FLOPs of random-weight shapes only: add --shapes opt-1.3b or --shapes opt-6.7b")
    ctx = mp.get_context("spawn")
    rows = []
    for variant in VARIANTS:
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(args, variant, queue))
        proc.start()
        rows.append(queue.get())
        proc.join()
    base = rows[0]
    print(f"\n{'variant':<11}{'tokens/s':>10}{'speed-up':>10}{'FLOP limit':>12}{'peak MiB':>10}{'mem. red.':>11}"
          f"{'trainable':>15}")
    for r in rows:
        r["flop_limit"] = base["flops"] / r["flops"]
        if "tokens_per_s" in r:
            r["speedup"] = r["tokens_per_s"] / base["tokens_per_s"]
            r["memory_reduction"] = base["peak_memory_bytes"] / r["peak_memory_bytes"]
            measured = (f"{r['tokens_per_s']:>10.1f}{r['speedup']:>9.2f}x",
                        f"{r['peak_memory_bytes'] / 2**20:>10.0f}{r['memory_reduction']:>10.2f}x")
        else:
            measured = (f"{'-':>10}{'-':>10}", f"{'-':>10}{'-':>11}")
        print(f"{r['variant']:<11}{measured[0]}{r['flop_limit']:>11.2f}x{measured[1]}{r['trainable_params']:>15,}")
    out = Path(args.out or f"bench/results/efficiency-{args.shapes or args.model}-{args.device.split(':')[0]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python " + " ".join(sys.argv), "args": vars(args), "rows": rows},
                              indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
