"""Generated answers, scored: batched greedy decoding with a KV cache, deterministic, as lm-eval's generate_until.

Prompts are sorted by length and decoded in batches of at most 64 prompts and 8,192 prompt tokens (decoding on a
CPU is bound by per-step overhead, so wide batches of short prompts pay; long prompts go a few at a time), with left
padding and an attention mask so every prompt ends where generation starts; transformers' ``generate`` keeps the KV
cache and stops a sequence at EOS or at a stop string, greedily, at most ``max_new_tokens`` each. The text is cut at
the first stop string, as lm-eval's ``generate_until`` cuts at its ``until``; in a context shorter than twice
``max_new_tokens`` the answer gets half of it; a prompt longer than the context minus ``max_new_tokens`` keeps its
end (lm-eval's left truncation) and is counted. Each example's output and scores are the outcomes
(:mod:`fedot.evaluation.outcomes`); a metric's 95% interval is the percentile bootstrap of the mean over examples.
``bench/generate.py`` measures this against ``model.generate`` one prompt at a time (identical text required).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import GenerationConfig

from ..bars import bar
from ..settings import setting
from .intervals import bootstrap_interval

BATCH_SIZE = 64  # most prompts decoded together: CPU decoding is per-step overhead bound, so wide batches pay
BATCH_TOKENS = 8192  # and at most this many prompt tokens per batch (long prompts go a few at a time)


@dataclass
class Decoding:
    """How long an evaluated answer may be (a group in every command that evaluates instruction tasks)."""

    max_new_tokens: int = setting(0, "most tokens generated per answer on instruction tasks; 0: the task's own "
                                  "(dolly 128, gsm8k 256)", ge=0)

    @property
    def override(self) -> int | None:
        return self.max_new_tokens or None


def cut(text: str, stop: tuple[str, ...]) -> str:
    """``text`` up to the first stop string (lm-eval's until)."""
    ends = [text.index(s) for s in stop if s and s in text]
    return text[:min(ends)] if ends else text


def batches(lengths: list[int], batch_size: int = BATCH_SIZE, batch_tokens: int = BATCH_TOKENS) -> list[list[int]]:
    """Indices longest first, grouped so a batch holds at most ``batch_size`` prompts and, padded to its longest,
    at most ``batch_tokens`` tokens (a single prompt longer than that goes alone)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < batch_size and (len(out[-1]) + 1) * lengths[out[-1][0]] <= batch_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, stop: tuple[str, ...] = (),
             batch_size: int = BATCH_SIZE, context: int | None = None, progress: bool = False) -> tuple[list[str], int]:
    """(each prompt's greedy continuation, how many prompts were left-truncated to fit ``context``)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    limit = context or getattr(model.config, "max_position_embeddings", 2048)
    max_new_tokens = min(max_new_tokens, limit // 2)  # a short context keeps at least half of it for the prompt
    room = limit - max_new_tokens
    encoded = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    truncated = sum(len(e) > room for e in encoded)
    encoded = [e[-room:] for e in encoded]
    outputs = [""] * len(prompts)
    stop_strings = [s for s in stop if s] or None
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad,
                              eos_token_id=tokenizer.eos_token_id, stop_strings=stop_strings)
    for rows in bar(batches([len(e) for e in encoded], batch_size), desc="generate", verbose=progress):
        width = max(len(encoded[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, width - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[r, width - len(encoded[i]):] = 1
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config,
                             tokenizer=tokenizer if stop_strings else None)
        for r, i in enumerate(rows):
            outputs[i] = cut(tokenizer.decode(out[r, width:], skip_special_tokens=True), stop)
    return outputs, truncated


def generation_scores(model, tokenizer, task, docs: list[dict], context: int, progress: bool = False) -> dict:
    """The task's metrics over ``docs`` (means), their 95% intervals, and the per-example outcomes."""
    prompts = [task.prompt(tokenizer, d) for d in docs]
    outputs, truncated = generate(model, tokenizer, prompts, task.max_new_tokens, task.stop, context=context,
                                  progress=progress)
    scores = [task.score(o, d) for o, d in zip(outputs, docs)]
    metrics = {m: float(np.mean([s[m] for s in scores])) for m in task.metrics}
    for m in task.metrics:
        metrics[f"{m}_ci95"] = bootstrap_interval([s[m] for s in scores])
    outcomes = {"kind": "generation", "ids": list(range(len(docs))), "output": outputs,
                **{m: [s[m] for s in scores] for m in task.metrics}}
    return {**metrics, "prompts_truncated": truncated, "outcomes": outcomes}
