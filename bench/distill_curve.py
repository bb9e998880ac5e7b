"""Emulator quality against distillation tokens: held-out MSE and emulator zero-shot perplexity (a curve).

Distils the uniform layer-drop emulator (default 2 + 18 of 26 middle + 2 blocks of SmolLM2-135M) on the owner's
corpus (default WikiText-2's train articles; its validation articles select) and, at every held-out check, scores the
emulator zero-shot on the first ``--limit`` WikiText-2 *test* articles (recorded only, never used to select). The
full model's zero-shot on the same articles gives the ratio the issue targets (within 3x). Checkpointed: run the same
command again after an interruption and it continues.

    .venv/bin/python bench/distill_curve.py --tokens 300000 --limit 8
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    from fedot.emulator import EmulatorSpec, load_emulator
    from fedot.emulator.methods.distill import DistillSettings, distill
    from fedot.evaluation.scoring import evaluate
    from fedot.models import cache_dir, load_model, load_tokenizer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--emulator-blocks", type=int, default=18)
    p.add_argument("--eval-task", default="wikitext2")
    p.add_argument("--limit", type=int, default=8, help="test documents scored at every check")
    p.add_argument("--out", default=str(ROOT / "bench/results/distill_curve.json"))
    p.add_argument("--report-only", action="store_true", help="write the curve so far from the checkpoint of an "
                   "interrupted run (same arguments), without training")
    for f in fields(DistillSettings):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = p.parse_args(argv)
    cfg = DistillSettings(**{f.name: getattr(args, f.name) for f in fields(DistillSettings)})
    cfg.check()
    if cfg.corpus == args.eval_task:
        print(f"distilling on {cfg.corpus}'s train split, scoring its test split (disjoint articles)", flush=True)
    checkpoint = cache_dir() / "distill-curve" / f"{args.model}-{args.emulator_blocks}-{hash_of(cfg)}"
    command = "python bench/distill_curve.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.report_only:
        state = json.loads((checkpoint / "state.json").read_text())
        full = state["history"][0]["emulator_zero_shot"] / state["history"][0]["ratio_to_full"]
        return write(args, command, full, {**state, "interrupted_at_step": state["step"], "steps": cfg.steps}, 0.0)
    spec = EmulatorSpec(args.model, 2, 2, args.emulator_blocks)
    staged, manifest = spec.build()
    student, _ = load_emulator(staged)
    teacher, tok = load_model(spec.preflight()), load_tokenizer(staged)

    def zero_shot(model) -> float:
        return evaluate(model, tok, args.eval_task, limit=args.limit)["primary"]

    full = zero_shot(teacher)
    print(f"full model zero-shot ({args.eval_task}, {args.limit} test docs): {full:.2f}", flush=True)

    def monitor(model):
        ppl = zero_shot(model)
        print(f"  emulator zero-shot {ppl:.2f} ({ppl / full:.2f}x full)", flush=True)
        return {"emulator_zero_shot": ppl, "ratio_to_full": ppl / full}

    start = time.perf_counter()
    record = distill(student, teacher, tok, manifest, cfg, checkpoint=checkpoint, monitor=monitor)
    write(args, command, full, record, time.perf_counter() - start)


def write(args, command: str, full: float, record: dict, seconds: float) -> None:
    out = {"command": command, "model": args.model,
           "emulator": f"2-{args.emulator_blocks}-2 (uniform layer-drop, then distilled)",
           "eval_task": args.eval_task, "eval_docs": args.limit, "full_zero_shot": full,
           "seconds_this_invocation": seconds, **{k: v for k, v in record.items() if k != "settings"}}
    Path(args.out).write_text(json.dumps(out, indent=1))
    plot(out, Path(args.out).with_suffix(".png"))
    best = min(record["history"], key=lambda h: h["held_out_objective"])
    print(f"best (held-out) step {best['step']}: emulator zero-shot {best['emulator_zero_shot']:.2f} = "
          f"{best['ratio_to_full']:.2f}x the full model's {full:.2f}; wrote {args.out}")


def hash_of(cfg) -> str:
    import hashlib
    from dataclasses import asdict

    return hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:10]


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = result["history"]
    tokens = [x["tokens"] / 1e3 for x in h]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(tokens, [x["held_out_mse"] for x in h], marker="o")
    a.set(xlabel="distillation tokens (thousands)", ylabel="held-out normalised MSE (Eq. 1)", yscale="log",
          title="imitation of the full middle")
    b.plot(tokens, [x["emulator_zero_shot"] for x in h], marker="o", label="emulator zero-shot")
    b.axhline(result["full_zero_shot"], color="k", ls="--", label="full model")
    b.axhline(3 * result["full_zero_shot"], color="gray", ls=":", label="3x full model")
    b.set(xlabel="distillation tokens (thousands)", ylabel=f"{result['eval_task']} word perplexity", yscale="log",
          title=f"{result['emulator']}")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
