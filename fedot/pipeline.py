"""Single-site offsite-tuning end to end, in the paper's order:

model owner builds the emulator -> data owner tunes the adapter through it
(learning rate chosen on the emulator's validation score) -> owner plugs the
adapter into the full model -> the five numbers are measured on the test split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .data_owner.train import TrainConfig, TrainResult, train
from .data_owner.tuning import TuningConfig, load_trainable_state, prepare, trainable_state
from .emulator import EmulatorSpec, adapter_local, load_emulator, to_local, to_original
from .emulator.artifact import describe
from .evaluation import EvalCache, evaluate
from .models import content_hash, default_device, default_dtype, load_model, load_tokenizer
from .plugin import adapter_parameters, plug_in, save_adapter
from .run import results
from .settings import group, setting, to_flat, validate
from .tasks import get_task, task_names
from .tasks.tokenize import task_examples


@dataclass
class OffsiteConfig:
    emulator: EmulatorSpec = group(EmulatorSpec)
    task: str = setting("pydocs", "the task: train split tunes, validation split selects, test split scores",
                        choices=task_names)
    tuning: TuningConfig = group(TuningConfig)
    train: TrainConfig = group(TrainConfig)
    lr: list[float] = setting([1e-4], "learning rates to try; the one with the best emulator validation score is "
                              "kept (the paper's protocol)", gt=0)
    epochs: float = setting(1.0, "passes over the training data (unless max-steps is set)", gt=0)
    max_steps: int = setting(0, "optimizer steps; 0: epochs decide", ge=0)
    eval_every: int = setting(0, "optimizer steps between validations (the best checkpoint is kept); 0: at the end",
                              ge=0)
    seed: int = setting(0, "training seed", ge=0)
    full_ft: bool = setting(False, "also fine-tune the full model (the FT baseline) with the same budget and lrs")
    limit: int = setting(0, "test examples scored (documents for corpora); 0: the whole test split", ge=0)
    val_limit: int = setting(200, "validation examples for checkpoint and lr selection; 0: all", ge=0)
    train_limit: int = setting(0, "training examples used (documents for corpora); 0: all", ge=0)
    device: str = setting("", "torch device (cpu, cuda, cuda:1); empty: cuda when available")
    eval_cache: bool = setting(True, "reuse the zero-shot scores from $FEDOT_CACHE/evaluations (verified entries)")


def validator(task_name: str, tokenizer, limit: int | None):
    """Validation score (higher is better) on the task's validation split: -perplexity or accuracy."""
    sign = 1.0 if get_task(task_name).higher_is_better else -1.0
    return lambda model: sign * evaluate(model, tokenizer, task_name, "validation", limit)["primary"]


def load_tunable(path: Path, tuning: TuningConfig, device: str, dtype):
    """The data owner's model: the emulator artifact with only the adapter trainable."""
    model, manifest = load_emulator(path, dtype, device)
    return prepare(model, adapter_local(manifest), tuning), manifest


def tune(emulator_dir: Path, examples, cfg: OffsiteConfig, lr: float, validate_fn, device,
         dtype) -> tuple[dict, TrainResult]:
    """Train the adapter through the emulator; return its state in full-model names and the training record."""
    model, manifest = load_tunable(emulator_dir, cfg.tuning, device, dtype)
    record = train(model, examples, cfg.train, lr=lr, steps=cfg.max_steps, epochs=cfg.epochs, seed=cfg.seed,
                   eval_every=cfg.eval_every, validate=validate_fn, desc=f"emulator lr={lr:g}")
    return trainable_state(model, to_original(manifest)), record


