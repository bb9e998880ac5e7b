"""Compare runs (single-client vs federated, or any others): final numbers, plug-in per round, bytes sent.

Runs whose settings differ only in ``seed`` are repeats of one experiment: they are shown as one row of mean ± sample
standard deviation over the seeds (n = how many), and their plug-in per round as the mean with error bars, so a
difference between experiments can be read against the spread between seeds.

Where the runs stored per-example outcomes (``outcomes.json``), every other run's tuned models (OT emulator, plug-in,
FT) are tested against the first run's on the same examples (:func:`fedot.evaluation.paired.compare`: McNemar for
choices, paired bootstrap for perplexity and ROUGE-L), written to ``paired.json`` beside the table: two intervals
read side by side are not a test. A run trained without FT (``--no-full-ft``) borrows the FT of the first run that
trained one, where both scored the same zero-shot outcomes (the same model on the same examples) and trained on the same
budget (steps, batch size, length: :data:`BUDGET`): its recovered share
(plug-in - ZS) / (FT - ZS) then gets its 95% interval from one shared resample (``recovered.json``), rather than a
share computed by hand from two results.json files.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..evaluation.five import FIVE, LABELS, fmt, gap, recovered
from ..files import write_json
from .log import curve_size, round_evaluations
from .page import markdown_page


def load_run(path: str | Path) -> dict:
    path = Path(path)
    file = path / "results.json"
    if not file.exists():
        raise FileNotFoundError(f"{file} does not exist; pass run directories written by `fedot sim` or "
                                "`fedot offsite`")
    record = json.loads(file.read_text())
    rounds = path / "rounds.jsonl"
    record["rounds"] = [json.loads(line) for line in rounds.read_text().splitlines()] if rounds.exists() else []
    record["name"] = path.name
    record["numbers"]["gap"] = gap(record["numbers"], record["higher_is_better"])
    return record


UNCOMPARED = ("seed", "run-dir", "command", "data-dir", "verbose", "resume", "out", "device")


def _config(run: dict) -> dict:
    return run.get("config") or run.get("run_config") or {"name": run["name"]}  # fedot offsite / fedot sim


def experiment_key(run: dict) -> str:
    """What a run is a repeat of: its settings without the seed and where it ran."""
    return json.dumps({k: v for k, v in _config(run).items() if k not in UNCOMPARED}, sort_keys=True, default=str)


def group_runs(runs: list[dict]) -> list[list[dict]]:
    """Runs grouped by :func:`experiment_key`, in the order their first run was given. Only different seeds make a
    group: a second run of the same settings *and* seed (another fedot version, other data files, a rerun) is not a
    seed of the first, so it gets a row of its own rather than a standard deviation it would fake."""
    groups: list[tuple[str, list[dict]]] = []
    for r in runs:
        key, seed = experiment_key(r), _config(r).get("seed")
        home = next((g for k, g in groups if k == key and seed not in {_config(x).get("seed") for x in g}), None)
        if home is None:
            groups.append((key, [r]))
        else:
            home.append(r)
    return [g for _, g in groups]


def mean_std(values: list[float]) -> tuple[float, float]:
    import statistics

    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


UNITS = ("seconds", "MiB")  # plain quantities beside the task's metric


def _cell(values: list, metric: str) -> str:
    values = [v for v in values if v is not None]

    def shown(v):
        return f"{v:,.1f}" if metric in UNITS else fmt(v, metric)

    if not values:
        return "—"
    if len(values) == 1:
        return shown(values[0])
    m, sd = mean_std(values)
    return f"{shown(m)} ± {shown(sd)}"


def _name(group: list[dict]) -> str:
    return group[0]["name"] if len(group) == 1 else f"{group[0]['name']} (n={len(group)} seeds)"


def _emulator(run: dict) -> str:
    """The emulator's method and its size as a share of the full model (when the artifact is still there)."""
    from ..sizes import artifact_sizes

    emulator = run.get("emulator", {})
    method = emulator.get("method", "?")
    if emulator.get("path") and Path(emulator["path"]).is_dir():
        params = artifact_sizes(emulator["path"])["params"]
        return f"{method}, {params['emulator'] / params['full_model']:.0%} of full"
    return method


