"""What a study found: each arm's numbers over seeds, its budget, and the paired comparisons that matter.

Per task and partitioning, each arm's plug-in and OT-emulator scores (and, per round, the plug-in of the evaluated
rounds and the training loss through the emulator that every round logs) are reported as mean ± sample standard
deviation over the seeds (n = seeds; the local-only arm first averages its owners within a seed, and also reports
the worst and best owner). Budgets are what the runs' logs counted: optimizer steps and tokens of all data owners
together, and the adapter bytes moved (both directions; the emulator each data owner downloads once is the same in
every arm, and what a run measured of it depends on what the owners held from earlier runs, so it is not a budget
column). The comparisons are paired
(:func:`fedot.evaluation.paired.compare`: exact McNemar for multiple choice, paired bootstrap over documents for
perplexity; against the local-only mean, a paired bootstrap of the mean of the owners), per seed and pooled over the
seeds that have finished on both sides (:func:`fedot.evaluation.outcomes.concat`; the pooled test resamples examples
with all their seeds' outcomes, a cluster bootstrap, :mod:`fedot.evaluation.paired`; the seeds pooled are named,
so a study still running reports what it has). FT against zero-shot comes first: whether the runs were long enough
for tuning to gain at all (FT is the same model in every arm of a seed; it is taken from the first arm that trained
it).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from ...evaluation.five import gap
from ...evaluation.outcomes import OutcomesError, concat, first_examples, metric_value, read_outcomes
from ...evaluation.paired import compare, recovered_interval
from ..log import curve_of
from .runs import UNPARTITIONED, StudyRun

PAIRS = (("federated", "zero-shot"), ("federated", "local-only"), ("federated", "centralized"),
         ("federated-median", "federated"), ("lossless", "federated"))
KEPT = ("federated",)  # arms (and their variants) whose share of centralized's gain is reported


def pairs(arms: list[str], bases: dict[str, str], references: dict[str, str] | None = None
          ) -> list[tuple[str, str]]:
    """The comparisons of a section with these arms: :data:`PAIRS` of the registered arms, each variant (``bases``:
    variant -> its registered arm) in its arm's place, then each variant against its arm. A variant with a
    reference (``references``: variant -> a centralized variant) is compared with it in place of ``centralized``."""
    out, references = [], references or {}
    for a in arms:
        base = bases.get(a, a)
        wanted = [(a, references.get(a, b) if b == "centralized" else b) for x, b in PAIRS if x == base]
        out += [(a, b) for a, b in wanted if b == "zero-shot" or b in arms]
        out += [(a, base)] if base != a and base in arms else []
    return out


def load(run: StudyRun, out: Path) -> dict | None:
    """A finished run's numbers, budget, per-round plug-in and outcomes; None when it has not finished."""
    folder = run.folder(out)
    if not (folder / "results.json").exists():
        return None
    results = json.loads((folder / "results.json").read_text())
    rows = [json.loads(x) for x in (folder / "rounds.jsonl").read_text().splitlines() if x.strip()]
    try:
        outcomes = read_outcomes(folder / "outcomes.json")
    except OutcomesError:
        outcomes = {}
    comm = results.get("communication", {})
    curve = results.get("per_round", {}).get("0", {}).get("curve")  # with eval-curve-limit: zero-shot on its examples
    if curve and "full_finetuned" in outcomes:
        curve = {**curve, **first_examples({"full_finetuned": outcomes["full_finetuned"]}, curve["examples"],
                                           results["metric"])}
    return {"key": run.key, "task": run.task, "partitioning": run.partitioning, "arm": run.arm, "seed": run.seed,
            "owner": run.owner, "dir": str(folder.relative_to(out)), "numbers": results["numbers"],
            "metric": results["metric"], "higher_is_better": results["higher_is_better"],
            "gap": gap(results["numbers"], results["higher_is_better"]),
            "budget": {"optimizer_steps": results.get("client_steps", 0),
                       "tokens": sum(r.get("client_tokens", 0) for r in rows),
                       "adapter_bytes": comm.get("adapter_bytes_down", 0) + comm.get("adapter_bytes_up", 0)},
            "per_round": {int(r): e["plugin"] for r, e in curve_of(list(results.get("per_round", {}).items()))
                          if "plugin" in e},
            "train_loss": {int(r["round"]): r["train_loss"] for r in rows if r.get("train_loss") is not None},
            **({"curve": curve} if curve else {}), "wall_seconds": results.get("wall_seconds"), "outcomes": outcomes}