def run(cfg: OffsiteConfig, out: str | Path, command: str = "") -> dict:
    out = Path(out)
    start = time.perf_counter()
    validate(cfg, "offsite")
    task = get_task(cfg.task)
    for split in ("train", "validation", "test"):
        task.docs(split)  # a missing data file fails here, before any model is loaded
    model_dir = cfg.emulator.preflight()
    device = cfg.device or default_device()
    dtype = default_dtype(device)
    emulator_dir, manifest = cfg.emulator.build()
    tokenizer = load_tokenizer(emulator_dir)
    n_train = len(task.docs("train"))
    limit = list(range(min(cfg.train_limit, n_train))) if cfg.train_limit else None
    examples = task_examples(cfg.task, tokenizer, cfg.train.max_length, indices=limit)
    validate_fn = validator(cfg.task, tokenizer, cfg.val_limit or None)
    ev = lambda m: evaluate(m, tokenizer, cfg.task, "test", cfg.limit or None)  # noqa: E731
    numbers, details, timings = {}, {}, {}

    cache = EvalCache(enabled=cfg.eval_cache)

    def measure(key, model, model_id=None):
        t = time.perf_counter()
        details[key] = ev(model) if model_id is None else cache.evaluate(
            results.LABELS[key], model, tokenizer, model_id, cfg.task, "test", cfg.limit or None)
        numbers[key] = details[key]["primary"]
        timings[f"eval_{key}"] = time.perf_counter() - t
        print(f"{results.LABELS[key]:>12}: {numbers[key]:.4f}")

    full = load_model(model_dir, dtype, device)
    measure("zero_shot", full, content_hash(model_dir))
    measure("emulator_zero_shot", load_emulator(emulator_dir, dtype, device)[0], f"emulator:{manifest['id']}")

    sweeps, states = [], []
    for lr in cfg.lr:
        state, record = tune(emulator_dir, examples, cfg, lr, validate_fn, device, dtype)
        sweeps.append({"lr": lr, "best_validation": record.best_score, "best_step": record.best_step,
                       "train": record.to_dict()})
        states.append(state)
    chosen = max(range(len(cfg.lr)), key=lambda i: sweeps[i]["best_validation"])  # by emulator validation only
    lr, adapter = cfg.lr[chosen], states[chosen]
    timings["train_emulator"] = sum(s["train"]["seconds"] for s in sweeps)
    emulator, _ = load_tunable(emulator_dir, cfg.tuning, device, dtype)
    load_trainable_state(emulator, adapter, to_local=to_local(manifest))
    measure("emulator_finetuned", emulator)
    meta = {**cfg.tuning.describe(), "adapter_blocks": manifest["adapter_blocks"], "source_model": cfg.emulator.model,
            "emulator_id": manifest["id"], "task": cfg.task}
    save_adapter(out / "adapter.safetensors", adapter, meta)
    base = {k: v.detach().clone() for k, v in adapter_parameters(full, manifest["adapter_blocks"]).items()}
    if len(cfg.lr) > 1:  # every rate's plug-in on the test split, recorded (never used to choose) to show the rule
        for i, (sweep, state) in enumerate(zip(sweeps, states)):
            if i != chosen:
                sweep["plugin_test"] = ev(plug_in(full, state, meta, base=base))["primary"]
    plug_in(full, adapter, meta, base=base)
    measure("plugin", full)
    sweeps[chosen]["plugin_test"] = numbers["plugin"]  # the chosen rate is scored once
    del full, emulator

    ft_sweeps = []
    if cfg.full_ft:
        best_ft = None
        for ft_lr in cfg.lr:
            model = load_model(model_dir, dtype, device)
            model.requires_grad_(True)
            rec = train(model, examples, cfg.train, lr=ft_lr, steps=cfg.max_steps, epochs=cfg.epochs, seed=cfg.seed,
                        eval_every=cfg.eval_every, validate=validate_fn, desc=f"full FT lr={ft_lr:g}")
            ft_sweeps.append({"lr": ft_lr, "best_validation": rec.best_score, "train": rec.to_dict()})
            if best_ft is None or rec.best_score > best_ft[1]:
                best_ft = (model, rec.best_score)
        measure("full_finetuned", best_ft[0])

    record_out = {
        "title": "Offsite-tuning (single site)",
        "model": cfg.emulator.model, "task": cfg.task, "metric": task.primary,
        "higher_is_better": task.higher_is_better,
        "split_label": describe(manifest),
        "numbers": numbers, "details": details, "chosen_lr": lr, "lr_sweep": sweeps, "full_ft_sweep": ft_sweeps,
        "config": to_flat(cfg), "emulator": {"path": str(emulator_dir), **manifest}, "timings": timings,
        "wall_seconds": time.perf_counter() - start, "command": command,
    }
    results.write(out, record_out)
    return record_out
