"""The plots a run leaves: the five numbers as bars (results.png) and the metrics per round (rounds.png)."""

from __future__ import annotations

import math
from pathlib import Path

from ..evaluation.five import FIVE, LABELS, fmt
from ..files import atomic_path
from .log import curve_size, round_evaluations


def style_metric_axis(ax, metric: str) -> None:
    """Perplexities of compressed emulators span orders of magnitude: show them on a log scale."""
    if "perplexity" in metric:
        ax.set_yscale("log")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")


def plot_five(record: dict, path: Path) -> None:
    plt = _pyplot()
    keys = [k for k in FIVE if record["numbers"].get(k) is not None and math.isfinite(record["numbers"][k])]
    values = [record["numbers"][k] for k in keys]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    colors = ["#888", "#bbb", "#4c72b0", "#dd8452", "#55a868"][: len(keys)]
    bars = ax.bar([LABELS[k] for k in keys], values, color=colors)
    ax.bar_label(bars, labels=[fmt(v, record["metric"]) for v in values])
    ax.set_ylabel(record["metric"] + (" (higher is better)" if record["higher_is_better"] else " (lower is better)"))
    style_metric_axis(ax, record["metric"])
    ax.set_title(f"{record['title']}: {record['task']}")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_rounds(rows: list[dict], metric: str, path: Path) -> None:
    plt = _pyplot()
    evals = list(round_evaluations(rows).items())
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    if n := curve_size(rows):
        a.set_title(f"on the first {n} examples", fontsize=9)
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
    _save(fig, path)
    plt.close(fig)
