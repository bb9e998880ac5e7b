"""The data owner's training loop: AdamW + cosine warm-up over the trainable tensors only.

Corpora train with the causal-LM loss on packed blocks; multiple-choice tasks on
prompt + correct answer with the loss on the answer tokens. The best
checkpoint by validation score is kept (the paper returns the adapter with the
best emulator performance).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from tqdm import tqdm

from .tuning import trainable_state


@dataclass
class TrainConfig:
    lr: float = 1e-4
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 512
    warmup_ratio: float = 0.06
    weight_decay: float = 0.0
    eval_every: int | None = None  # optimizer steps between validations (None: only at the end)
    seed: int = 0

    def __post_init__(self):
        for name in ("lr", "epochs", "batch_size", "grad_accum", "max_length"):
            if not getattr(self, name) > 0:
                raise ValueError(f"training {name} must be > 0 (got {getattr(self, name)})")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 (got {self.max_steps})")


@dataclass
class TrainResult:
    steps: int
    tokens: int
    seconds: float
    best_score: float | None
    best_step: int
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def corpus_examples(tokenizer, texts: list[str], max_length: int) -> list[tuple[list[int], list[int]]]:
    """Pack documents (separated by EOS) into blocks of ``max_length`` tokens; every token is a target."""
    stream: list[int] = []
    for text in texts:
        stream += tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
    blocks = [stream[i:i + max_length] for i in range(0, len(stream), max_length)]
    return [(b, list(b)) for b in blocks if len(b) > 1]


def token_blocks(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Full blocks of exactly ``max_length`` tokens (batchable without padding), for emulator training."""
    return [b for b, _ in corpus_examples(tokenizer, texts, max_length) if len(b) == max_length]


def choice_examples(tokenizer, pairs: list[tuple[str, str]], max_length: int) -> list[tuple[list[int], list[int]]]:
    """Prompt + answer; only the answer tokens are targets. Long prompts are cut from the left."""
    out = []
    for context, answer in pairs:
        ctx = tokenizer.encode(context, add_special_tokens=False)
        ans = tokenizer.encode(answer, add_special_tokens=False)[:max_length - 1]
        ctx = ctx[-(max_length - len(ans)):] if max_length > len(ans) else []
        out.append((ctx + ans, [-100] * len(ctx) + ans))
    return out


def task_examples(task_name: str, tokenizer, max_length: int, split: str = "train",
                  indices: list[int] | None = None) -> list[tuple[list[int], list[int]]]:
    """Training examples of a task's split (optionally only the documents at ``indices``)."""
    from .tasks import ChoiceTask, get_task

    task = get_task(task_name)
    if isinstance(task, ChoiceTask):
        return choice_examples(tokenizer, task.train_pairs(split, indices), max_length)
    texts = task.train_texts(split)
    return corpus_examples(tokenizer, texts if indices is None else [texts[i] for i in indices], max_length)


def _batches(examples, batch_size, pad_id, rng):
    order = list(range(len(examples)))
    rng.shuffle(order)
    for i in range(0, len(order), batch_size):
        chunk = [examples[j] for j in order[i:i + batch_size]]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (x, y) in enumerate(chunk):
            ids[row, :len(x)], labels[row, :len(y)], mask[row, :len(x)] = torch.tensor(x), torch.tensor(y), 1
        yield ids, labels, mask


def train(model, examples: list[tuple[list[int], list[int]]], cfg: TrainConfig,
          validate: Callable[[torch.nn.Module], float] | None = None, desc: str = "train") -> TrainResult:
    """Train ``model``'s trainable parameters in place; leaves the best-validated weights loaded."""
    if not examples:
        raise ValueError("no training examples: the data partition is empty")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    device = next(model.parameters()).device
    config = (model.get_base_model() if hasattr(model, "get_base_model") else model).config
    pad_id = config.pad_token_id if config.pad_token_id is not None else 0  # fills masked positions only
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:  # trainable tensors stay fp32 even when the frozen rest is bf16
        p.data = p.data.float()
    steps_per_epoch = math.ceil(len(examples) / (cfg.batch_size * cfg.grad_accum))
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    from transformers import get_cosine_schedule_with_warmup

    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    result = TrainResult(steps=0, tokens=0, seconds=0.0, best_score=None, best_step=0)
    best_state = None
    start = time.perf_counter()

    def checkpoint():
        nonlocal best_state
        if validate is None:
            return
        model.eval()
        score = validate(model)
        model.train()
        result.history.append({"step": result.steps, "validation": score})
        if result.best_score is None or score > result.best_score:
            result.best_score, result.best_step, best_state = score, result.steps, trainable_state(model)

    model.train()
    bar = tqdm(total=total, desc=desc, leave=False)
    micro = 0
    while result.steps < total:
        for ids, labels, mask in _batches(examples, cfg.batch_size, pad_id, rng):
            with autocast:
                loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
            (loss / cfg.grad_accum).backward()
            result.tokens += int(mask.sum())
            micro += 1
            if micro % cfg.grad_accum:
                continue
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            result.steps += 1
            result.history.append({"step": result.steps, "loss": loss.item(), "lr": sched.get_last_lr()[0]})
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if cfg.eval_every and result.steps % cfg.eval_every == 0 and result.steps < total:
                checkpoint()
            if result.steps >= total:
                break
    bar.close()
    checkpoint()
    if best_state is not None:
        from .tuning import load_trainable_state

        load_trainable_state(model, best_state)
    result.seconds = time.perf_counter() - start
    model.eval()
    return result
