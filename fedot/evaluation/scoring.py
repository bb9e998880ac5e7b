"""Score a model on a task exactly as lm-eval 0.4 defines the metric.

Multiple-choice tasks run through lm-eval itself (``HFLM`` around the loaded
model, task configs over local json). Perplexity is computed here with
lm-eval's own rolling-window functions, because it is also the validation
score inside training loops where lm-eval's set-up cost would dominate; a test
checks it against lm-eval's ``loglikelihood_rolling``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..tasks import ChoiceTask, CorpusTask, get_task

EVAL_MAX_LENGTH = 2048


def _limited(docs: list, limit: int | None) -> list:
    return docs if limit is None else docs[:limit]


def context_length(model, tokenizer) -> int:
    """lm-eval's context length for the model, capped at EVAL_MAX_LENGTH (longer windows only cost memory)."""
    from lm_eval.models.utils import resolve_max_length

    return min(EVAL_MAX_LENGTH, resolve_max_length(model.config, tokenizer, default=EVAL_MAX_LENGTH))


@torch.no_grad()
def rolling_loglikelihood(model, tokenizer, text: str, max_length: int) -> float:
    """Sum of log p(token | preceding tokens) over ``text``, in lm-eval's disjoint rolling windows."""
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    tokens = tokenizer.encode(text, add_special_tokens=False)
    device = next(model.parameters()).device
    total = 0.0
    for context, target in map(make_disjoint_window, get_rolling_token_windows(tokens, prefix, max_length, 1)):
        ids = torch.tensor((context + target)[-(max_length + 1):][:-1], device=device)[None]
        logits = model(ids).logits[0, -len(target):].float()
        total += -F.cross_entropy(logits, torch.tensor(target, device=device), reduction="sum").item()
    return total


def perplexity(model, tokenizer, task: CorpusTask, split: str = "test", limit: int | None = None, root=None) -> dict:
    """lm-eval's wikitext metrics: word and byte perplexity, bits per byte (words/bytes of the original doc)."""
    max_length = context_length(model, tokenizer)
    ll = words = nbytes = 0
    for doc in tqdm(_limited(task.docs(split, root), limit), desc=f"perplexity {task.name}/{split}", leave=False):
        ll += rolling_loglikelihood(model, tokenizer, task.score_text(doc), max_length)
        words += len(re.split(r"\s+", doc["page"]))
        nbytes += len(doc["page"].encode("utf-8"))
    return {
        "word_perplexity": math.exp(-ll / words),
        "byte_perplexity": math.exp(-ll / nbytes),
        "bits_per_byte": -ll / nbytes / math.log(2),
    }


def lm_eval_choice(model, tokenizer, task: ChoiceTask, split: str = "test", limit: int | None = None,
                   batch_size: int = 8, root=None) -> dict:
    """Run lm-eval on the task's ``split`` (written to a temporary json file) and return its metrics.

    The task is built directly as a ``ConfigurableTask``: ``simple_evaluate`` would index
    lm-eval's ~14k bundled task files on every call (about 25 s here).
    """
    from lm_eval import evaluator
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.models.huggingface import HFLM

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    docs = _limited(task.docs(split, root), limit)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{task.name}_{split}.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
        config = task.lm_eval_config(str(path))
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                  max_length=context_length(model, tokenizer))
        out = evaluator.evaluate(lm=lm, task_dict={config["task"]: ConfigurableTask(config=config)},
                                 bootstrap_iters=0, log_samples=False, verbosity="WARNING")
    results = out["results"][config["task"]]
    return {m: float(results[f"{m},none"]) for m in task.metrics}


def evaluate(model, tokenizer, task_name: str, split: str = "test", limit: int | None = None, root=None) -> dict:
    """All metrics of a task plus ``primary`` (the number the five-metric table reports)."""
    task = get_task(task_name)
    if hasattr(model, "get_base_model"):  # peft injects LoRA into the base model's modules in place
        model = model.get_base_model()
    model.eval()
    if isinstance(task, CorpusTask):
        metrics = perplexity(model, tokenizer, task, split, limit, root)
    else:
        metrics = lm_eval_choice(model, tokenizer, task, split, limit, root=root)
    return {**metrics, "primary": metrics[task.primary]}
