"""study.json, study.md and one plot per task, from the runs' own files (a finished study only re-renders)."""

from __future__ import annotations

from pathlib import Path

from ...evaluation.five import fmt
from ...files import atomic_path, shown, write_json, write_text
from ..markdown import difference_text
from ..page import markdown_page
from ..plots import style_metric_axis
from .choices import value_text
from .config import CENTRAL, CHOOSE, RESERVED, Study
from .runs import StudyRun
from .summary import load, summarise

CLAIMS = {("FT", "zero-shot"): "FT above zero-shot (the runs are long enough for tuning to gain)",
          ("federated", "zero-shot"): "{a} plug-in above zero-shot",
          ("federated", "local-only"): "{a} plug-in above the local-only mean",
          ("federated", "centralized"): "{a} plug-in above centralized offsite-tuning",
          ("federated-median", "federated"): "{a} above FedAvg",
          ("lossless", "federated"): "the lossless-emulator federation above the real one"}


def claim(a: str, b: str, bases: dict[str, str]) -> str:
    """What a comparison claims, in words (a variant's as its arm's, under its own name; against a variant of the
    other arm, naming it)."""
    key = (bases.get(a, a), bases.get(b, b))
    text = CLAIMS.get(key, "{a} above {b}").format(a=a, b=b)
    return f"{text} ({b})" if key[1] != b and key in CLAIMS else text


def _ms(stat: dict, metric: str) -> str:
    if not stat or stat.get("mean") is None:
        return "—"
    spread = "" if stat.get("std") is None else f" ± {fmt(stat['std'], metric)}"
    return f"{fmt(stat['mean'], metric)}{spread} (n={stat['n']})"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def section_lines(s: dict, bases: dict[str, str]) -> list[str]:
    metric, arrow = s["metric"], "↑" if s["higher_is_better"] else "↓"
    lines = [f"## {s['task']} / {s['partitioning']} ({metric} {arrow})", "",
             f"Zero-shot (full model) {fmt(s['zero_shot'], metric)}; emulator zero-shot "
             f"{fmt(s['emulator_zero_shot'], metric)}; FT (central, all data, not private) "
             f"{_ms(s['full_finetuned'], metric)}.", "",
             "| Arm | OT plug-in (mean ± std over seeds) | OT emulator | owner's gap | worst / best owner | runs | "
             "optimizer steps | tokens | adapter bytes moved |", "|---|---|---|---|---|---|---|---|---|"]
    for arm, row in s["arms"].items():
        extremes = f"{fmt(row['worst'], metric)} / {fmt(row['best'], metric)}" if "worst" in row else "—"
        b = row["budget"]
        lines.append(f"| {arm} | {_ms(row['plugin'], metric)} | {_ms(row['emulator_finetuned'], metric)} | "
                     f"{_ms(row['gap'], metric)} | {extremes} | {row['runs']} | {_count(b['optimizer_steps'])} | "
                     f"{_count(b['tokens'])} | {_count(b['adapter_bytes'])} |")
    lines += curve_lines(s)
    lines += round_lines(s["arms"], "train_loss", "Training loss through the emulator per round (mean ± std over "
                         "seeds; each round's local steps, averaged over the data owners of the round):")
    lines += comparison_lines(s["comparisons"], metric)
    for arm, kept in s.get("kept_of_centralized", {}).items():
        if kept.get("share") is None:
            continue
        ci = kept["ci95"]
        interval = f" (95% interval {100 * ci[0]:.0f}% to {100 * ci[1]:.0f}%)" if ci else ""
        of = kept.get("of", "centralized")
        named = "" if of == "centralized" else f" ({of})"
        lines += ["", f"The {arm} arm keeps {100 * kept['share']:.0f}%{interval} of centralized offsite-tuning's"
                      f"{named} gain over zero-shot (pooled over seeds {kept.get('seeds', '')}; the aim is at least "
                      f"90%: {'met' if kept['share'] >= 0.9 else 'not met'})."]
    lines += ["", "What this shows (pooled over the seeds finished on both sides, p < 0.05):"]
    for c in s["comparisons"]:
        p = c["pooled"]
        verdict = "yes" if p["a_better"] else f"no: {c['b']} is better" if p.get("b_better") else "no"
        lines.append(f"- {claim(c['a'], c['b'], bases)}: **{verdict}** (difference "
                     f"{difference_text(p['difference'], metric)}, p = {p['p']:.3g}; seeds {p.get('seeds', '')})")
    return lines + [""]


def _cell(stat: dict | None, metric: str | None = None) -> str:
    """mean ± std in the metric's format (a loss: three decimals)."""
    if not stat or stat.get("mean") is None:
        return "—"
    text = (lambda v: fmt(v, metric)) if metric else (lambda v: f"{v:.3f}")
    return text(stat["mean"]) + ("" if stat.get("std") is None else f" ± {text(stat['std'])}")


