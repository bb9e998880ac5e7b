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
    """lm-eval's metrics of ``task`` (a ChoiceTask) on ``docs``."""
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
                                 bootstrap_iters=0, log_samples=False, verbosity="WARNING")
    results = out["results"][config["task"]]
    return {m: float(results[f"{m},none"]) for m in task.metrics}