def per_round_table(groups: list[list[dict]], metric: str) -> list[str]:
    """Each experiment's evaluated rounds: plug-in and OT emulator, and where a run re-aligns its emulator the owner's
    seconds and the MiB the next round sent to bring data owners that version (mean ± std over seeds)."""
    if not any(row.get("evaluation") and row["round"] > 0 for g in groups for r in g for row in r["rounds"]):
        return []
    aligned = any(row.get("alignment") for g in groups for r in g for row in r["rounds"])
    head = ["OT plug-in", "OT emulator"] + (["owner alignment (s)", "emulator update sent next round (MiB)"]
                                            if aligned else [])
    n = {k for g in groups for r in g if (k := curve_size(r["rounds"]))}
    on = [f"Runs with eval-curve-limit are shown on their curve's first {', '.join(map(str, sorted(n)))} examples "
          "in every round (the five numbers above are on the whole split).", ""] if n else []
    lines = ["", "## Per round", "", *on, "| Run | round | " + " | ".join(head) + " |",
             "|---|---|" + "---|" * len(head)]
    for g in groups:
        rows = [{row["round"]: row for row in r["rounds"]} for r in g]
        curves = [round_evaluations(r["rounds"]) for r in g]  # with eval-curve-limit: on the curve's examples
        updates = [{row["emulator_update"]["artifact_id"]: row["emulator_update"]["bytes_sent"] / 2**20
                    for row in r["rounds"] if row.get("emulator_update")} for r in g]
        for k in sorted({k for r in rows for k in r if k > 0}):
            at = [r.get(k, {}) for r in rows]
            align = [a.get("alignment") for a in at]
            if not any(a.get("evaluation") or a.get("alignment") for a in at):
                continue  # a round no run evaluated (an evaluation schedule) has nothing to show
            cells = [_cell([c.get(k, {}).get(m) for c in curves], metric) for m in ("plugin", "emulator_finetuned")]
            if aligned:
                cells.append(_cell([x["owner_seconds"] if x else None for x in align], "seconds"))
                cells.append(_cell([u.get(x["emulator_id"]) if x else None for x, u in zip(align, updates)], "MiB"))
            lines.append(f"| {_name(g)} | {k} | " + " | ".join(cells) + " |")
    return lines


TUNED = ("emulator_finetuned", "plugin", "full_finetuned")  # what differs between runs of one task


def load_outcomes(paths: list[Path]) -> list[dict | None]:
    """Each run's stored per-example outcomes, None where it has no outcomes.json (read once per comparison)."""
    from ..evaluation.outcomes import read_outcomes

    return [read_outcomes(p / "outcomes.json") if (p / "outcomes.json").exists() else None for p in paths]


def paired_against_first(outcomes: list[dict | None], runs: list[dict]) -> tuple[list[str], list[dict]]:
    """Each later run's tuned models against the first run's, example by example (table lines, records)."""
    from ..evaluation.outcomes import OutcomesError
    from ..evaluation.paired import compare as paired_compare

    if outcomes[0] is None or all(o is None for o in outcomes[1:]):
        return [], []
    base, first = outcomes[0], runs[0]["name"]
    metric, higher = runs[0]["metric"], runs[0]["higher_is_better"]
    lines = ["", f"## Paired against {first} (the same examples)", "",
             f"| Run | model | this run's {metric} | {first}'s | difference | 95% interval | test | p |",
             "|---" * 8 + "|"]
    records = []
    for run, other in zip(runs[1:], outcomes[1:]):
        if other is None:
            lines.append(f"| {run['name']} | — | no outcomes.json: not paired | | | | | |")
            continue
        for model in (m for m in TUNED if m in base and m in other):
            if other[model] == base[model]:
                lines.append(f"| {run['name']} | {LABELS[model]} | the same evaluation (identical outcomes) |"
                             " | | | | |")
                continue
            try:
                r = paired_compare(other[model], base[model], metric, higher,
                                   (f"{run['name']} {model}", f"{first} {model}"))
            except OutcomesError as e:
                lines.append(f"| {run['name']} | {LABELS[model]} | not paired: {e} | | | | | |")
                continue
            records.append(r)
            low, high = r["ci95"]
            lines.append(f"| {run['name']} | {LABELS[model]} | {r['value_a']:.5g} | {r['value_b']:.5g} | "
                         f"{r['difference']:+.5g} | {low:+.5g} to {high:+.5g} | {r['test']} | {r['p']:.4g} |")
    return lines, records


BUDGET = ("steps", "epochs", "batch-size", "grad-accum", "max-length", "train-limit", "num-rounds")


def budget(run: dict) -> dict:
    """What a run's FT baseline depends on beyond the model and the examples: its training budget."""
    config = _config(run)
    return {k: config.get(k) for k in BUDGET if k in config}


def _not_borrowable(run: dict, outcomes: dict, ref: dict, ref_outcomes: dict) -> str | None:
    """Why ``run`` cannot borrow ``ref``'s FT (None: it can)."""
    if "plugin" not in outcomes:
        return "no plug-in outcomes"
    if outcomes.get("zero_shot") != ref_outcomes["zero_shot"]:
        return "its zero-shot outcomes differ (another model, split or limit)"
    if budget(run) != budget(ref):
        return f"another training budget ({budget(run)} vs {budget(ref)})"
    return None


