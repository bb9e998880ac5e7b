"""What a federated run leaves behind: rounds.jsonl (written as it goes), results.{json,md,png}, rounds.png, adapter."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from . import results
from .emulator.artifact import describe
from .results import style_metric_axis
from .tasks import get_task


def run_dir(run_config: dict) -> Path:
    """The run's output directory; must be absolute because the SuperLink's working directory is not the user's."""
    value = str(run_config.get("run-dir", "")).strip()
    if not value or not Path(value).expanduser().is_absolute():
        raise ValueError(f"run-dir must be an absolute path (got {value!r}); pass --run-config \"run-dir='/abs/path'\" "
                         "or use `fedot sim`, which fills it in")
    path = Path(value).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def plot_rounds(rows: list[dict], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [(r["round"], r["evaluation"]) for r in rows if r.get("evaluation")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("plugin", "OT plug-in"), ("emulator_finetuned", "OT emulator")):
        pts = [(rnd, e[key]) for rnd, e in evals if key in e]
        if pts:
            a.plot(*zip(*pts), marker="o", label=label)
    zs = [e["zero_shot"] for _, e in evals if "zero_shot" in e]
    if zs:
        a.axhline(zs[0], color="gray", ls="--", label="full zero-shot")
    a.set_xlabel("round")
    a.set_ylabel(metric)
    style_metric_axis(a, metric)
    a.legend()
    for ax in (a, b):
        ax.xaxis.get_major_locator().set_params(integer=True)
    losses = [(r["round"], r["train_loss"]) for r in rows if r.get("train_loss") is not None]
    if losses:
        b.plot(*zip(*losses), marker="o")
    b.set_xlabel("round")
    b.set_ylabel("mean client train loss")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def federated_report(owner, adapter, evaluations: dict, round_log, out: Path, run_config: dict) -> dict:
    cfg = owner.cfg
    task = get_task(cfg.task)
    owner.save_adapter(out / "adapter.safetensors", adapter)
    numbers = dict(evaluations.get(0, {}))
    last = max((r for r, e in evaluations.items() if "plugin" in e), default=None)
    if last is not None:
        numbers.update({k: evaluations[last][k] for k in ("emulator_finetuned", "plugin")})
    rows = round_log.rows
    client_steps = sum(r.get("client_steps", 0) for r in rows)
    if cfg.full_ft:
        numbers["full_finetuned"] = owner.full_finetune(cfg.full_ft_steps or client_steps)
    record = {
        "title": f"Federated offsite-tuning, {len({n for r in rows for n in r.get('sampled', [])})} clients",
        "model": cfg.emulator.model, "task": cfg.task, "metric": task.primary, "higher_is_better": task.higher_is_better,
        "split_label": describe(owner.manifest),
        "numbers": numbers, "per_round": {str(k): v for k, v in evaluations.items()},
        "communication": {
            "emulator_bytes_down": sum(r.get("emulator_bytes_down", 0) for r in rows),
            "adapter_bytes_down": sum(r.get("bytes_down", 0) for r in rows),
            "adapter_bytes_up": sum(r.get("bytes_up", 0) for r in rows),
        },
        "client_steps": client_steps, "config": asdict(cfg), "run_config": dict(run_config),
        "emulator": {"path": str(owner.emulator_dir), **owner.manifest},
        "wall_seconds": time.perf_counter() - round_log.t0, "command": run_config.get("command", ""),
    }
    results.write(out, record)
    plot_rounds(rows, task.primary, out / "rounds.png")
    return record
