"""The privacy-utility frontier: the model owner's tool for choosing how much of the model to give away.

Offsite-tuning works only when three conditions hold together (paper §3): plug-in beats zero-shot, the tuned
emulator a data owner keeps is clearly worse than plug-in (the owner's privacy), and plug-in comes close to full
fine-tuning. All three move with the emulator: a bigger, better emulator transfers more of the tuning (utility) and
leaks more of the model (privacy). ``fedot frontier`` runs the single-site pipeline (:mod:`fedot.run.single_site`)
for a grid of emulators — each compression method x each number of kept middle blocks, plus the lossless all-middle
emulator as the ceiling, which also trains the FT baseline once — and reports for each point the five numbers, the
privacy gap (OT emulator vs plug-in) and the share of the zero-shot -> FT gain plug-in recovers
((plug-in - ZS) / (FT - ZS); the paper recovers 88% on its task average with OPT-1.3B). The recommendation is the
smallest emulator whose plug-in beats zero-shot while the tuned emulator stays worse than plug-in by at least
``privacy-margin``; separately, each point is checked against an aim the owner sets (``aim-recovered`` of the
gain with the tuned emulator clearly worse: ``aim-gap-points`` of accuracy or ``aim-gap-ratio`` times the
perplexity), and the smallest emulator meeting it is named. Each point is a run directory: a finished one is reused,
never recomputed, so an interrupted frontier continues where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..emulator.methods import METHODS
from ..evaluation.five import LABELS, better, conditions, fmt, gap, recovered
from ..evaluation.outcomes import OutcomesError, read_outcomes
from ..evaluation.paired import compare, recovered_interval
from ..files import atomic_path, write_json, write_text
from ..settings import from_flat, group, setting, to_flat, validate
from .page import markdown_page
from .plots import style_metric_axis
from .single_site import OffsiteConfig, run


@dataclass
class FrontierConfig:
    offsite: OffsiteConfig = group(OffsiteConfig)
    methods: str = setting("uniform,distill", "emulator methods of the grid (comma-separated; sandwich methods, sized "
                           "by emulator-blocks)")
    blocks: str = setting("6,12,18", "middle blocks the grid's emulators keep (comma-separated)")
    points: str = setting("", "explicit points instead of the methods x blocks grid: 'NAME: key=value ...; NAME: ...', "
                          "each point's settings over the shared ones in the run-config syntax (e.g. 'scaleot-18: "
                          "emulator-method=\"scaleot\" emulator-scaleot-alpha=0.1'); the lossless ceiling is added")
    privacy_margin: float = setting(0.05, "how much worse than plug-in (relative) the tuned emulator must stay for the "
                                    "owner to accept an emulator", ge=0)
    aim_recovered: float = setting(0.5, "the aim a point is checked against: the share of the zero-shot -> FT gain its "
                                   "plug-in recovers (point estimate; its 95% interval is shown beside it)", ge=0)
    aim_gap_points: float = setting(0.05, "the aim, for accuracies: points the tuned emulator must stay below plug-in "
                                    "(the owner's gap)", ge=0)
    aim_gap_ratio: float = setting(2.0, "the aim, for perplexities: how many times plug-in's perplexity the tuned "
                                   "emulator must stay at or above (the owner's gap)", ge=1)

    @property
    def method_list(self) -> list[str]:
        return [m.strip() for m in self.methods.split(",") if m.strip()]

    @property
    def block_list(self) -> list[int]:
        try:
            return sorted({int(b) for b in self.blocks.split(",") if b.strip()})
        except ValueError:
            raise ValueError(f"blocks must be comma-separated integers, e.g. '6,12,18'; got {self.blocks!r}") from None

    def check(self) -> None:
        if self.points:
            self.point_overrides()
            return
        unknown = [m for m in self.method_list if m not in METHODS]
        if unknown or not self.method_list:
            raise ValueError(f"unknown methods {unknown}; choose among {', '.join(sorted(METHODS))}")
        fixed = [m for m in self.method_list if not METHODS[m].sandwich]
        if fixed:
            raise ValueError(f"{', '.join(fixed)} size(s) the emulator by its own settings, not emulator-blocks; "
                             "give it explicit points (--points 'NAME: emulator-method=...')")
        if not self.block_list or min(self.block_list) < 1:
            raise ValueError(f"blocks must be at least 1; got {self.blocks!r}")

    def meets_aim(self, row: dict, higher_is_better: bool) -> bool:
        """Plug-in recovers at least aim-recovered of the gain while the tuned emulator stays clearly worse: by
        aim-gap-points of accuracy, or aim-gap-ratio times the perplexity."""
        n = row["numbers"]
        if row["lossless"] or row["recovered"] is None or row["recovered"] < self.aim_recovered:
            return False
        if higher_is_better:
            return n["plugin"] - n["emulator_finetuned"] >= self.aim_gap_points
        return n["emulator_finetuned"] >= self.aim_gap_ratio * n["plugin"]

    def aim_text(self, higher_is_better: bool) -> str:
        gap = (f"at least {100 * self.aim_gap_points:g} points below plug-in" if higher_is_better
               else f"at least {self.aim_gap_ratio:g}x plug-in's perplexity")
        return (f"plug-in recovers at least {100 * self.aim_recovered:g}% of the zero-shot → FT gain, tuned "
                f"emulator {gap}")

    def point_overrides(self) -> list[tuple[str, dict]]:
        """(name, settings over the shared ones) of every point, then the lossless ceiling (which trains FT)."""
        if self.points:
            from .launch import parse_overrides

            out = []
            for item in (i.strip() for i in self.points.split(";")):
                name, sep, text = item.partition(":")
                if not sep or not name.strip() or name.strip() == LOSSLESS:
                    raise ValueError(f"frontier point {item!r}: write 'NAME: key=value ...' (NAME not "
                                     f"{LOSSLESS!r}, which is added)")
                out.append((name.strip(), parse_overrides([text])))
        else:
            out = [(f"{m}-{b}", {"emulator-method": m, "emulator-blocks": b})
                   for m in self.method_list for b in self.block_list]
        if len({n for n, _ in out}) != len(out):
            raise ValueError(f"frontier points must have distinct names, got {[n for n, _ in out]}")
        return out + [(LOSSLESS, {"emulator-method": "uniform", "emulator-blocks": -1})]

    def point_config(self, name: str, overrides: dict) -> OffsiteConfig:
        """A point's single-site settings; the FT baseline does not depend on the emulator: trained once, at the
        ceiling."""
        flat = {**to_flat(self.offsite), **overrides, "full-ft": name == LOSSLESS}
        return from_flat(OffsiteConfig, flat, where=f"frontier point {name!r}")


LOSSLESS = "lossless"


def run_point(cfg: OffsiteConfig, out: Path, command: str) -> dict:
    """A finished point with the same settings is reused; one with other settings is refused, never overwritten."""
    done = out / "results.json"
    if done.exists():
        record = json.loads(done.read_text())
        if record.get("config") != json.loads(json.dumps(to_flat(cfg))):
            raise ValueError(f"{out} holds a finished point with other settings; use another --out (nothing there "
                             "is overwritten)")
        print(f"reusing {out}")
        return record
    return run(cfg, out, command=command)


def point_outcomes(out: Path) -> dict:
    """A point's per-example outcomes (empty for a point made before fedot stored them)."""
    try:
        return read_outcomes(out / "outcomes.json")
    except OutcomesError:
        return {}


