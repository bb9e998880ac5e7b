"""Score a model on a task exactly as lm-eval 0.4 defines the metric, and add the 95% interval of accuracies.

Corpora are scored by perplexity (``perplexity``, batched, equal to lm-eval's ``loglikelihood_rolling``), multiple
choice by lm-eval itself (``choice``), instruction tasks by generated answers (``generation``). Each task kind has its
scorer registered in :data:`SCORERS`.
"""

from __future__ import annotations

from dataclasses import replace

from ..models import unwrap
from ..precision import model_autocast
from ..registry import Registry
from ..tasks import get_task
from .choice import lm_eval_choice
from .generation import generation_scores
from .intervals import wilson_interval
from .perplexity import perplexity

EVAL_MAX_LENGTH = 2048


def context_length(model, tokenizer) -> int:
    """lm-eval's context length for the model, capped at EVAL_MAX_LENGTH (longer windows only cost memory)."""
    from lm_eval.models.utils import resolve_max_length

    return min(EVAL_MAX_LENGTH, resolve_max_length(model.config, tokenizer, default=EVAL_MAX_LENGTH))


SCORERS: Registry = Registry("task kind")


@SCORERS.register("perplexity", help="word and byte perplexity, bits per byte (lm-eval's wikitext)")
def _corpus(model, tokenizer, task, docs, progress):
    return perplexity(model, tokenizer, docs, task.score_text, context_length(model, tokenizer), progress)


@SCORERS.register("multiple_choice", help="accuracy and length-normalised accuracy, scored by lm-eval")
def _choice(model, tokenizer, task, docs, progress):
    metrics = lm_eval_choice(model, tokenizer, task, docs, context_length(model, tokenizer))
    for m in task.metrics:
        metrics[f"{m}_ci95"] = list(wilson_interval(metrics[m], len(docs)))
    return metrics


@SCORERS.register("generation", help="greedy generation scored per task (ROUGE-L, exact match), bootstrap intervals")
def _generation(model, tokenizer, task, docs, progress):
    return generation_scores(model, tokenizer, task, docs, context_length(model, tokenizer), progress)


def docs_of(task_name: str, split: str = "test", limit: int | None = None, root=None) -> list[dict]:
    docs = get_task(task_name).docs(split, root)
    return docs if limit is None else docs[:limit]


def evaluate(model, tokenizer, task_name: str, split: str = "test", limit: int | None = None, root=None,
             progress: bool = False, max_new_tokens: int | None = None) -> dict:
    """All metrics of a task plus ``primary`` (the number the five-metric table reports) and ``examples``;
    ``max_new_tokens`` overrides an instruction task's answer length."""
    task = get_task(task_name)
    if max_new_tokens and hasattr(task, "max_new_tokens"):
        task = replace(task, max_new_tokens=max_new_tokens)
    model = unwrap(model)  # peft injects LoRA into the base model's modules in place
    model.eval()
    docs = docs_of(task_name, split, limit, root)
    with model_autocast(model):  # a model with 16-bit frozen weights and fp32 tuned ones computes in 16 bits
        metrics = SCORERS[task.kind](model, tokenizer, task, docs, progress)
    return {**metrics, "primary": metrics[task.primary], "examples": len(docs)}
