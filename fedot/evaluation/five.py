"""The paper's five numbers and what is concluded from them: its three conditions (§3), the owner's privacy gap,
the share of the zero-shot -> FT gain plug-in recovers, and how a number is shown.

Zero-shot of the full model and of the emulator, the emulator fine-tuned through offsite-tuning (what a data owner
keeps), the adapter plugged into the full model (what the owner gets) and full fine-tuning (the reference, not
private). The conditions: plug-in beats zero-shot, plug-in beats the tuned emulator (the owner's edge), and plug-in
is within :data:`APPROX` of FT.
"""

from __future__ import annotations

FIVE = ("zero_shot", "emulator_zero_shot", "emulator_finetuned", "plugin", "full_finetuned")
LABELS = {
    "zero_shot": "Full ZS",
    "emulator_zero_shot": "Emulator ZS",
    "full_finetuned": "FT",
    "emulator_finetuned": "OT Emulator",
    "plugin": "OT Plug-in",
}
APPROX = 0.10  # plug-in ≈ full fine-tuning: within this fraction of the full fine-tuning number


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


def fmt(value, metric: str) -> str:
    """A number as tables show it: perplexities with two decimals, accuracies as percentages."""
    if value is None:
        return "—"
    return f"{value:.2f}" if "perplexity" in metric or "bits" in metric else f"{100 * value:.1f}%"


def interval_text(record: dict, key: str) -> str:
    """The 95% interval of one of a run's five numbers: the evaluator's own (``details``, single-site runs) or the
    one computed from its per-example outcomes (``intervals``, :mod:`fedot.evaluation.intervals`)."""
    ci = record.get("details", {}).get(key, {}).get(f"{record['metric']}_ci95") or record.get("intervals", {}).get(key)
    return "—" if not ci else f"{fmt(ci[0], record['metric'])}–{fmt(ci[1], record['metric'])}"