def mean_std(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}  # one seed has no spread to report


def _seed_values(runs: list[dict], key) -> dict[int, float]:
    """Per seed, the value (the mean over owners where a seed has several runs)."""
    by_seed: dict[int, list[float]] = {}
    for r in runs:
        v = key(r)
        if v is not None:
            by_seed.setdefault(r["seed"], []).append(v)
    return {s: statistics.fmean(v) for s, v in by_seed.items()}


def arm_row(runs: list[dict]) -> dict:
    row = {name: mean_std(list(_seed_values(runs, lambda r, k=key: r["numbers"].get(k)).values()))
           for name, key in (("plugin", "plugin"), ("emulator_finetuned", "emulator_finetuned"))}
    row["gap"] = mean_std(list(_seed_values(runs, lambda r: r["gap"]).values()))
    row["budget"] = {k: statistics.fmean(r["budget"][k] for r in runs) for k in runs[0]["budget"]}
    row["runs"] = len(runs)
    if any(r["owner"] is not None for r in runs):
        plugins = [r["numbers"]["plugin"] for r in runs]
        hib = runs[0]["higher_is_better"]
        row["worst"], row["best"] = (min(plugins), max(plugins)) if hib else (max(plugins), min(plugins))
        row["owners"] = sorted({(r["seed"], r["owner"]) for r in runs})
    for name in ("per_round", "train_loss"):  # the plug-in of the evaluated rounds; the training loss of every round
        rounds = sorted({k for r in runs for k in r.get(name, {})})
        row[name] = {k: mean_std(list(_seed_values(runs, lambda r, k=k, n=name: r.get(n, {}).get(k)).values()))
                     for k in rounds}
    return row


def _outcomes(runs: list[dict], seed: int | None, name: str = "plugin") -> list[dict]:
    """The named outcomes of the runs of one seed (None: every seed), owners apart."""
    return [r["outcomes"][name] for r in runs if (seed is None or r["seed"] == seed) and name in r["outcomes"]]


def _pooled(runs: list[dict], seeds: list[int], name: str = "plugin") -> list[dict]:
    """Per owner slot, its outcomes of every seed concatenated (one slot unless the arm has several owners)."""
    per_seed = [_outcomes(runs, s, name) for s in seeds]
    slots = min(len(p) for p in per_seed)
    return [concat([p[i] for p in per_seed]) for i in range(slots)] if slots else []


def comparison(a_runs: list[dict], b_runs: list[dict] | None, names: tuple[str, str], seeds: list[int],
               metric: str, hib: bool, resamples: int, b_name: str = "plugin", a_name: str = "plugin") -> dict | None:
    """``a``'s plug-in (or ``a_name``) against ``b``'s (or the zero-shot) per seed and pooled; None without outcomes
    on both."""
    out = {"a": names[0], "b": names[1], "per_seed": {}}
    for s in seeds:
        a, b = _outcomes(a_runs, s, a_name), _outcomes(b_runs, s, b_name)
        if a and b:
            out["per_seed"][str(s)] = compare(a[0], b if len(b) > 1 else b[0], metric, hib, names, resamples, s)
    done = [s for s in seeds if str(s) in out["per_seed"]]
    a, b = _pooled(a_runs, done, a_name), _pooled(b_runs, done, b_name)
    if not done or not a or not b:
        return None
    out["pooled"] = {**compare(a[0], b if len(b) > 1 else b[0], metric, hib, names, resamples), "seeds": done}
    return out


