"""Single-site offsite-tuning end to end, in the paper's order:

model owner builds the emulator -> data owner tunes the adapter through it
(learning rate chosen on the emulator's validation score) -> owner plugs the
adapter into the full model -> the five numbers are measured on the test split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..data_owner.train import TrainConfig, TrainResult, train
from ..data_owner.tuning import TuningConfig, load_tunable, trainable_state
from ..emulator import EmulatorSpec, to_original
from ..emulator.artifact import split_label
from ..evaluation import EvalCache, evaluate
from ..evaluation.five import LABELS
from ..evaluation.generation import Decoding
from ..evaluation.outcomes import split_result
from ..model_owner import Evaluator, train_full
from ..models import content_hash, default_device, load_model, load_tokenizer
from ..plugin import adapter_metadata, original_adapter, save_adapter
from ..precision import Precision
from ..settings import group, setting, to_flat, validate
from ..tasks import get_task, task_names
from ..tasks.tokenize import task_examples
from . import results
from .tracking import Tracking, TrackingConfig


@dataclass
class OffsiteConfig:
    renamed: ClassVar[dict] = {"max-steps": "steps"}  # flags of earlier fedot versions
    emulator: EmulatorSpec = group(EmulatorSpec)
    task: str = setting("pydocs", "the task: train split tunes, validation split selects, test split scores",
                        choices=task_names)
    tuning: TuningConfig = group(TuningConfig)
    train: TrainConfig = group(TrainConfig)
    lr: list[float] = setting([1e-4], "learning rates to try; the one with the best emulator validation score is "
                              "kept (the paper's protocol)", gt=0)
    eval_every: int = setting(0, "optimizer steps between validations (the best checkpoint is kept); 0: at the end",
                              ge=0)
    seed: int = setting(0, "training seed", ge=0)
    full_ft: bool = setting(False, "also fine-tune the full model (the FT baseline) with the same budget and lrs")
    limit: int = setting(0, "test examples scored (documents for corpora); 0: the whole test split", ge=0)
    val_limit: int = setting(200, "validation examples for checkpoint and lr selection; 0: all", ge=0)
    train_limit: int = setting(0, "training examples used (documents for corpora); 0: all", ge=0)
    device: str = setting("", "torch device (cpu, cuda, cuda:1); empty: cuda when available")
    precision: Precision = group(Precision)
    decoding: Decoding = group(Decoding)
    tracking: TrackingConfig = group(TrackingConfig)
    eval_cache: bool = setting(True, "reuse the zero-shot and plug-in scores from $FEDOT_CACHE/evaluations "
                                     "(verified entries)")


def validator(task_name: str, tokenizer, limit: int | None, max_new_tokens: int | None = None):
    """Validation score (higher is better) on the task's validation split: -perplexity or accuracy."""
    sign = 1.0 if get_task(task_name).higher_is_better else -1.0
    return lambda model: sign * evaluate(model, tokenizer, task_name, "validation", limit,
                                                 max_new_tokens=max_new_tokens)["primary"]


def tune(emulator_dir: Path, examples, cfg: OffsiteConfig, lr: float, validate_fn, device,
         dtype) -> tuple[dict, TrainResult]:
    """Train the adapter through the emulator; return its state in full-model names and the training record."""
    model, manifest = load_tunable(emulator_dir, cfg.tuning, dtype, device)
    record = train(model, examples, cfg.train, lr=lr, seed=cfg.seed, eval_every=cfg.eval_every,
                   validate=validate_fn, desc=f"emulator lr={lr:g}")
    return trainable_state(model, to_original(manifest)), record


