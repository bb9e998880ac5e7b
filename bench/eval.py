"""Evaluation speed: fedot's batched perplexity against lm-eval's own HFLM.loglikelihood_rolling, side by side.

Same model (SmolLM2-135M, fp32, CPU), same documents (pydocs test topics), same context length; each variant's
log-likelihoods are checked equal before its speed counts. Then multiple-choice questions per second through
lm-eval at several batch sizes (ARC-Easy test, needs FEDOT_DATA_DIR). Prints a table, writes bench/results/eval.json.

    .venv/bin/python bench/eval.py [--limit N] [--choice-limit N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from fedot.models import DEFAULT_MODEL


def perplexity_rows(model, tok, docs, max_length: int, repeats: int) -> list[dict]:
    """Each variant timed ``repeats`` times, interleaved (a slow spell of a shared machine hits every variant alike);
    the median counts. lm-eval at batch 8 runs once: it is the slowest by far."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from fedot.evaluation.perplexity import score_windows, windows

    texts = [d["page"] for d in docs]
    wins = [w for t in texts for w in windows(tok, t, max_length)]
    tokens = sum(len(t) for _, t in wins)

    def lm_eval(batch):
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch, max_length=max_length)
        reqs = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i)
                for i, t in enumerate(texts)]
        return lambda: sum(lm.loglikelihood_rolling(reqs, disable_tqdm=True))

    variants = {"lm-eval loglikelihood_rolling, batch 1": (lm_eval(1), repeats),
                "lm-eval loglikelihood_rolling, batch 8": (lm_eval(8), 1),
                "fedot, one window per forward (CPU default)": (lambda: sum(score_windows(model, wins, 0)), repeats),
                "fedot, batched, 8192 tokens (GPU default)": (lambda: sum(score_windows(model, wins, 8192)), repeats)}
    times = {name: [] for name in variants}
    totals = {}
    for rep in range(repeats):
        for name, (fn, n) in variants.items():
            if rep >= n:
                continue
            t = time.perf_counter()
            totals[name] = fn()
            times[name].append(time.perf_counter() - t)
            print(f"{name:<46} run {rep + 1}: {times[name][-1]:6.1f} s   ll {totals[name]:,.3f}", flush=True)
    reference = totals["lm-eval loglikelihood_rolling, batch 1"]
    rows = []
    for name in variants:
        seconds = statistics.median(times[name])
        rows.append({"variant": name, "seconds": seconds, "runs": times[name], "tokens": tokens,
                     "tokens_per_s": tokens / seconds, "loglikelihood": totals[name],
                     "agrees_with_lm_eval": abs(totals[name] - reference) <= 1e-5 * abs(reference)})
    for r in rows:
        r["speedup_vs_lm_eval_batch1"] = rows[0]["seconds"] / r["seconds"]
        print(f"{r['variant']:<46}{r['seconds']:>8.1f} s{r['tokens_per_s']:>9.0f} tok/s"
              f"{r['speedup_vs_lm_eval_batch1']:>7.2f}x  agrees {r['agrees_with_lm_eval']}")
    return rows


def choice_rows(model, tok, limit: int, max_length: int) -> list[dict]:
    from fedot.evaluation.choice import lm_eval_choice
    from fedot.tasks import get_task

    task = get_task("arc_easy")
    docs = task.docs("test")[:limit]
    rows = []
    for batch in (1, 8, 16, 32, 64):
        t = time.perf_counter()
        metrics = lm_eval_choice(model, tok, task, docs, max_length, batch_size=batch)
        seconds = time.perf_counter() - t
        rows.append({"batch_size": batch, "questions": len(docs), "seconds": seconds,
                     "questions_per_s": len(docs) / seconds, "acc": metrics["acc"]})
        print(f"arc_easy batch {batch:<3}{seconds:>9.1f} s{len(docs) / seconds:>8.1f} q/s   acc {metrics['acc']:.4f}",
              flush=True)
    return rows


def main(argv=None):
    import torch

    from fedot.evaluation import context_length
    from fedot.models import load_model, load_tokenizer, resolve
    from fedot.tasks import get_task

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=0, help="pydocs test topics (0: all 19)")
    p.add_argument("--choice-limit", type=int, default=200, help="ARC-Easy test questions (0: skip)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each perplexity variant (median counts)")
    p.add_argument("--out", default="bench/results/eval.json")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model_dir = resolve(DEFAULT_MODEL)
    model, tok = load_model(model_dir).eval(), load_tokenizer(model_dir)
    max_length = context_length(model, tok)
    docs = get_task("pydocs").docs("test")
    docs = docs[:args.limit] if args.limit else docs
    with torch.no_grad():
        ppl = perplexity_rows(model, tok, docs, max_length, args.repeats)
        choice = choice_rows(model, tok, args.choice_limit, max_length) if args.choice_limit else []
    record = {"command": "python " + " ".join(sys.argv), "threads": torch.get_num_threads(),
              "context_length": max_length, "documents": len(docs), "perplexity": ppl, "choice": choice}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    best = max(ppl, key=lambda r: r["tokens_per_s"])
    default = ppl[2] if not torch.cuda.is_available() else ppl[3]
    print(f"\nfedot's default here vs lm-eval (batch 1): {default['speedup_vs_lm_eval_batch1']:.2f}x; fastest: "
          f"{best['variant']}; written to {args.out}")


if __name__ == "__main__":
    main()
