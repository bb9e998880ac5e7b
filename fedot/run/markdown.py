"""results.md: the five numbers laid out like the paper's Table 1, with intervals, the conditions, every learning rate's
validation beside its plug-in, emulator tiers and the privacy budget."""

from __future__ import annotations

from ..evaluation.five import FIVE, LABELS, fmt, gap, interval_text, recovered


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
                     f"{fmt(s.get('plugin_test'), record['metric'])} | {'—' if ftv is None else f'{ftv:.4f}'} |")
    return lines


def difference_text(value: float, metric: str) -> str:
    """A difference of two numbers: accuracy points, or the perplexity difference."""
    return f"{value:+.2f}" if "perplexity" in metric or "bits" in metric else f"{100 * value:+.1f} pt"


def paired_lines(pairs: dict, metric: str) -> list[str]:
    """One row per paired test (same examples): the difference, its 95% paired-bootstrap interval, the test, p."""
    if not pairs:
        return []
    lines = ["", f"| Paired test ({next(iter(pairs.values()))['n']} examples) | difference | 95% interval | test | p |",
             "|---|---|---|---|---|"]
    for label, t in pairs.items():
        lo, hi = (difference_text(v, metric) for v in t["ci95"])
        discordant = f" ({t['a_only']} vs {t['b_only']} discordant)" if "a_only" in t else ""
        lines.append(f"| {label} | {difference_text(t['difference'], metric)} | {lo} to {hi} | "
                     f"{t['test']}{discordant} | {t['p']:.3g} |")
    return lines


def _divergence_lines(record: dict) -> list[str]:
    """What went wrong before these numbers: where a run stopped diverging, rounds rolled back, numbers not finite."""
    lines = []
    if record.get("diverged"):
        d = record["diverged"]
        lines.append(f"**Diverged at round {d['round']}** ({d['reason']}); the run stopped there and the numbers below "
                     "are those of the last adapter that evaluated finite.")
    for d in record.get("diverged_rounds") or []:
        if not record.get("diverged") or d["round"] != record["diverged"]["round"]:
            lines.append(f"Round {d['round']} diverged ({d['reason']}) and was rolled back to the adapter of round "
                         f"{d['rolled_back_to']}.")
    if record.get("not_finite"):
        lines.append("**Not finite** (left out of the table): " + ", ".join(f"{k} = {v}" for k, v in
                                                                           record["not_finite"].items()) + ".")
    return [*lines, ""] if lines else []


def markdown(record: dict) -> str:
    metric, numbers = record["metric"], record["numbers"]
    arrow = "↑" if record["higher_is_better"] else "↓"
    intervals = any(interval_text(record, key) != "—" for key in FIVE) or bool(record.get("recovered_ci95"))
    lines = [f"# {record['title']}", "", *_divergence_lines(record),
             f"Task `{record['task']}`, metric `{metric}` ({arrow}), model `{record['model']}`, "
             f"adapter/emulator {record['split_label']}.", "",
             "| Setting | " + record["task"] + f" ({arrow}) |" + (" 95% interval |" if intervals else ""),
             "|---|---|" + ("---|" if intervals else "")]
    extra = " |" if intervals else ""  # the interval column, where accuracies have one
    for key in ("zero_shot", "emulator_zero_shot", "full_finetuned", "emulator_finetuned", "plugin"):
        cell = f" {interval_text(record, key)} |" if intervals else ""
        lines.append(f"| {LABELS[key]} | {fmt(numbers.get(key), metric)} |{cell}")
    margin = fmt(gap(numbers, record["higher_is_better"]), metric)
    lines.append(f"| Gap (plug-in better than OT emulator by) | {margin} |{extra}")
    share = recovered(numbers, record["higher_is_better"])
    if share is not None:
        ci = record.get("recovered_ci95")
        cell = f" {100 * ci[0]:.0f}% to {100 * ci[1]:.0f}% |" if intervals and ci else extra
        lines.append(f"| Recovered share of the ZS → FT gain | {100 * share:.0f}% |{cell}")
    lines += ["", "| Condition (paper §3) | holds |", "|---|---|"]
    for name, ok in record["conditions"].items():
        lines.append(f"| {name} | {'—' if ok is None else ('yes' if ok else '**no**')} |")
    lines += paired_lines(record.get("paired") or {}, metric)
    lines += _sweep_lines(record)
    if record.get("tiers"):
        lines += ["", "| Emulator tier (middle blocks) | data owners | Emulator ZS | OT Emulator |",
                  "|---|---|---|---|"]
        for t in record["tiers"]:
            lines.append(f"| {t['blocks']} | {t['data_owners']} | {fmt(t['emulator_zero_shot'], metric)} | "
                         f"{fmt(t['emulator_finetuned'], metric)} |")
    if record.get("privacy"):
        p = record["privacy"]
        lines += ["", f"Differential privacy ({p['mode']}, noise multiplier {p['noise_multiplier']:g}, clipping norm "
                      f"{p['clip_norm']:.4g}): (epsilon = {p['epsilon']:.3g}, delta = {p['delta']:g}) after "
                      f"{p['releases']} releases, client-level, Flower's RDP accountant"]
    if record.get("command"):
        lines += ["", f"Command: `{record['command']}`"]
    return "\n".join(lines) + "\n"
