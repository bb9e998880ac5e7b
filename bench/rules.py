"""Aggregation rules against attackers, compared on identical replies: one run per cell, every rule replayed on it.

For each attack, attacker fraction and seed, one `fedot sim sims/smollm2_10clients` round keeps its replies
(``keep-replies``); every rule below then aggregates those same replies (``strategies.replay``) and its adapter is
plugged into the full model and scored on the same test documents. In round 1 the replies do not depend on the rule,
so the rules differ only in what they make of identical updates (paired: each rule is tested against plain FedAvg
with a paired bootstrap over the documents), and one run per cell replaces one per rule. The run's own rule (the
default bounded FedAvg) must replay to the run's own plug-in number: checked for every cell.

    .venv/bin/python bench/rules.py [--out runs/rules] [--seeds 0 1 2] [--fractions 0.1 0.3]
                                    # bench/results/rules.json; finished cells are read, not rerun
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from attacks import ATTACK_BASE, run  # noqa: E402

OFF = {"max-weight-ratio": 0, "max-norm-ratio": 0}  # fedot's default relative bounds switched off
RULES = {  # as a user sets them (the relative bounds are on by default under every rule), and each rule alone
    "plain FedAvg": {"aggregation": "fedavg", **OFF},
    "FedAvg, default bounds": {"aggregation": "fedavg"},
    "FedAvg, norm ratio 3": {"aggregation": "fedavg", "max-norm-ratio": 3},  # tighter than the default 10
    "FedAvg, norm ratio 2": {"aggregation": "fedavg", "max-norm-ratio": 2},
    "median": {"aggregation": "median"},
    "trimmed-mean": {"aggregation": "trimmed-mean"},
    "krum": {"aggregation": "krum", "krum-malicious": 3},
    "median alone": {"aggregation": "median", **OFF},
    "trimmed-mean alone": {"aggregation": "trimmed-mean", **OFF},
    "krum alone": {"aggregation": "krum", "krum-malicious": 3, **OFF},
}
RUN_RULE = "FedAvg, default bounds"  # what the cell's own run aggregated with
ATTACKS = ("scale", "sign-flip", "examples-inflation")


def cells(fractions, seeds) -> list[tuple[str, str, str]]:
    """Fraction by fraction (the clean run with the first), every seed of a fraction before the next fraction: an
    interrupted grid leaves whole rows."""
    out = []
    for k, f in enumerate(fractions):
        grid = [("none", "0%", "")] * (k == 0) + [(a, f"{round(f * 100)}%", f"fault-byzantine={f} fault-attack='{a}'")
                                                  for a in ATTACKS]
        out += [(attack, frac, extra + f" seed={seed}") for seed in seeds for attack, frac, extra in grid]
    return out


def score_rules(run_dir: Path, owner) -> dict:
    """Every rule's plug-in on this cell's kept replies (cached beside the run as rules.json)."""
    from strategies.replay import replay_round

    cache = run_dir / "rules.json"
    scored = json.loads(cache.read_text()) if cache.exists() else {}
    for name, overrides in RULES.items():
        if name in scored:  # a rule added later is scored alone
            continue
        outcome = replay_round(run_dir, 1, overrides)
        if outcome.arrays is None:
            scored[name] = {"plugin": None, "reason": outcome.row.get("not_aggregated_reason")}
            continue
        result = owner.evaluator.plugin(outcome.arrays.to_torch_state_dict())
        scored[name] = {"plugin": result["primary"], "outcomes": result["outcomes"],
                        "accepted": len(outcome.row["accepted"]), "rejected": len(outcome.row["rejected"])}
        print(f"  {name}: {result['primary']:.4f}", flush=True)
        cache.write_text(json.dumps(scored) + "\n")
    return scored


def paired_against_plain(scored: dict, task: str) -> dict:
    from fedot.evaluation.paired import compare
    from fedot.tasks import get_task

    metric, hib = get_task(task).primary, get_task(task).higher_is_better
    base = scored["plain FedAvg"]
    out = {}
    for name, s in scored.items():
        if name != "plain FedAvg" and s.get("outcomes") and base.get("outcomes"):
            c = compare(s["outcomes"], base["outcomes"], metric, hib, (name, "plain FedAvg"))
            out[name] = {k: c[k] for k in ("difference", "ci95", "p", "a_better", "n")}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/rules")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3])
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    owner, points = None, {}
    for attack, frac, extra in cells(args.fractions, args.seeds):
        seed = extra.rsplit("seed=", 1)[1]
        run_dir = out / f"{attack}-{frac.rstrip('%')}-seed{seed}"
        cell = run("sims/smollm2_10clients", run_dir, f"{ATTACK_BASE} aggregation='fedavg' keep-replies=true {extra}")
        if cell["plugin"] is None:
            points[f"{attack}/{frac}/seed{seed}"] = {"failed": cell.get("failed")}
            continue
        if owner is None:  # one model owner scores every cell: the same model, emulator and test documents
            from fedot.run.config import FederatedConfig
            from fedot.run.model_owner import ModelOwner

            owner = ModelOwner(FederatedConfig.from_run_config(json.loads((run_dir / "run_config.json").read_text())))
        print(f"{attack} {frac} seed {seed}: run plug-in {cell['plugin']:.4f}", flush=True)
        scored = score_rules(run_dir, owner)
        own = scored[RUN_RULE]["plugin"]
        if own is None or abs(own / cell["plugin"] - 1) > 1e-9:
            raise SystemExit(f"{run_dir}: the replay of the run's own rule gave {own}, the run {cell['plugin']}")
        points[f"{attack}/{frac}/seed{seed}"] = {
            "zero_shot": cell["zero_shot"], "run_plugin": cell["plugin"], "command": cell["command"],
            "rules": {k: {x: v for x, v in s.items() if x != "outcomes"} for k, s in scored.items()},
            "paired_vs_plain": paired_against_plain(scored, owner.task)}
        write(points, args, argv, complete=False)  # after every cell: an interrupted grid keeps what it finished
    print("\n" + write(points, args, argv, complete=True))


def write(points: dict, args, argv, complete: bool) -> str:
    record = {"command": "python bench/rules.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "seeds": args.seeds, "fractions": args.fractions, "complete": complete, "cells_done": len(points),
              "points": points, "table": table(points, args)}
    (ROOT / "bench/results/rules.json").write_text(json.dumps(record, indent=2) + "\n")
    return record["table"]


def table(points: dict, args) -> str:
    """Plug-in perplexity per rule, mean ± std over the seeds that finished (their number in the last column)."""
    lines = [f"| attack | malicious | {' | '.join(RULES)} | seeds |", "|---|---|" + "---|" * len(RULES) + "---|"]
    for attack, frac, _ in cells(args.fractions, [args.seeds[0]]):
        row, done = [], [s for s in args.seeds if f"{attack}/{frac}/seed{s}" in points]
        for rule in RULES:
            ok = [v for s in done if (v := points[f"{attack}/{frac}/seed{s}"].get("rules", {}).get(rule, {})
                                      .get("plugin")) is not None]
            row.append("—" if not ok else f"{statistics.mean(ok):,.2f}" + (
                f" ± {statistics.stdev(ok):,.2f}" if len(ok) > 1 else ""))
        lines.append(f"| {attack} | {frac} | {' | '.join(row)} | {len(done)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
