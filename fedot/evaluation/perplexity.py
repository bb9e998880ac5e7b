"""Perplexity as lm-eval 0.4's ``wikitext`` task defines it, computed in batches.

lm-eval scores a document as the sum of log p(token | preceding tokens) over disjoint rolling windows of the
model's context length (``get_rolling_token_windows`` + ``make_disjoint_window``); word and byte perplexity divide by
the words and bytes of the original document. fedot uses lm-eval's own window functions, then scores the windows of
all documents together: windows are sorted by length and right-padded into batches (a causal model never lets a real
token attend to the padding after it; only real target positions count), and the LM head is applied only to target
positions, in chunks, so a batch never materialises a (batch x context x vocabulary) logits tensor. A test checks
the result equals lm-eval's ``HFLM.loglikelihood_rolling`` and that batched and one-at-a-time scores agree.

Batching pays on a GPU; on a CPU a single 2,048-token window already keeps every core's matrix units busy (4 x 512
tokens cost the same as 1 x 512 four times, ``bench/eval.py``), and padding only adds work, so on CPU the default is
one window per forward pass. What makes fedot faster than lm-eval there is the chunked head: lm-eval materialises
and log-softmaxes the whole (context x 49,152) logits matrix of every window.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from ..bars import bar as progress_bar

BATCH_TOKENS = 8192  # padded tokens per forward pass on a GPU (on a CPU: one window each, see above)
HEAD_CHUNK = 1024  # target positions per LM-head matmul


def windows(tokenizer, text: str, max_length: int) -> list[tuple[list[int], list[int]]]:
    """(input ids, target ids) of each disjoint rolling window, exactly as lm-eval forms them."""
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    tokens = tokenizer.encode(text, add_special_tokens=False)
    out = []
    for context, target in map(make_disjoint_window, get_rolling_token_windows(tokens, prefix, max_length, 1)):
        out.append(((context + target)[-(max_length + 1):][:-1], target))
    return out


def _target_logprob(model, hidden: torch.Tensor, targets: torch.Tensor) -> float:
    """Sum of log p(target) given the final hidden states at the target positions."""
    head = model.get_output_embeddings()
    total = 0.0
    for i in range(0, len(targets), HEAD_CHUNK):
        logits = head(hidden[i:i + HEAD_CHUNK]).float()
        total -= F.cross_entropy(logits, targets[i:i + HEAD_CHUNK], reduction="sum").item()
    return total


@torch.no_grad()
def score_windows(model, wins: list[tuple[list[int], list[int]]], batch_tokens: int | None = None,
                  progress: bool = False) -> list[float]:
    """Log-likelihood of each window's targets; ``batch_tokens=0`` scores one window per forward pass, ``None``
    batches on a GPU only."""
    device = next(model.parameters()).device
    if batch_tokens is None:
        batch_tokens = BATCH_TOKENS if device.type == "cuda" else 0
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    order = sorted(range(len(wins)), key=lambda i: -len(wins[i][0]))
    scores = [0.0] * len(wins)
    bar = progress_bar(total=sum(len(t) for _, t in wins), desc="perplexity", unit="tok", verbose=progress)
    start = 0
    while start < len(order):
        width = len(wins[order[start]][0])
        end = start + 1
        while end < len(order) and (end - start + 1) * width <= batch_tokens:
            end += 1
        rows = order[start:end]
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, :len(wins[i][0])] = torch.tensor(wins[i][0])
            mask[r, :len(wins[i][0])] = 1
        hidden = model.base_model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        for r, i in enumerate(rows):
            n, target = len(wins[i][0]), wins[i][1]
            scores[i] = _target_logprob(model, hidden[r, n - len(target):n], torch.tensor(target, device=device))
            bar.update(len(target))
        start = end
    bar.close()
    return scores


def perplexity(model, tokenizer, docs: list[dict], score_text, max_length: int, progress: bool = False,
               batch_tokens: int | None = None) -> dict:
    """lm-eval's wikitext metrics over ``docs``: word and byte perplexity, bits per byte; and each document's
    outcome (log-likelihood, tokens, words, bytes) under ``outcomes``."""
    per_doc = [windows(tokenizer, score_text(doc), max_length) for doc in docs]
    scores = iter(score_windows(model, [w for wins in per_doc for w in wins], batch_tokens, progress))
    loglik = [sum(next(scores) for _ in wins) for wins in per_doc]
    outcomes = {"kind": "perplexity", "ids": list(range(len(docs))), "loglik": loglik,
                "tokens": [sum(len(t) for _, t in wins) for wins in per_doc],
                "words": [len(re.split(r"\s+", doc["page"])) for doc in docs],
                "bytes": [len(doc["page"].encode("utf-8")) for doc in docs]}
    ll, words, nbytes = sum(loglik), sum(outcomes["words"]), sum(outcomes["bytes"])
    return {"word_perplexity": math.exp(-ll / words), "byte_perplexity": math.exp(-ll / nbytes),
            "bits_per_byte": -ll / nbytes / math.log(2), "tokens": sum(outcomes["tokens"]), "outcomes": outcomes}


def rolling_loglikelihood(model, tokenizer, text: str, max_length: int, batch_tokens: int | None = None) -> float:
    """One document's log-likelihood (lm-eval's ``loglikelihood_rolling`` of it)."""
    return sum(score_windows(model, windows(tokenizer, text, max_length), batch_tokens))
