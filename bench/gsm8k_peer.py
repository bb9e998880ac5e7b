"""Peer check: fedot's GSM8K exact match against lm-eval's own ``gsm8k`` task, same model, same items, greedy.

lm-eval side: the ``gsm8k.yaml`` bundled with the installed lm-eval, unchanged except what offline zero-shot needs
(``dataset_path: json`` over the same test records, ``num_fewshot: 0``), run through ``HFLM`` on the already-loaded
model with its own filters (``strict-match``, ``flexible-extract``) and metric. fedot side: the ``gsm8k_lmeval`` task
(lm-eval's prompt and stop strings) through fedot's batched generation and scorer. Reports, per item, whether the
generated text, the extracted answers and the 0/1 scores agree, and both means; any difference is listed with the two
outputs so its cause can be read (batch composition changes padding, which can flip a greedy tie).

    python bench/gsm8k_peer.py --n 100 --out bench/results/gsm8k_peer.json
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import torch
from record import machine


def lm_eval_gsm8k(model, tok, records: list[dict], batch_size: int) -> list[dict]:
    """lm-eval's per-sample log: the raw output and each filter's exact match."""
    import lm_eval
    import yaml
    from lm_eval import evaluator
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.models.huggingface import HFLM

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    config = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks/gsm8k/gsm8k.yaml").read_text())  # no !function
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gsm8k.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        config.pop("tag", None)
        config.update(dataset_path="json", dataset_name=None, num_fewshot=0, training_split=None,
                      fewshot_split=None, dataset_kwargs={"data_files": {"test": str(path)}})
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, max_gen_toks=256)
        out = evaluator.evaluate(lm=lm, task_dict={"gsm8k": ConfigurableTask(config=config)}, bootstrap_iters=0,
                                 log_samples=True, verbosity="WARNING")
    by_doc: dict[int, dict] = {}
    for s in out["samples"]["gsm8k"]:
        d = by_doc.setdefault(s["doc_id"], {"output": s["resps"][0][0]})
        d[s["filter"]] = {"extracted": s["filtered_resps"][0], "exact_match": float(s["exact_match"])}
    return [by_doc[i] for i in sorted(by_doc)]


def main() -> None:
    from fedot.evaluation import evaluate
    from fedot.models import DEFAULT_MODEL, load_model, load_tokenizer, resolve
    from fedot.tasks.data import data_file, read_jsonl
    from fedot.tasks.instruction import extract

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--n", type=int, default=100, help="the first n GSM8K test items")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default="")
    args = p.parse_args()

    torch.manual_seed(0)
    model_dir = resolve(args.model)
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    records = read_jsonl(data_file("gsm8k/test.jsonl"))[:args.n]

    ours = evaluate(model, tok, "gsm8k_lmeval", "test", args.n)  # a correctness check: nothing is timed
    theirs = lm_eval_gsm8k(model, tok, records, args.batch_size)

    o = ours["outcomes"]
    rows, text_differs, score_differs = [], 0, 0
    for i, t in enumerate(theirs):
        mine = {"output": o["output"][i], "flexible-extract": {"extracted": extract(o["output"][i], strict=False),
                                                               "exact_match": o["exact_match"][i]},
                "strict-match": {"extracted": extract(o["output"][i], strict=True),
                                 "exact_match": o["exact_match_strict"][i]}}
        same_text = mine["output"] == t["output"]
        same_score = all(mine[f]["exact_match"] == t[f]["exact_match"] for f in ("flexible-extract", "strict-match"))
        same_extracted = all(mine[f]["extracted"] == t[f]["extracted"] for f in ("flexible-extract", "strict-match"))
        text_differs += not same_text
        score_differs += not same_score
        if not (same_text and same_score and same_extracted):
            rows.append({"item": i, "fedot": mine, "lm_eval": t})
    mean = {f: sum(t[f]["exact_match"] for t in theirs) / len(theirs) for f in ("flexible-extract", "strict-match")}
    result = {"command": f"python bench/gsm8k_peer.py --n {args.n} --batch-size {args.batch_size}",
              "model": args.model, "items": len(theirs),
              "fedot": {"exact_match": ours["exact_match"], "exact_match_strict": ours["exact_match_strict"]},
              "lm_eval": {"exact_match": mean["flexible-extract"], "exact_match_strict": mean["strict-match"]},
              "outputs_differ": text_differs, "scores_differ": score_differs, "differences": rows,
              "lm_eval_version": __import__("lm_eval").__version__, **machine()}
    print(json.dumps({k: v for k, v in result.items() if k != "differences"}, indent=1))
    for r in rows[:5]:
        print(json.dumps(r)[:600])
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