def paired_summary(record: dict, outcomes: dict, ft_outcomes: dict | None) -> dict:
    """Plug-in vs zero-shot (paired test) and the recovered share's 95% interval against the ceiling's FT."""
    out = {}
    if "plugin" in outcomes and "zero_shot" in outcomes:
        metric, hib = record["metric"], record["higher_is_better"]
        out["plugin_vs_zero_shot"] = compare(outcomes["plugin"], outcomes["zero_shot"], metric, hib,
                                             ("plugin", "zero_shot"))
        if ft_outcomes is not None:
            out["recovered_ci95"] = recovered_interval(outcomes["zero_shot"], outcomes["plugin"], ft_outcomes, metric)
    return out


def summarise(name: str, record: dict, ft: float | None, margin: float, outcomes: dict | None = None,
              ft_outcomes: dict | None = None) -> dict:
    numbers, hib = record["numbers"], record["higher_is_better"]
    zs, plug, emu = numbers["zero_shot"], numbers["plugin"], numbers["emulator_finetuned"]
    params = record["emulator"].get("params", {})
    kept = len(record["emulator"].get("emulator_blocks", []))
    row = {"point": name, "method": record["emulator"].get("method"), "kept_blocks": kept,
           "lossless": name == LOSSLESS, "numbers": {**numbers, "full_finetuned": ft},
           "privacy_gap": gap(numbers, hib), "chosen_lr": record["chosen_lr"],
           "recovered": recovered({**numbers, "full_finetuned": ft}, hib),
           "conditions": conditions({**numbers, "full_finetuned": ft}, hib), "distill": params.get("distill_result")}
    row.update(paired_summary(record, outcomes or {}, ft_outcomes))
    row["privacy_ok"] = better(plug, emu, hib) and abs(emu - plug) >= margin * abs(plug)
    row["acceptable"] = not row["lossless"] and better(plug, zs, hib) and row["privacy_ok"]
    return row


