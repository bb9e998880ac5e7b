"""The training loop: AdamW + cosine warm-up over the trainable tensors only.

Used by data owners on the emulator (adapter tuning) and by the model owner for the FT baseline. Corpora train with
the causal-LM loss on packed blocks; multiple-choice tasks on prompt + correct answer with the loss on the answer
tokens (``fedot.tasks.tokenize``). With a validation function the best checkpoint is kept (the paper returns the
adapter with the best emulator performance). The budget (steps or epochs), the learning rate and the seed are
arguments because who trains decides them: a sweep, a round's schedule, a client's round seed; the budget is the
config's (``steps``, or ``epochs`` passes) unless the caller gives steps (the FT baseline matches the data owners').
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from ..bars import bar as progress_bar
from ..models import unwrap
from ..precision import model_autocast
from ..settings import setting
from ..tasks.tokenize import Example
from .tuning import load_trainable_state, trainable_state


@dataclass
class TrainConfig:
    steps: int = setting(10, "optimizer steps (a data owner: per round); 0: epochs decide", ge=0)
    epochs: float = setting(0.0, "> 0: passes over the training data (a data owner: its own, per round) instead of "
                            "steps", ge=0)
    batch_size: int = setting(4, "training sequences per micro-batch", ge=1)
    grad_accum: int = setting(1, "micro-batches per optimizer step", ge=1)
    max_length: int = setting(512, "tokens per training sequence (a corpus block, or prompt + answer)", ge=2)
    warmup_ratio: float = setting(0.06, "share of a training run's steps spent warming the learning rate up, "
                                  "cosine decay after", ge=0, lt=1)
    weight_decay: float = setting(0.0, "AdamW weight decay", ge=0)
    grad_clip: float = setting(1.0, "gradient norm clip; 0: off", ge=0)
    gradient_checkpointing: bool = setting(False, "recompute each block's activations in the backward pass instead of "
                                           "keeping them (less memory, about a third more compute)")

    def check(self) -> None:
        if self.steps == 0 and self.epochs == 0:
            raise ValueError("steps = 0 and epochs = 0 leave no training budget: set steps (optimizer steps) or "
                             "epochs (passes over the data)")


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


def batches(examples: list[Example], batch_size: int, pad_id: int, rng: random.Random):
    """Shuffled, right-padded batches (ids, labels, attention mask); padded positions are never targets."""
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


def total_steps(num_examples: int, cfg: TrainConfig, steps: int | None = None) -> int:
    """Optimizer steps of a run: ``steps`` when given, else the config's budget (``epochs`` passes over the
    examples when > 0, else ``steps``)."""
    if steps is not None:
        return steps
    if cfg.epochs > 0:
        return max(1, math.ceil(cfg.epochs * math.ceil(num_examples / (cfg.batch_size * cfg.grad_accum))))
    return cfg.steps


def train(model, examples: list[Example], cfg: TrainConfig, *, lr: float, steps: int | None = None, seed: int = 0,
          eval_every: int = 0, validate: Callable[[torch.nn.Module], float] | None = None, desc: str = "train",
          progress: bool = True, proximal_mu: float = 0.0) -> TrainResult:
    """Train ``model``'s trainable parameters in place; leaves the best-validated weights loaded.

    ``proximal_mu`` > 0 adds FedProx's (mu / 2) * ||w - w_start||^2 over the trainable parameters to the loss."""
    if not examples:
        raise ValueError("no training examples: the data partition is empty")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    device = next(model.parameters()).device
    config = unwrap(model).config
    pad_id = config.pad_token_id if config.pad_token_id is not None else 0  # fills masked positions only
    if cfg.gradient_checkpointing:
        unwrap(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:  # trainable tensors stay fp32 even when the frozen rest is bf16
        p.data = p.data.float()
    for module in model.modules():  # a norm's ops take one dtype: a trained bias makes its weight fp32 too (BitFit)
        if "Norm" in type(module).__name__ and any(p.requires_grad for p in module.parameters(recurse=False)):
            for p in module.parameters(recurse=False):
                p.data = p.data.float()
    anchor = [p.detach().clone() for p in params] if proximal_mu else []
    total = total_steps(len(examples), cfg, steps)
    from transformers import get_cosine_schedule_with_warmup

    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
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
    bar = progress_bar(total=total, desc=desc, verbose=progress)
    micro = 0
    while result.steps < total:
        for ids, labels, mask in batches(examples, cfg.batch_size, pad_id, rng):
            with model_autocast(model):
                loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
            objective = loss + (proximal_mu / 2) * sum((p - a).pow(2).sum() for p, a in zip(params, anchor)) \
                if proximal_mu else loss
            (objective / cfg.grad_accum).backward()
            result.tokens += int(mask.sum())
            micro += 1
            if micro % cfg.grad_accum:
                continue
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            result.steps += 1
            result.history.append({"step": result.steps, "loss": loss.item(), "lr": sched.get_last_lr()[0]})
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if eval_every and result.steps % eval_every == 0 and result.steps < total:
                checkpoint()
            if result.steps >= total:
                break
    bar.close()
    checkpoint()
    if best_state is not None:
        load_trainable_state(model, best_state)
    result.seconds = time.perf_counter() - start
    model.eval()
    return result