def run(cfg: OffsiteConfig, out: str | Path, command: str = "") -> dict:
    out = Path(out)
    start = time.perf_counter()
    validate(cfg, "offsite")
    task = get_task(cfg.task)
    for split in ("train", "validation", "test"):
        task.docs(split)  # a missing data file fails here, before any model is loaded
    model_dir = cfg.emulator.preflight()
    tracking = Tracking(cfg.tracking, out, out.name, to_flat(cfg))
    device = cfg.device or default_device()
    cfg.precision.check_training(device)
    dtype = cfg.precision.torch_dtype(device)
    emulator_dir, manifest = cfg.emulator.build()
    tokenizer = load_tokenizer(emulator_dir)
    n_train = len(task.docs("train"))
    limit = list(range(min(cfg.train_limit, n_train))) if cfg.train_limit else None
    examples = task_examples(cfg.task, tokenizer, cfg.train.max_length, indices=limit)
    validate_fn = validator(cfg.task, tokenizer, cfg.val_limit or None, cfg.decoding.override)
    meta = adapter_metadata(cfg.tuning, manifest, cfg.emulator.model, cfg.task)
    owner = Evaluator(load_model(model_dir, dtype, device), content_hash(model_dir), tokenizer, meta, cfg.task,
                      cfg.limit or None, cache=EvalCache(enabled=cfg.eval_cache),
                      base=original_adapter(model_dir, manifest["adapter_blocks"]),
                      max_new_tokens=cfg.decoding.override)
    numbers, details, timings, outcomes = {}, {}, {}, {}

    def measure(key, scoring):
        t = time.perf_counter()
        details[key], outcomes[key] = split_result(scoring())
        numbers[key] = details[key]["primary"]
        timings[f"eval_{key}"] = time.perf_counter() - t
        print(f"{LABELS[key]:>12}: {numbers[key]:.4f}")

    measure("zero_shot", owner.zero_shot)
    emulator, _ = load_tunable(emulator_dir, cfg.tuning, dtype, device)
    measure("emulator_zero_shot", lambda: owner.emulator_zero_shot(emulator, manifest))

    sweeps, states = [], []
    for lr in cfg.lr:
        state, record = tune(emulator_dir, examples, cfg, lr, validate_fn, device, dtype)
        sweeps.append({"lr": lr, "best_validation": record.best_score, "best_step": record.best_step,
                       "train": record.to_dict()})
        states.append(state)
    chosen = max(range(len(cfg.lr)), key=lambda i: sweeps[i]["best_validation"])  # by emulator validation only
    lr, adapter = cfg.lr[chosen], states[chosen]
    timings["train_emulator"] = sum(s["train"]["seconds"] for s in sweeps)
    measure("emulator_finetuned", lambda: owner.through(emulator, manifest, adapter))
    save_adapter(out / "adapter.safetensors", adapter, meta)
    if len(cfg.lr) > 1:  # every rate's plug-in on the test split, recorded (never used to choose) to show the rule
        for i, (sweep, state) in enumerate(zip(sweeps, states)):
            if i != chosen:
                sweep["plugin_test"] = owner.plugin(state)["primary"]
    measure("plugin", lambda: owner.plugin(adapter))
    sweeps[chosen]["plugin_test"] = numbers["plugin"]  # the chosen rate is scored once
    owner = emulator = None  # free the models before the FT baseline loads its own

    ft_sweeps = []
    if cfg.full_ft:
        best_ft = None
        for ft_lr in cfg.lr:
            model, rec = train_full(model_dir, examples, cfg.train, lr=ft_lr, seed=cfg.seed, dtype=dtype, device=device,
                                    eval_every=cfg.eval_every, validate=validate_fn, desc=f"full FT lr={ft_lr:g}")
            ft_sweeps.append({"lr": ft_lr, "best_validation": rec.best_score, "train": rec.to_dict()})
            if best_ft is None or rec.best_score > best_ft[1]:
                best_ft = (model, rec.best_score)
        measure("full_finetuned", lambda: evaluate(best_ft[0], tokenizer, cfg.task, "test", cfg.limit or None,
                                                   max_new_tokens=cfg.decoding.override))

    record_out = {
        "title": "Offsite-tuning (single site)",
        "model": cfg.emulator.model, "task": cfg.task, "metric": task.primary,
        "higher_is_better": task.higher_is_better,
        "split_label": split_label(manifest),
        "train_examples": {"count": len(examples), **getattr(examples, "stats", {})},
        "numbers": numbers, "details": details, "chosen_lr": lr, "lr_sweep": sweeps, "full_ft_sweep": ft_sweeps,
        "config": to_flat(cfg), "emulator": {"path": str(emulator_dir), **manifest}, "timings": timings,
        "wall_seconds": time.perf_counter() - start, "command": command,
    }
    written = results.write(out, record_out, outcomes)
    for sweep in sweeps + ft_sweeps:  # each learning rate's training curve, then the five numbers
        for point in sweep["train"]["history"]:
            tracking.log({k: v for k, v in point.items() if k != "step"}, point["step"],
                         f"{'emulator' if sweep in sweeps else 'full FT'} lr={sweep['lr']:g}/")
    tracking.finish(written)
    if written.get("not_finite"):
        raise RuntimeError(f"not finite: {written['not_finite']} (see {out / 'results.md'}); lower the learning "
                           "rate or check the data")
    return written