def run_frontier(cfg: FrontierConfig, out: str | Path, command: str = "") -> dict:
    validate(cfg, "frontier")
    out = Path(out)
    records = {}
    points = [(name, cfg.point_config(name, o)) for name, o in cfg.point_overrides()]
    for _, point in points:  # every point's settings and split are checked before the first one runs
        point.emulator.preflight()
    ceiling = run_point(points[-1][1], out / LOSSLESS, command)
    ft = ceiling["numbers"].get("full_finetuned")
    for name, point in points[:-1]:
        records[name] = run_point(point, out / name, command)
    records[LOSSLESS] = ceiling
    ft_outcomes = point_outcomes(out / LOSSLESS).get("full_finetuned")
    rows = [summarise(name, r, ft, cfg.privacy_margin, point_outcomes(out / name), ft_outcomes)
            for name, r in records.items()]
    hib = ceiling["higher_is_better"]
    for row in rows:
        row["meets_aim"] = cfg.meets_aim(row, hib)
    acceptable = [r for r in rows if r["acceptable"]]
    pick = min(acceptable, key=lambda r: r["kept_blocks"]) if acceptable else None
    aimed = [r for r in rows if r["meets_aim"]]
    smallest = min(aimed, key=lambda r: r["kept_blocks"])["point"] if aimed else None
    result = {"title": "Privacy-utility frontier", "model": cfg.offsite.emulator.model, "task": cfg.offsite.task,
              "metric": ceiling["metric"], "higher_is_better": hib, "rows": rows,
              "recommended": pick and pick["point"], "privacy_margin": cfg.privacy_margin,
              "aim": cfg.aim_text(hib), "smallest_meeting_aim": smallest, "command": command, "config": to_flat(cfg)}
    write_json(out / "frontier.json", result)
    write_text(out / "frontier.md", markdown(result))
    plot(result, out / "frontier.png")
    markdown_page(out, result["title"], markdown(result), [out / "frontier.png"])
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    metric, arrow = result["metric"], "↑" if result["higher_is_better"] else "↓"
    lines = [f"# {result['title']}: {result['task']} ({metric} {arrow}), {result['model']}", "",
             "| emulator | kept middle blocks | " + " | ".join(LABELS[k] for k in
                                                        ("zero_shot", "emulator_zero_shot", "emulator_finetuned",
                                                         "plugin", "full_finetuned"))
             + " | privacy gap | recovered (95% interval) | plug-in vs ZS: p | plug-in > ZS | emulator < plug-in "
             "| ≈ FT | meets aim |",
             "|" + "---|" * 14]
    for r in result["rows"]:
        n = r["numbers"]
        cells = [fmt(n.get(k), metric) for k in ("zero_shot", "emulator_zero_shot", "emulator_finetuned", "plugin",
                                                  "full_finetuned")]
        rec = "—" if r["recovered"] is None else f"{100 * r['recovered']:.0f}%"
        if r["recovered"] is not None and r.get("recovered_ci95"):
            rec += f" ({100 * r['recovered_ci95'][0]:.0f}% to {100 * r['recovered_ci95'][1]:.0f}%)"
        test = r.get("plugin_vs_zero_shot")
        p = "—" if test is None else f"{test['p']:.3g}"
        marks = ["—" if v is None else ("yes" if v else "no") for v in r["conditions"].values()]
        aim = "—" if "meets_aim" not in r else ("yes" if r["meets_aim"] else "no")
        lines.append(f"| {r['point']} | {r['kept_blocks']} | " + " | ".join(cells)
                     + f" | {fmt(r['privacy_gap'], metric)} | {rec} | {p} | " + " | ".join(marks) + f" | {aim} |")
    pick = result["recommended"]
    lines += ["", "Recommended (smallest emulator whose plug-in beats zero-shot while the tuned emulator stays at "
                  f"least {100 * result['privacy_margin']:.0f}% worse than plug-in): "
                  + (f"**{pick}**" if pick else "**none** — no lossy emulator meets both conditions at this budget")]
    if result.get("aim"):
        smallest = result["smallest_meeting_aim"]
        lines += ["", f"Aim ({result['aim']}): " + (f"**{smallest}** is the smallest emulator meeting it" if smallest
                                                      else "**no** lossy emulator meets it at this budget")]
    if result.get("command"):
        lines += ["", f"Command: `{result['command']}`"]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """Left: plug-in against zero-shot and FT (conditions 1 and 3, ✓/✗ per point for 1, 2, 3). Right: the tuned
    emulator a data owner keeps against plug-in (condition 2, the owner's privacy), on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, hib = result["rows"], result["higher_is_better"]
    ceiling = next(r for r in rows if r["lossless"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax in (a, b):
        ax.axhline(ceiling["numbers"]["zero_shot"], color="k", ls="--", label="zero-shot")
        ax.plot([ceiling["kept_blocks"]], [ceiling["numbers"]["plugin"]], "*", ms=14, color="gray",
                label="lossless emulator (ceiling)")
    if ceiling["numbers"].get("full_finetuned") is not None:
        a.axhline(ceiling["numbers"]["full_finetuned"], color="green", ls=":", label="full fine-tuning")
    for i, method in enumerate(sorted({r["method"] for r in rows if not r["lossless"]})):
        pts = sorted((r for r in rows if r["method"] == method and not r["lossless"]), key=lambda r: r["kept_blocks"])
        x, color = [r["kept_blocks"] for r in pts], f"C{i}"
        a.plot(x, [r["numbers"]["plugin"] for r in pts], "-o", color=color, label=f"{method}: plug-in")
        b.plot(x, [r["numbers"]["emulator_finetuned"] for r in pts], "--s", color=color, mfc="none",
               label=f"{method}: tuned emulator")
        b.plot(x, [r["numbers"]["plugin"] for r in pts], "-o", color=color, label=f"{method}: plug-in")
        for r in pts:
            marks = "".join("✓" if v else "✗" for v in r["conditions"].values() if v is not None)
            a.annotate(marks, (r["kept_blocks"], r["numbers"]["plugin"]), textcoords="offset points",
                       xytext=(0, 8 + 10 * i), ha="center", fontsize=8, color=color)
    arrow = "↑" if hib else "↓"
    a.set(xlabel="middle blocks kept by the emulator", ylabel=f"{result['metric']} ({arrow})",
          title="utility: plug-in vs zero-shot and FT (✓/✗: conditions 1, 2, 3)")
    b.set(xlabel="middle blocks kept by the emulator", ylabel=f"{result['metric']} ({arrow})",
          title="privacy: what a data owner keeps vs plug-in")
    style_metric_axis(b, result["metric"])
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.suptitle(f"{result['task']}, {result['model']}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