def summarise(loaded: list[dict], seeds: list[int], resamples: int, bases: dict[str, str] | None = None,
              references: dict[str, str] | None = None) -> dict:
    """Per task and partitioning (``sections``): the zero-shot numbers, each arm's row, the paired comparisons
    (:func:`pairs`; ``bases``: each variant's registered arm) and the share of centralized's gain each federated arm
    keeps (of its reference's: ``references``, variant -> the centralized variant it is compared with); per task with
    several partitionings (``partitioning_cost``): each federated arm's plug-in under the first against each other
    (same test examples, so paired)."""
    bases, references = bases or {}, references or {}
    out: dict = {"sections": {}, "partitioning_cost": []}
    for task in dict.fromkeys(r["task"] for r in loaded):
        task_runs = [r for r in loaded if r["task"] == task]
        metric, hib = task_runs[0]["metric"], task_runs[0]["higher_is_better"]
        parts = [p for p in dict.fromkeys(r["partitioning"] for r in task_runs) if p != UNPARTITIONED]
        for part in parts or [UNPARTITIONED]:
            runs = [r for r in task_runs if r["partitioning"] in (part, UNPARTITIONED)]
            arms = {a: [r for r in runs if r["arm"] == a] for a in dict.fromkeys(r["arm"] for r in runs)}
            first = runs[0]["numbers"]
            ft = [r for r in runs if r["numbers"].get("full_finetuned") is not None]
            section = {"task": task, "partitioning": part, "metric": metric, "higher_is_better": hib,
                       "zero_shot": first["zero_shot"], "emulator_zero_shot": first["emulator_zero_shot"],
                       "full_finetuned": mean_std(list(_seed_values(ft, lambda r: r["numbers"]["full_finetuned"])
                                                       .values())),
                       "arms": {a: arm_row(rs) for a, rs in arms.items()}, "comparisons": []}
            if curve := curve_reference(runs):
                section["curve"] = curve
            ft_arm = next((rs for rs in arms.values() if all(r["owner"] is None for r in rs)
                           and any("full_finetuned" in r["outcomes"] for r in rs)), None)
            if ft_arm:  # were the runs long enough for tuning to gain? FT and zero-shot of the same seeds
                c = comparison(ft_arm, ft_arm, ("FT", "zero-shot"), seeds, metric, hib, resamples, "zero_shot",
                               "full_finetuned")
                section["comparisons"] += [c] if c else []
            for a, b in pairs(list(arms), bases, references):
                b_runs, b_name = (arms[a], "zero_shot") if b == "zero-shot" else (arms[b], "plugin")
                c = comparison(arms[a], b_runs, (a, b), seeds, metric, hib, resamples, b_name)
                if c:
                    section["comparisons"].append(c)
            central = {a: references.get(a, "centralized") for a in arms if bases.get(a, a) in KEPT}
            kept = {a: kept_share(arms[a], arms[c], seeds, metric) for a, c in central.items() if c in arms}
            section["kept_of_centralized"] = {a: {**k, "of": central[a]} for a, k in kept.items() if k}
            out["sections"][f"{task}/{part}"] = section
        for arm in dict.fromkeys(r["arm"] for r in task_runs if bases.get(r["arm"], r["arm"]) in KEPT):
            fed = {p: [r for r in task_runs if r["arm"] == arm and r["partitioning"] == p] for p in parts}
            for other in [p for p in parts[1:] if fed[p] and fed[parts[0]]]:  # the cost of the other partitionings
                c = comparison(fed[parts[0]], fed[other], (f"{arm} {parts[0]}", f"{arm} {other}"), seeds,
                               metric, hib, resamples)
                if c:
                    out["partitioning_cost"].append({"task": task, **c})
    return out


def curve_reference(runs: list[dict]) -> dict | None:
    """With eval-curve-limit, what the per-round curves are on: the number of first examples, zero-shot on them and
    FT on them (mean ± std over seeds); None when the runs score every round on the whole split."""
    curves = [r for r in runs if r.get("curve")]
    if not curves:
        return None
    ft = _seed_values(curves, lambda r: r["curve"].get("full_finetuned"))
    return {"examples": curves[0]["curve"]["examples"], "zero_shot": curves[0]["curve"]["zero_shot"],
            "full_finetuned": mean_std(list(ft.values()))}


def kept_share(fed: list[dict], central: list[dict], seeds: list[int], metric: str) -> dict | None:
    """The share of centralized offsite-tuning's gain over zero-shot that federation keeps, pooled over seeds,
    with its 95% paired-bootstrap interval: (federated - ZS) / (centralized - ZS)."""
    seeds = [s for s in seeds if _outcomes(fed, s) and _outcomes(central, s)]
    zs, f, c = _pooled(fed, seeds, "zero_shot"), _pooled(fed, seeds), _pooled(central, seeds)
    if not (seeds and zs and f and c):
        return None
    z, fv, cv = (float(metric_value(o[0], metric)) for o in (zs, f, c))
    if abs(cv - z) < 1e-12:
        return {"share": None, "ci95": None}
    return {"share": (fv - z) / (cv - z), "ci95": recovered_interval(zs[0], f[0], c[0], metric), "seeds": seeds}
