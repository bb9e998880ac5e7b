"""The paper's five numbers, its three conditions, and how a run writes them (json, markdown, bar chart)."""

from __future__ import annotations

import math
import platform
from pathlib import Path

from ..files import atomic_path, write_json, write_text

FIVE = ("zero_shot", "emulator_zero_shot", "emulator_finetuned", "plugin", "full_finetuned")
LABELS = {
    "zero_shot": "Full ZS",
    "emulator_zero_shot": "Emulator ZS",
    "full_finetuned": "FT",
    "emulator_finetuned": "OT Emulator",
    "plugin": "OT Plug-in",
}
# plug-in ≈ full fine-tuning: within this fraction of the full fine-tuning number
APPROX = 0.10


def better(a: float, b: float, higher_is_better: bool) -> bool:
    return a > b if higher_is_better else a < b


def conditions(numbers: dict, higher_is_better: bool) -> dict:
    """The paper's §3 requirements, each True/False, or None when a number is missing."""
    zs, emu, plug, ft = (numbers.get(k) for k in ("zero_shot", "emulator_finetuned", "plugin", "full_finetuned"))
    return {
        "zero_shot < plug-in": None if None in (zs, plug) else better(plug, zs, higher_is_better),
        "emulator fine-tuned < plug-in": None if None in (emu, plug) else better(plug, emu, higher_is_better),
        "plug-in ≈ full fine-tuning": None if None in (plug, ft) else abs(plug - ft) <= APPROX * abs(ft),
    }


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "peft", "lm_eval", "flwr", "ray", "fedot-offsite"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def gap(numbers: dict, higher_is_better: bool) -> float | None:
    """The owner's privacy margin: how much better plug-in is than the tuned emulator a data owner holds."""
    if numbers.get("plugin") is None or numbers.get("emulator_finetuned") is None:
        return None
    return (1 if higher_is_better else -1) * (numbers["plugin"] - numbers["emulator_finetuned"])


def recovered(numbers: dict, higher_is_better: bool) -> float | None:
    """The share of the zero-shot -> FT gain that plug-in recovers, (plug-in - ZS) / (FT - ZS) (paper: 88% on its
    task average with OPT-1.3B); None without FT, or when FT is no better than zero-shot (no gain to recover)."""
    zs, plug, ft = (numbers.get(k) for k in ("zero_shot", "plugin", "full_finetuned"))
    if None in (zs, plug, ft) or not better(ft, zs, higher_is_better):
        return None
    return (plug - zs) / (ft - zs)


def _interval(record: dict, key: str) -> str:
    ci = record.get("details", {}).get(key, {}).get(f"{record['metric']}_ci95")
    return "—" if not ci else f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"


def _sweep_lines(record: dict) -> list[str]:
    """Every learning rate's emulator validation (what chooses) beside its plug-in on the test split (never used)."""
    sweep, ft = record.get("lr_sweep") or [], {s["lr"]: s for s in record.get("full_ft_sweep") or []}
    if len(sweep) < 2:
        return []
    lines = ["", "| lr | emulator validation (chooses) | best step | OT Plug-in (test, not used) | FT validation |",
             "|---|---|---|---|---|"]
    for s in sweep:
        mark = " **(chosen)**" if s["lr"] == record.get("chosen_lr") else ""
        ftv = ft.get(s["lr"], {}).get("best_validation")
        lines.append(f"| {s['lr']:g}{mark} | {s['best_validation']:.4f} | {s.get('best_step', '—')} | "
                     f"{_fmt(s.get('plugin_test'), record['metric'])} | {'—' if ftv is None else f'{ftv:.4f}'} |")
    return lines


def _fmt(value, metric: str) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if "perplexity" in metric or "bits" in metric else f"{100 * value:.1f}%"


def markdown(record: dict) -> str:
    metric, numbers = record["metric"], record["numbers"]
    arrow = "↑" if record["higher_is_better"] else "↓"
    intervals = any(_interval(record, key) != "—" for key in FIVE)
    lines = [f"# {record['title']}", "",
             f"Task `{record['task']}`, metric `{metric}` ({arrow}), model `{record['model']}`, "
             f"adapter/emulator {record['split_label']}.", "",
             "| Setting | " + record["task"] + f" ({arrow}) |" + (" 95% interval |" if intervals else ""),
             "|---|---|" + ("---|" if intervals else "")]
    extra = " |" if intervals else ""  # the interval column, where accuracies have one
    for key in ("zero_shot", "emulator_zero_shot", "full_finetuned", "emulator_finetuned", "plugin"):
        cell = f" {_interval(record, key)} |" if intervals else ""
        lines.append(f"| {LABELS[key]} | {_fmt(numbers.get(key), metric)} |{cell}")
    margin = _fmt(gap(numbers, record["higher_is_better"]), metric)
    lines.append(f"| Gap (plug-in better than OT emulator by) | {margin} |{extra}")
    share = recovered(numbers, record["higher_is_better"])
    if share is not None:
        lines.append(f"| Recovered share of the ZS → FT gain | {100 * share:.0f}% |{extra}")
    lines += ["", "| Condition (paper §3) | holds |", "|---|---|"]
    for name, ok in record["conditions"].items():
        lines.append(f"| {name} | {'—' if ok is None else ('yes' if ok else '**no**')} |")
    lines += _sweep_lines(record)
    if record.get("tiers"):
        lines += ["", "| Emulator tier (middle blocks) | data owners | Emulator ZS | OT Emulator |",
                  "|---|---|---|---|"]
        for t in record["tiers"]:
            lines.append(f"| {t['blocks']} | {t['data_owners']} | {_fmt(t['emulator_zero_shot'], metric)} | "
                         f"{_fmt(t['emulator_finetuned'], metric)} |")
    if record.get("privacy"):
        p = record["privacy"]
        lines += ["", f"Differential privacy ({p['mode']}, noise multiplier {p['noise_multiplier']:g}, clipping norm "
                      f"{p['clip_norm']:.4g}): (epsilon = {p['epsilon']:.3g}, delta = {p['delta']:g}) after "
                      f"{p['releases']} releases, client-level, Flower's RDP accountant"]
    if record.get("command"):
        lines += ["", f"Command: `{record['command']}`"]
    return "\n".join(lines) + "\n"


def style_metric_axis(ax, metric: str) -> None:
    """Perplexities of compressed emulators span orders of magnitude: show them on a log scale."""
    if "perplexity" in metric:
        ax.set_yscale("log")


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in FIVE if record["numbers"].get(k) is not None and math.isfinite(record["numbers"][k])]
    values = [record["numbers"][k] for k in keys]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    colors = ["#888", "#bbb", "#4c72b0", "#dd8452", "#55a868"][: len(keys)]
    bars = ax.bar([LABELS[k] for k in keys], values, color=colors)
    ax.bar_label(bars, labels=[_fmt(v, record["metric"]) for v in values])
    ax.set_ylabel(record["metric"] + (" (higher is better)" if record["higher_is_better"] else " (lower is better)"))
    style_metric_axis(ax, record["metric"])
    ax.set_title(f"{record['title']}: {record['task']}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def write(out: Path, record: dict) -> dict:
    """Write results.json, results.md and results.png into ``out`` (each atomically); print the table."""
    out.mkdir(parents=True, exist_ok=True)
    record = {**record, "conditions": conditions(record["numbers"], record["higher_is_better"]),
              "recovered": recovered(record["numbers"], record["higher_is_better"]), "versions": versions()}
    text = markdown(record)
    plot(record, out / "results.png")
    write_text(out / "results.md", text)
    write_json(out / "results.json", record)
    print(text)
    return record