def round_lines(arms: dict[str, dict], name: str, title: str, metric: str | None = None) -> list[str]:
    """A table of each arm's ``name`` per round (mean ± std over seeds); none when no arm has two rounds of it."""
    rounds = sorted({int(k) for row in arms.values() for k in row.get(name, {})})
    if len(rounds) < 2:  # one round alone is the arm table's own number
        return []
    header = "| Arm | " + " | ".join(f"round {k}" for k in rounds) + " |"
    lines = ["", title, "", header, "|---|" + "---|" * len(rounds)]
    for arm, row in arms.items():
        values = {int(k): v for k, v in row.get(name, {}).items()}
        lines.append(f"| {arm} | " + " | ".join(_cell(values.get(k), metric) for k in rounds) + " |")
    return lines


def curve_lines(s: dict) -> list[str]:
    """Each arm's OT plug-in per evaluated round: on the whole split, or with eval-curve-limit on its first
    examples (zero-shot and FT named on those)."""
    c, metric = s.get("curve"), s["metric"]
    on = (f"on the first {c['examples']} test examples, where zero-shot is {fmt(c['zero_shot'], metric)} and FT "
          f"{_ms(c['full_finetuned'], metric)}" if c else "on the whole test split")
    return round_lines(s["arms"], "per_round", f"OT plug-in per round (mean ± std over seeds), {on}:", metric)


def comparison_lines(comparisons: list[dict], metric: str) -> list[str]:
    if not comparisons:
        return []
    lines = ["", "| Paired comparison (OT plug-in unless named) | seed | difference | 95% interval | test | p |",
             "|---|---|---|---|---|---|"]
    for c in comparisons:
        for seed, t in [*c["per_seed"].items(), ("pooled", c["pooled"])]:
            lo, hi = (difference_text(v, metric) for v in t["ci95"])
            bold = "**" if seed == "pooled" else ""
            lines.append(f"| {c['a']} vs {c['b']} | {bold}{seed}{bold} | {difference_text(t['difference'], metric)} "
                         f"| {lo} to {hi} | {t['test']} | {bold}{t['p']:.3g}{bold} |")
    return lines


def markdown(record: dict) -> str:
    st = record["study"]
    lines = [f"# Study {record['name']}: single-client vs federated offsite-tuning", "",
             f"Sim `{st['sim']}`, seeds {st['seeds']} (n = {len(st['seeds'])}), arms {', '.join(st['arms'])}; "
             f"{record['finished']} of {record['planned']} runs finished. Every number is from study.json, each "
             "run's own results.json is in runs/<task>/<partitioning>/<arm>/seed<s>/.", ""]
    variants = st.get("variants", {})
    for name, v in variants.items():
        changed = [f"{k} = {val}" for k, val in v.items() if k not in RESERVED]
        changed += [f"{k} chosen from {vals} on validation" for k, vals in v.get(CHOOSE, {}).items()]
        central = f", compared with {v[CENTRAL]} in place of centralized" if CENTRAL in v else ""
        lines += [f"Arm {name}: the {v['arm']} arm with {', '.join(changed)}{central}."]
    lines += [""] if variants else []
    lines += rate_lines(record.get("lr_selection", {})) + choice_lines(record.get("choices", {}))
    bases = {name: v["arm"] for name, v in variants.items()}
    for s in record["summary"]["sections"].values():
        lines += section_lines(s, bases)
    for c in record["summary"]["partitioning_cost"]:
        p = c["pooled"]
        lo, diff, hi = (difference_text(v, p["metric"]) for v in (p["ci95"][0], p["difference"], p["ci95"][1]))
        lines += [f"Cost of the partitioning on {c['task']} (pooled over seeds {p.get('seeds', '')}): {c['a']} vs "
                  f"{c['b']}: difference "
                  f"{diff}, 95% interval {lo} to {hi}, {p['test']}, p = {p['p']:.3g}.", ""]
    if record.get("command"):
        lines += [f"Command: `{record['command']}`"]
    return "\n".join(lines) + "\n"


