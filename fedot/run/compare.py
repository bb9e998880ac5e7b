"""Compare runs (single-client vs federated, or any others): final numbers, plug-in per round, bytes sent."""

from __future__ import annotations

import json
from pathlib import Path

from .results import FIVE, LABELS, _fmt, gap


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


def _emulator(run: dict) -> str:
    """The emulator's method and its size as a share of the full model (when the artifact is still there)."""
    from ..sizes import artifact_sizes

    emulator = run.get("emulator", {})
    method = emulator.get("method", "?")
    if emulator.get("path") and Path(emulator["path"]).is_dir():
        params = artifact_sizes(emulator["path"])["params"]
        return f"{method}, {params['emulator'] / params['full_model']:.0%} of full"
    return method


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
    for r in runs:
        comm = r.get("communication", {})
        down = comm.get("emulator_bytes_down", 0) + comm.get("adapter_bytes_down", 0)
        cells = [_fmt(r["numbers"].get(k), metric) for k in FIVE + ("gap",)]
        lines.append(f"| {r['name']} | {_emulator(r)} | " + " | ".join(cells) +
                     f" | {down:,} | {comm.get('adapter_bytes_up', 0):,} | {r.get('wall_seconds', 0):.0f} |")
    text = "\n".join(lines) + "\n"
    (out / "comparison.md").write_text(text)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in runs:
        pts = [(row["round"], row["evaluation"]["plugin"]) for row in r["rounds"]
               if (row.get("evaluation") or {}).get("plugin") is not None]
        if pts:
            a.plot(*zip(*pts), marker="o", label=r["name"])
        cum, total = [], 0
        for row in r["rounds"]:
            total += row.get("bytes_down", 0) + row.get("bytes_up", 0) + row.get("emulator_bytes_down", 0)
            cum.append((row["round"], total / 2**20))
        if cum:
            b.plot(*zip(*cum), marker="o", label=r["name"])
    a.set_xlabel("round"), a.set_ylabel(f"OT plug-in {metric}"), a.legend()
    for ax in (a, b):
        ax.xaxis.get_major_locator().set_params(integer=True)
    b.set_xlabel("round"), b.set_ylabel("cumulative MiB communicated"), b.legend()
    fig.tight_layout()
    fig.savefig(out / "comparison.png", dpi=120)
    plt.close(fig)
    print(text)
    return text
