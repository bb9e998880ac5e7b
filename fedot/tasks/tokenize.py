"""Turning a task's text into token ids for training: packed corpus blocks, prompt + answer pairs.

Shared by everything that trains: data owners (adapter tuning), the model owner (distillation, importance, the FT
baseline). Corpora become packed blocks where every token is a target; multiple-choice tasks become lm-eval's prompt
followed by " " + the correct answer, with the loss on the answer tokens only.
"""

from __future__ import annotations

Example = tuple[list[int], list[int]]  # (input ids, labels; -100 = not a target)


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


def task_examples(task_name: str, tokenizer, max_length: int, split: str = "train",
                  indices: list[int] | None = None, root=None) -> list[Example]:
    """Training examples of a task's split (optionally only the documents at ``indices``)."""
    from . import ChoiceTask, get_task

    task = get_task(task_name)
    if isinstance(task, ChoiceTask):
        return choice_examples(tokenizer, task.train_pairs(split, indices, root), max_length)
    texts = task.train_texts(split, root)
    return corpus_examples(tokenizer, texts if indices is None else [texts[i] for i in indices], max_length)