def plot(section_list: list[dict], path: Path) -> None:
    """One column per partitioning: each arm's plug-in per evaluated round (mean ± std over seeds) against
    zero-shot and FT, and below it each arm's training loss through the emulator per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(section_list), figsize=(6 * len(section_list), 8.5), squeeze=False)
    order = list(dict.fromkeys(a for s in section_list for a in s["arms"]))  # one colour per arm in every panel
    for top, bottom, s in zip(axes[0], axes[1], section_list):
        ref = s.get("curve") or s  # with eval-curve-limit the curves are on the first examples: so are these lines
        top.axhline(ref["zero_shot"], color="k", ls="--", label="zero-shot")
        if ref["full_finetuned"].get("mean") is not None:
            top.axhline(ref["full_finetuned"]["mean"], color="0.45", ls=":", label="FT")
        for ax, name, label in ((top, "per_round", "plug-in"), (bottom, "train_loss", "training loss")):
            for arm in sorted(s["arms"], key=order.index):
                curve, i = s["arms"][arm].get(name, {}), order.index(arm)
                rounds = sorted(curve, key=int)
                dodge = 0.06 * (i - (len(order) - 1) / 2)  # arms side by side, so equal means do not hide each other
                ax.errorbar([int(r) + dodge for r in rounds], [curve[r]["mean"] for r in rounds],
                            yerr=[curve[r]["std"] or 0.0 for r in rounds], marker="o", capsize=3, color=f"C{i}",
                            label=f"{arm} {label}")
            evaluated = sorted({int(r) for row in s["arms"].values() for r in row.get(name, {})})
            if evaluated:  # ticks at the rounds shown (one round alone would get fractional ones)
                ax.set_xticks(evaluated)
                ax.set_xlim(min(evaluated) - 0.5, max(evaluated) + 0.5)
            ax.legend(fontsize=7)
        top.set(xlabel="round", ylabel=f"{s['metric']} ({'↑' if s['higher_is_better'] else '↓'})",
                title=f"{s['task']} / {s['partitioning']}: OT plug-in"
                + (f" (first {s['curve']['examples']} examples)" if s.get("curve") else ""))
        style_metric_axis(top, s["metric"])
        bottom.set(xlabel="round", ylabel="training loss through the emulator (↓)",
                   title=f"{s['task']} / {s['partitioning']}: training loss")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def rate_lines(selection: dict[str, dict]) -> list[str]:
    lines = []
    for task, s in selection.items():
        marks = {lr: "**" if float(lr) == s["rate"] else "" for lr in s["scores"]}  # the chosen rate in bold
        scores = ", ".join(f"{marks[lr]}{lr}: {fmt(v, s['metric'])}{marks[lr]}" for lr, v in s["scores"].items())
        lines += [f"Learning rate for {task}: {s['rate']:g}, chosen by the {s['arm']} arm (seed {s['seed']}) on "
                  f"{s['examples']} {s['split']} examples (OT plug-in after the last round: {scores}); every arm uses "
                  "it. The test split was not looked at.", ""]
    return lines


def choice_lines(choices: dict[str, dict]) -> list[str]:
    lines = []
    for key, c in choices.items():
        task, partitioning, arm = key.split("/")
        won, mean = value_text(c["value"]), f", the mean of {c['runs_per_value']} runs" * (c["runs_per_value"] > 1)
        scores = ", ".join(f"{'**' * (v == won)}{v}: {fmt(x, c['metric'])}{'**' * (v == won)}"
                           for v, x in c["scores"].items())
        lines += [f"{c['setting']} of arm {arm} on {task} / {partitioning}: {won}, chosen by the "
                  f"arm's own runs (seed {c['seed']}) on {c['examples']} {c['split']} examples (OT plug-in after the "
                  f"last round{mean}: {scores}). The test split was not looked at.", ""]
    return lines


def render(study: Study, runs: list[StudyRun], out: Path, command: str = "",
           lr_selection: dict[str, dict] | None = None, choices: dict[str, dict] | None = None) -> dict:
    """Read every finished run, write study.json, study.md and study-<task>.png; return the record.
    ``lr_selection``: each task's learning-rate choice (:func:`fedot.run.study.rates.chosen`); ``choices``: each
    variant's chosen value per task and partitioning (:func:`fedot.run.study.choices.picked`)."""
    loaded = [r for r in (load(run, out) for run in runs) if r is not None]
    summary = summarise(loaded, study.config.seeds, study.config.resamples, study.bases, study.references)
    record = {"name": study.name, "study_file": shown(study.path), "study": {
        "sim": shown(study.sim_path), "seeds": study.config.seeds, "arms": study.config.arms,
        "variants": study.variants,
        "tasks": study.tasks, "settings": study.settings, "partitionings": study.partitionings,
        "local_only_owners": study.config.local_only_owners}, "planned": len(runs), "finished": len(loaded),
        "summary": summary, "command": command, "lr_selection": lr_selection or {},
        "choices": choices or {},
        "runs": [{k: v for k, v in r.items() if k != "outcomes"} for r in loaded]}
    out.mkdir(parents=True, exist_ok=True)
    for task in dict.fromkeys(s["task"] for s in summary["sections"].values()):
        plot([s for s in summary["sections"].values() if s["task"] == task], out / f"study-{task}.png")
    write_json(out / "study.json", record)
    text = markdown(record)
    write_text(out / "study.md", text)
    markdown_page(out, f"Study {study.name}", text, sorted(out.glob("study-*.png")))
    print(text)
    return record
