"""Single-site offsite-tuning end to end, in the paper's order:

model owner builds the emulator -> data owner tunes the adapter through it
(learning rate chosen on the emulator's validation score) -> owner plugs the
adapter into the full model -> the five numbers are measured on the test split.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from . import results
from .emulator import EmulatorSpec, adapter_local, read_manifest, to_local, to_original
from .emulator.artifact import describe
from .evaluate import evaluate
from .models import default_device, default_dtype, load_model, load_tokenizer
from .plugin import plug_in, save_adapter
from .tasks import get_task
from .train import TrainConfig, TrainResult, task_examples, train
from .tuning import TuningConfig, load_trainable_state, prepare, trainable_state


@dataclass
class OffsiteConfig:
    emulator: EmulatorSpec = field(default_factory=EmulatorSpec)
    task: str = "pydocs"
    tuning: TuningConfig = field(default_factory=TuningConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lrs: list[float] = field(default_factory=lambda: [1e-4])
    full_ft: bool = False
    limit: int | None = None  # test examples (documents for corpora)
    val_limit: int | None = 200
    train_limit: int | None = None
    device: str | None = None


def validator(task_name: str, tokenizer, limit: int | None):
    """Validation score (higher is better) on the task's validation split: -perplexity or accuracy."""
    sign = 1.0 if get_task(task_name).higher_is_better else -1.0
    return lambda model: sign * evaluate(model, tokenizer, task_name, "validation", limit)["primary"]


def load_emulator(path: Path, tuning: TuningConfig, device: str, dtype: torch.dtype):
    """The data owner's model: the emulator artifact with only the adapter trainable."""
    manifest = read_manifest(path)
    return prepare(load_model(path, dtype, device), adapter_local(manifest), tuning), manifest


def tune(emulator_dir: Path, examples, tuning: TuningConfig, cfg: TrainConfig, validate, device,
         dtype) -> tuple[dict, TrainResult]:
    """Train the adapter through the emulator; return its state in full-model names and the training record."""
    model, manifest = load_emulator(emulator_dir, tuning, device, dtype)
    record = train(model, examples, cfg, validate=validate, desc=f"emulator lr={cfg.lr:g}")
    return trainable_state(model, to_original(manifest)), record


def run(cfg: OffsiteConfig, out: str | Path, command: str = "") -> dict:
    out = Path(out)
    start = time.perf_counter()
    task = get_task(cfg.task)
    for split in ("train", "validation", "test"):
        task.docs(split)  # a missing data file fails here, before any model is loaded
    model_dir = cfg.emulator.check()
    device = cfg.device or default_device()
    dtype = default_dtype(device)
    emulator_dir, manifest = cfg.emulator.build()
    tokenizer = load_tokenizer(emulator_dir)
    n_train = len(task.docs("train"))
    limit = None if cfg.train_limit is None else list(range(min(cfg.train_limit, n_train)))
    examples = task_examples(cfg.task, tokenizer, cfg.train.max_length, indices=limit)
    validate = validator(cfg.task, tokenizer, cfg.val_limit)
    ev = lambda m: evaluate(m, tokenizer, cfg.task, "test", cfg.limit)  # noqa: E731
    numbers, details, timings = {}, {}, {}

    def measure(key, model):
        t = time.perf_counter()
        details[key] = ev(model)
        numbers[key] = details[key]["primary"]
        timings[f"eval_{key}"] = time.perf_counter() - t
        print(f"{results.LABELS[key]:>12}: {numbers[key]:.4f}")

    full = load_model(model_dir, dtype, device)
    measure("zero_shot", full)
    measure("emulator_zero_shot", load_model(emulator_dir, dtype, device))

    sweeps = []
    best = None
    for lr in cfg.lrs:
        state, record = tune(emulator_dir, examples, cfg.tuning, replace(cfg.train, lr=lr), validate, device, dtype)
        sweeps.append({"lr": lr, "best_validation": record.best_score, "best_step": record.best_step, "train": record.to_dict()})
        if best is None or record.best_score > best[2].best_score:
            best = (lr, state, record)
    lr, adapter, record = best
    timings["train_emulator"] = sum(s["train"]["seconds"] for s in sweeps)
    emulator, _ = load_emulator(emulator_dir, cfg.tuning, device, dtype)
    load_trainable_state(emulator, adapter, to_local=to_local(manifest))
    measure("emulator_finetuned", emulator)
    meta = {**cfg.tuning.describe(), "adapter_layers": manifest["adapter_layers"], "source_model": cfg.emulator.model,
            "emulator_sha256": manifest["sha256"], "task": cfg.task}
    save_adapter(out / "adapter.safetensors", adapter, meta)
    plug_in(full, adapter, meta)
    measure("plugin", full)
    del full, emulator

    ft_sweeps = []
    if cfg.full_ft:
        best_ft = None
        for ft_lr in cfg.lrs:
            model = load_model(model_dir, dtype, device)
            model.requires_grad_(True)
            rec = train(model, examples, replace(cfg.train, lr=ft_lr), validate=validate, desc=f"full FT lr={ft_lr:g}")
            ft_sweeps.append({"lr": ft_lr, "best_validation": rec.best_score, "train": rec.to_dict()})
            if best_ft is None or rec.best_score > best_ft[1]:
                best_ft = (model, rec.best_score)
        measure("full_finetuned", best_ft[0])

    record_out = {
        "title": "Offsite-tuning (single site)",
        "model": cfg.emulator.model, "task": cfg.task, "metric": task.primary, "higher_is_better": task.higher_is_better,
        "split_label": describe(manifest),
        "numbers": numbers, "details": details, "chosen_lr": lr, "lr_sweep": sweeps, "full_ft_sweep": ft_sweeps,
        "config": asdict(cfg), "emulator": {"path": str(emulator_dir), **manifest}, "timings": timings,
        "wall_seconds": time.perf_counter() - start, "command": command,
    }
    results.write(out, record_out)
    return record_out
