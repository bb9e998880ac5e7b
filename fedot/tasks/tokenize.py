"""Turning a task's text into token ids for training: packed corpus blocks, prompt + answer pairs.

Shared by everything that trains: data owners (adapter tuning), the model owner (distillation, importance, the FT
baseline). Corpora become packed blocks where every token is a target; multiple-choice tasks become lm-eval's prompt
followed by " " + the correct answer, with the loss on the answer tokens only; instruction tasks become the prompt
(chat template) followed by the response and EOS, with the loss on the response tokens only. Each task builds its
own examples (``train_examples``); :func:`task_examples` asks the task.
"""

from __future__ import annotations

Example = tuple[list[int], list[int]]  # (input ids, labels; -100 = not a target)


class Examples(list):
    """Training examples with what making them cut: ``stats`` counts examples whose prompt or response was
    truncated to fit ``max_length``, and examples skipped (none is ever dropped without being counted)."""

    def __init__(self, items=(), stats: dict | None = None):
        super().__init__(items)
        self.stats = dict(stats or {})


def corpus_examples(tokenizer, texts: list[str], max_length: int) -> list[Example]:
    """Pack documents (separated by EOS) into blocks of ``max_length`` tokens; every token is a target."""
    stream: list[int] = []
    for text in texts:
        stream += tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
    blocks = [stream[i:i + max_length] for i in range(0, len(stream), max_length)]
    return [(b, list(b)) for b in blocks if len(b) > 1]


def token_blocks(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Full blocks of exactly ``max_length`` tokens (batchable without padding), for emulator training."""
    return [b for b, _ in corpus_examples(tokenizer, texts, max_length) if len(b) == max_length]


def choice_examples(tokenizer, pairs: list[tuple[str, str]], max_length: int) -> list[Example]:
    """Prompt + answer; only the answer tokens are targets. Long prompts are cut from the left."""
    out = []
    for context, answer in pairs:
        ctx = tokenizer.encode(context, add_special_tokens=False)
        ans = tokenizer.encode(answer, add_special_tokens=False)[:max_length - 1]
        ctx = ctx[-(max_length - len(ans)):] if max_length > len(ans) else []
        out.append((ctx + ans, [-100] * len(ctx) + ans))
    return out


def instruction_examples(tokenizer, pairs: list[tuple[str, str]], max_length: int) -> Examples:
    """Prompt + response + EOS; only the response (and EOS) are targets.

    Too long for ``max_length``: the response keeps at least half of the tokens (all of it if it fits), its end cut
    if longer; the prompt is cut from the left (its end, where the assistant turn starts, is kept). Counted in
    ``stats``: ``prompt_truncated``, ``response_truncated``, ``skipped`` (an empty response: nothing to learn)."""
    out, stats = [], {"examples": len(pairs), "prompt_truncated": 0, "response_truncated": 0, "skipped": 0}
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for prompt, response in pairs:
        p = tokenizer.encode(prompt, add_special_tokens=False)
        r = tokenizer.encode(response, add_special_tokens=False)
        if not r:
            stats["skipped"] += 1
            continue
        r = r + eos
        if len(p) + len(r) > max_length:
            keep = min(len(r), max(max_length // 2, max_length - len(p)))
            stats["response_truncated"] += keep < len(r)
            r = r[:keep]
            room = max_length - len(r)
            stats["prompt_truncated"] += room < len(p)
            p = p[len(p) - room:] if room > 0 else []
        out.append((p + r, [-100] * len(p) + r))
    return Examples(out, stats)


def task_examples(task_name: str, tokenizer, max_length: int, split: str = "train",
                  indices: list[int] | None = None, root=None) -> list[Example]:
    """Training examples of a task's split (optionally only the documents at ``indices``), as the task builds them."""
    from . import get_task

    return get_task(task_name).train_examples(tokenizer, max_length, split, indices, root)
