"""Multiple-choice accuracy scored by lm-eval itself.

``HFLM`` wraps the already-loaded model (no hub access) and the task is built directly as a ``ConfigurableTask``
over the split written to a temporary json file: ``simple_evaluate`` would index lm-eval's ~14k bundled task files on
every call (about 25 s here). lm-eval batches the (context, continuation) requests; ``BATCH_SIZE`` sits in the
plateau ``bench/eval.py`` measured on CPU for these short prompts (ARC-Easy: 2.0 questions/s at batch 1, 4.2-4.3 at
8, 16 and 32, 3.5 at 64).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

BATCH_SIZE = 16


def lm_eval_choice(model, tokenizer, task, docs: list[dict], max_length: int, batch_size: int = BATCH_SIZE) -> dict:
    """lm-eval's metrics of ``task`` (a ChoiceTask) on ``docs``, and each question's outcome under ``outcomes``
    (from lm-eval's logged samples: the answer with the highest log-likelihood and each metric's 0/1)."""
    from lm_eval import evaluator
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.models.huggingface import HFLM

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{task.name}.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
        config = task.lm_eval_config(str(path))
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)
        out = evaluator.evaluate(lm=lm, task_dict={config["task"]: ConfigurableTask(config=config)},
                                 bootstrap_iters=0, log_samples=True, verbosity="WARNING")
    results = out["results"][config["task"]]
    samples = sorted(out["samples"][config["task"]], key=lambda s: s["doc_id"])
    outcomes = {"kind": "multiple_choice", "ids": [s["doc_id"] for s in samples],
                "chosen": [max(range(len(s["filtered_resps"])), key=lambda i: s["filtered_resps"][i][0])
                           for s in samples],
                **{m: [int(s[m]) for s in samples] for m in task.metrics}}
    return {**{m: float(results[f"{m},none"]) for m in task.metrics}, "outcomes": outcomes}