def recovered_with_borrowed_ft(outcomes: list[dict | None], runs: list[dict]) -> tuple[list[str], list[dict]]:
    """The recovered share of each run without FT against the first run's FT that shares its zero-shot outcomes and
    its training budget (an FT trained four times longer is another reference, not a borrowable one)."""
    from ..evaluation.outcomes import OutcomesError
    from ..evaluation.paired import recovered_interval

    outcomes = [o or {} for o in outcomes]
    refs = [(run, o) for run, o in zip(runs, outcomes) if "full_finetuned" in o and "zero_shot" in o]
    borrowers = [(run, o) for run, o in zip(runs, outcomes) if run["numbers"].get("full_finetuned") is None]
    if not refs or not borrowers:
        return [], []
    ref, ref_outcomes = refs[0]
    metric, higher = ref["metric"], ref["higher_is_better"]
    lines = ["", f"## Recovered share against {ref['name']}'s FT (runs trained without FT)", "",
             f"| Run | zero-shot | OT plug-in | FT ({ref['name']}) | recovered | 95% interval |", "|---" * 6 + "|"]
    records = []
    for run, o in borrowers:
        why = _not_borrowable(run, o, ref, ref_outcomes)
        if why:
            lines.append(f"| {run['name']} | not computed: {why} | | | | |")
            continue
        numbers = {**run["numbers"], "full_finetuned": ref["numbers"]["full_finetuned"]}
        share = recovered(numbers, higher)
        try:
            ci = recovered_interval(o["zero_shot"], o["plugin"], ref_outcomes["full_finetuned"], metric)
        except OutcomesError as e:
            lines.append(f"| {run['name']} | not computed: {e} | | | | |")
            continue
        records.append({"run": run["name"], "ft_from": ref["name"], "recovered": share, "ci95": ci,
                        **{k: numbers.get(k) for k in ("zero_shot", "plugin", "full_finetuned")}})
        cells = [fmt(numbers.get(k), metric) for k in ("zero_shot", "plugin", "full_finetuned")]
        interval = "—" if ci is None else f"{ci[0]:.4g} to {ci[1]:.4g}"
        lines.append(f"| {run['name']} | " + " | ".join(cells) + f" | {'—' if share is None else f'{share:.4g}'} | "
                     f"{interval} |")
    return lines, records


def compare(paths: list[str | Path], out: str | Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [load_run(p) for p in paths]
    metric = runs[0]["metric"]
    if any(r["metric"] != metric or r["task"] != runs[0]["task"] for r in runs):
        raise ValueError("runs measure different tasks or metrics; compare runs of the same task")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    head = "| Run | emulator | " + " | ".join(LABELS[k] for k in FIVE) + " | gap | bytes down | bytes up | wall (s) |"
    lines = [f"# Comparison: {runs[0]['task']} ({metric})", "", head, "|" + "---|" * (len(FIVE) + 6)]
    groups = group_runs(runs)
    for g in groups:
        r = g[0]
        comm = r.get("communication", {})
        down = sum(comm.get(k, 0) for k in ("emulator_bytes_down", "emulator_update_bytes_down", "adapter_bytes_down"))
        cells = [_cell([x["numbers"].get(k) for x in g], metric) for k in FIVE + ("gap",)]
        wall = mean_std([x.get("wall_seconds", 0) for x in g])[0]
        lines.append(f"| {_name(g)} | {_emulator(r)} | " + " | ".join(cells) +
                     f" | {down:,} | {comm.get('adapter_bytes_up', 0):,} | {wall:.0f} |")
    if any(len(g) > 1 for g in groups):
        lines += ["", "Rows over several seeds: mean ± sample standard deviation."]
    lines += per_round_table(groups, metric)
    outcomes = load_outcomes([Path(p) for p in paths])
    paired_lines, paired = paired_against_first(outcomes, runs)
    lines += paired_lines
    recovered_lines, shares = recovered_with_borrowed_ft(outcomes, runs)
    lines += recovered_lines
    text = "\n".join(lines) + "\n"
    (out / "comparison.md").write_text(text)
    if paired:
        write_json(out / "paired.json", paired)
    if shares:
        write_json(out / "recovered.json", shares)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for g in groups:
        per_round: dict[int, list[float]] = {}
        for r in g:
            for k, e in round_evaluations(r["rounds"]).items():
                if e.get("plugin") is not None:
                    per_round.setdefault(k, []).append(e["plugin"])
        if per_round:
            rounds = sorted(per_round)
            stats = [mean_std(per_round[k]) for k in rounds]
            a.errorbar(rounds, [m for m, _ in stats], yerr=[sd for _, sd in stats], marker="o", capsize=3,
                       label=_name(g))
        cum, total = [], 0
        for row in g[0]["rounds"]:
            total += row.get("bytes_down", 0) + row.get("bytes_up", 0) + row.get("emulator_bytes_down", 0) + \
                row.get("emulator_update", {}).get("bytes_sent", 0)
            cum.append((row["round"], total / 2**20))
        if cum:
            b.plot(*zip(*cum), marker="o", label=_name(g))
    a.set_xlabel("round"), a.set_ylabel(f"OT plug-in {metric}")
    b.set_xlabel("round"), b.set_ylabel("cumulative MiB communicated")
    drawn = [ax for ax in (a, b) if ax.get_legend_handles_labels()[0]]
    for ax in drawn:
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    if drawn:  # single-site runs have no rounds: no empty figure
        fig.tight_layout()
        fig.savefig(out / "comparison.png", dpi=120)
    plt.close(fig)
    markdown_page(out, lines[0].removeprefix("# "), text, [out / "comparison.png"] if drawn else [])
    print(text)
    return text
