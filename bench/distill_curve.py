"""Emulator quality against distillation tokens: the held-out curve and the emulator's zero-shot on a test set.

Builds a distilled emulator exactly as ``fedot emulator build --emulator-method distill`` does (the same flags, the
same content-keyed cache: the finished artifact is the one every later experiment with these settings reuses, and an
interrupted run continues from its checkpoint when the same command is run again). Every ``--monitor-every`` held-out
checks it also scores the emulator zero-shot on ``--eval-task``'s *test* split (``--limit`` documents, 0: all):
recorded only, never used to select. The full model's zero-shot on the same documents gives the ratio.

    FEDOT_DATA_DIR=../shared/data .venv/bin/python bench/distill_curve.py --emulator-blocks 18 \\
        --emulator-distill-corpus gutenberg --emulator-distill-tokens 2000000 --emulator-distill-batch-size 8 \\
        --emulator-distill-eval-every 25 --monitor-every 4 --out bench/results/distill_curve_2m_18.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    from fedot.emulator import EmulatorSpec, read_manifest
    from fedot.evaluation.cache import EvalCache
    from fedot.evaluation.scoring import evaluate
    from fedot.models import content_hash, load_model, load_tokenizer
    from fedot.run.tracking import TrackingConfig
    from fedot.settings import add_arguments, from_args

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p, EmulatorSpec, skip=("emulator-method",))
    p.add_argument("--eval-task", default="wikitext2")
    p.add_argument("--limit", type=int, default=0, help="test documents scored at a monitored check; 0: all")
    p.add_argument("--monitor-every", type=int, default=1, help="score the test set at every n-th held-out check")
    p.add_argument("--out", default=str(ROOT / "bench/results/distill_curve.json"))
    p.add_argument("--report-to", default="tensorboard", help="trackers the curve is logged to (fedot's report-to), "
                   "in <out without .json>.tracking/")
    args = p.parse_args(argv)
    TrackingConfig(args.report_to).check()
    args.__dict__["emulator-method"] = "distill"
    spec = from_args(EmulatorSpec, args)
    command = "python bench/distill_curve.py " + " ".join(sys.argv[1:] if argv is None else argv)
    model_dir = spec.preflight()
    tok = load_tokenizer(model_dir)

    def zero_shot(model) -> float:
        return evaluate(model, tok, args.eval_task, limit=args.limit or None)["primary"]

    full = EvalCache().evaluate("full model zero-shot", load_model(model_dir), tok, content_hash(model_dir),
                                args.eval_task, limit=args.limit or None)["primary"]
    print(f"full model zero-shot ({args.eval_task}, {args.limit or 'all'} test docs): {full:.2f}", flush=True)
    calls = []

    def monitor(model):
        calls.append(1)
        if (len(calls) - 1) % args.monitor_every:
            return {}
        ppl = zero_shot(model)
        print(f"  emulator zero-shot {ppl:.2f} ({ppl / full:.2f}x full)", flush=True)
        return {"emulator_zero_shot": ppl, "ratio_to_full": ppl / full}

    start = time.perf_counter()
    path, manifest = spec.build(monitor=monitor)
    record = read_manifest(path)["params"]
    write(args, command, full, spec, path, record, time.perf_counter() - start)


def write(args, command: str, full: float, spec, path: Path, params: dict, seconds: float) -> None:
    result = params["distill_result"]
    out = {"command": command, "model": spec.model, "artifact": str(path),
           "emulator": f"{spec.bottom}-{spec.emulator_blocks}-{spec.top} (uniform layer-drop, then distilled)",
           "eval_task": args.eval_task, "eval_docs": args.limit or "all", "full_zero_shot": full,
           "seconds_this_invocation": seconds, "settings": {k: v for k, v in params.items() if k != "distill_result"},
           **result}
    Path(args.out).write_text(json.dumps(out, indent=1))
    plot(out, Path(args.out).with_suffix(".png"))
    from fedot.run.tracking import Tracking, TrackingConfig

    tracking = Tracking(TrackingConfig(args.report_to), Path(args.out).with_suffix(".tracking"), Path(args.out).stem,
                        {"command": command, **out["settings"]})
    for point in result["history"]:  # the curve at each held-out check's step
        tracking.log({k: v for k, v in point.items() if k != "step"}, point["step"], "distill/")
    best = min(result["history"], key=lambda h: h["held_out_objective"])
    scored = [h for h in result["history"] if "emulator_zero_shot" in h]
    tracking.finish({"numbers": {k: scored[-1][k] for k in ("emulator_zero_shot", "ratio_to_full")}})
    print(f"best (held-out) step {best['step']} of {result['steps']}; last scored point: "
          f"{scored[-1]['emulator_zero_shot']:.2f} = {scored[-1]['ratio_to_full']:.2f}x the full model's {full:.2f} "
          f"at {scored[-1]['tokens']:,} tokens; wrote {args.out}")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = result["history"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    tokens = [x["tokens"] / 1e3 for x in h]
    # curves made before both distances were recorded trained the global one and hold it as held_out_mse only
    a.plot(tokens, [x.get("held_out_global_distance", x["held_out_mse"]) for x in h], marker="o",
           label="global RMS (Eq. 1)")
    if all("held_out_token_distance" in x for x in h):
        a.plot(tokens, [x["held_out_token_distance"] for x in h], marker="o", label="per token")
    a.set(xlabel="distillation tokens (thousands)", ylabel="held-out normalised MSE", yscale="log",
          title=f"imitation of the full middle (trained: {result.get('settings', {}).get('kd_distance', 'global')})")
    a.legend()
    scored = [x for x in h if "emulator_zero_shot" in x]
    b.plot([x["tokens"] / 1e3 for x in scored], [x["emulator_zero_shot"] for x in scored], marker="o",
           label="emulator zero-shot")
    b.axhline(result["full_zero_shot"], color="k", ls="--", label="full model")
    b.axhline(3 * result["full_zero_shot"], color="gray", ls=":", label="3x full model")
    b.set(xlabel="distillation tokens (thousands)", ylabel=f"{result['eval_task']} word perplexity (test)",
          yscale="log", title=result["emulator"])
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
