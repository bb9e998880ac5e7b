"""How long a study's runs will take on this machine, before any of them runs (``fedot study --plan``).

An estimate from arithmetic, corrected by measurement as the study goes (the ETA of :mod:`.runner` uses the
measured times of finished runs of the same arm). A run costs a fixed start (Flower, Ray, loading and delivering
the emulator: :data:`START_S`, measured as below, rounded up), its
training (``4 x emulator matmul parameters`` FLOPs per trained token: forward, activation gradients through the
whole emulator, weight gradients of the adapter) and its evaluations (``2 x parameters`` per scored token, the
full model for plug-in and the emulator for the OT emulator; the zero-shot scores are cached, so counted once per
task). FLOPs become seconds at this machine's fp32 matmul rate, measured for a fraction of a second, times
:data:`TRAIN_EFFICIENCY` or :data:`SCORE_EFFICIENCY`: what training (batches of 2 x ~32 tokens, Flower rounds
included) and lm-eval's scoring sustained of it in the headline study's first runs on 2 idle cores
(docs/results/study-headline: 1,000 ARC-Easy questions through the full model and the 2-18-2 emulator,
6.27e13 FLOPs, in 428.6 s; a round of 40 steps, 1.08e12 FLOPs, in 23-30 s; matmul rate 170.6 GFLOP/s). The
first estimate (one efficiency of 0.35 for both, from the main job) made that evaluation ~17 minutes at this rate
where it took 7.
"""

from __future__ import annotations

import time
from functools import lru_cache

START_S = 30.0
TRAIN_EFFICIENCY = 0.25
SCORE_EFFICIENCY = 0.85


@lru_cache(maxsize=1)
def matmul_flops_per_s(seconds: float = 0.3) -> float:
    """This machine's sustained fp32 matmul rate (FLOP/s), from repeated 1024 x 1024 products."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return n * 2 * 1024 ** 3 / (time.perf_counter() - t0)


@lru_cache(maxsize=8)
def matmul_params(model: str) -> tuple[int, int, int]:
    """(matmul parameters outside the blocks, of one block, number of blocks) of a model, from its config."""
    import torch

    from ...architectures import architecture
    from ...memory import _meta_model, config_for_plan

    meta = _meta_model(config_for_plan(model))
    arch = architecture(meta.config)
    blocks = meta.get_submodule(arch.blocks)
    linear = [(n, m) for n, m in meta.named_modules() if isinstance(m, torch.nn.Linear)]
    one = sum(m.in_features * m.out_features for n, m in linear if n.startswith(f"{arch.blocks}.0."))
    inside = sum(m.in_features * m.out_features for n, m in linear if n.startswith(f"{arch.blocks}."))
    return sum(m.in_features * m.out_features for _, m in linear) - inside, one, len(blocks)


@lru_cache(maxsize=16)
def tokens(task: str, max_length: int, limit: int, data_dir: str, split: str = "test") -> tuple[float, int]:
    """(mean tokens of a training example, tokens scored by one evaluation of ``split``)."""
    from ...evaluation import docs_of
    from ...models import DEFAULT_MODEL, load_tokenizer, resolve
    from ...tasks import get_task
    from ...tasks.tokenize import task_examples

    tok = load_tokenizer(resolve(DEFAULT_MODEL))
    examples = task_examples(task, tok, max_length, root=data_dir or None)[:200]
    mean = sum(len(ids) for ids, _ in examples) / max(len(examples), 1)
    return mean, get_task(task).eval_tokens(tok, docs_of(task, split, limit or None, data_dir or None))


def run_seconds(cfg, zero_shot: bool, ft: bool, rate: float | None = None) -> float:
    """Estimated wall seconds of one federated run with settings ``cfg`` (a FederatedConfig); ``zero_shot`` and
    ``ft``: whether this run is the first to compute those (later runs reuse them from the evaluation cache)."""
    rate = rate or matmul_flops_per_s()
    outside, per_block, blocks = matmul_params(cfg.emulator.model)
    spec = cfg.emulator
    kept = blocks if spec.emulator_blocks < 0 else min(blocks, spec.bottom + spec.top + spec.emulator_blocks)
    full, emulator = outside + blocks * per_block, outside + kept * per_block
    train = cfg.data_owner.train
    mean, scored = tokens(cfg.data_owner.task, train.max_length, cfg.evaluation.limit, cfg.data_owner.data_dir,
                          cfg.evaluation.split)
    ev = cfg.evaluation
    curve = tokens(cfg.data_owner.task, train.max_length, ev.curve_limit, cfg.data_owner.data_dir,
                   ev.split)[1] if ev.curve_limit else scored  # a curve-only round scores the first examples
    trained = cfg.num_rounds * cfg.sampled_per_round * train.steps * train.batch_size * mean
    due = [r for r in range(1, cfg.num_rounds + 1) if ev.due(r, cfg.num_rounds)]
    scored_tokens = sum(curve if ev.curve_only(r, cfg.num_rounds) else scored for r in due)
    training = 4 * emulator * trained
    scoring = (scored_tokens + zero_shot * scored) * 2 * (full + emulator)
    if ft and cfg.baseline.enabled:
        steps = cfg.baseline.steps or cfg.num_rounds * cfg.sampled_per_round * train.steps
        training += 6 * full * steps * train.batch_size * mean
        scoring += 2 * full * scored
    return START_S + training / (rate * TRAIN_EFFICIENCY) + scoring / (rate * SCORE_EFFICIENCY)
