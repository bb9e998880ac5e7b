"""What a federated run leaves behind besides rounds.jsonl: results.{json,md,png}, rounds.png and the adapter."""

from __future__ import annotations

import time
from pathlib import Path

from ..emulator.artifact import split_label
from ..evaluation.five import FIVE
from ..settings import to_flat
from ..tasks import get_task
from . import results
from .log import scored_rows
from .plots import plot_rounds


def numbers_of(rows: list[dict]) -> dict:
    """The five numbers from the rows: zero-shot ones from round 0, tuned ones from the last round evaluated on the
    whole split."""
    numbers: dict = {}
    for row in scored_rows(rows):
        numbers.update({k: v for k, v in row["evaluation"].items() if k in FIVE})
    return numbers


def federated_report(owner, adapter, rows: list[dict], out: Path, wall_seconds: float,
                     outcomes: dict | None = None, diverged: dict | None = None) -> dict:
    """Save the final adapter, run the FT baseline if asked, and write the five numbers with their per-example
    ``outcomes`` (those of the rows, plus FT's) and paired tests. ``diverged``: the round and reason a run stopped
    at (``on-divergence = stop``); the numbers are then those of the last finite adapter."""
    cfg = owner.cfg
    task = get_task(owner.task)
    owner.save_adapter(out / "adapter.safetensors", adapter)
    numbers = numbers_of(rows)
    client_steps = sum(r.get("client_steps", 0) for r in rows)
    baseline_seconds, outcomes = 0.0, dict(outcomes or {})
    if cfg.baseline.enabled:
        t = time.perf_counter()
        ft = owner.full_finetune(cfg.baseline.steps or client_steps)
        numbers["full_finetuned"], outcomes["full_finetuned"] = ft["primary"], ft["outcomes"]
        baseline_seconds = time.perf_counter() - t
    record = {
        "title": f"Federated offsite-tuning, {len({n for r in rows for n in r.get('sampled', [])})} clients",
        "model": cfg.emulator.model, "task": owner.task, "metric": task.primary,
        "higher_is_better": task.higher_is_better, "split_label": split_label(owner.manifest),
        "numbers": numbers, "per_round": {str(r["round"]): r["evaluation"] for r in rows if r.get("evaluation")},
        "communication": {
            "emulator_bytes_down": sum(r.get("emulator_bytes_down", 0) for r in rows),
            "emulator_update_bytes_down": sum(r.get("emulator_update", {}).get("bytes_sent", 0) for r in rows),
            "adapter_bytes_down": sum(r.get("bytes_down", 0) for r in rows),
            "adapter_bytes_up": sum(r.get("bytes_up", 0) for r in rows),
        },
        "client_steps": client_steps, "run_config": to_flat(cfg),
        "emulator": {"path": str(owner.emulator_dir), **owner.manifest},
        "wall_seconds": wall_seconds, "baseline_seconds": baseline_seconds, "command": cfg.command,
        "privacy": next((r["dp"] for r in reversed(rows) if r.get("dp")), None),  # (epsilon, delta) spent in all
        "diverged": diverged, "diverged_rounds": [{"round": r["round"], **r["diverged"]} for r in rows
                                                  if r.get("diverged")],
    }
    if len(owner.tiers) > 1:
        record["tiers"] = tiers_of(owner, rows)
    if owner.aligner:
        record["alignment"] = alignment_of(rows)
    plot_rounds(rows, task.primary, out / "rounds.png")
    results.write(out, record, outcomes, rows)
    return record


def alignment_of(rows: list[dict]) -> list[dict]:
    """Per round with emulator alignment: the owner's seconds, the held-out distance before and after, the changed
    bytes, and what the next round's delivery of that version sent to the data owners."""
    sent = {r["emulator_update"]["artifact_id"]: r["emulator_update"] for r in rows if r.get("emulator_update")}
    return [{"round": r["round"], "owner_seconds": a["owner_seconds"], "align_seconds": a["seconds"],
             "distance_before": a["distance_before"]["objective"], "distance_after": a["distance_after"]["objective"],
             "changed_bytes": a["changed_bytes"], "artifact_bytes": a["artifact_bytes"],
             "bytes_sent": sent.get(a["emulator_id"], {}).get("bytes_sent"),
             "bytes_reused": sent.get(a["emulator_id"], {}).get("bytes_reused")}
            for r in rows if (a := r.get("alignment"))]


def tiers_of(owner, rows: list[dict]) -> list[dict]:
    """Per emulator tier: its size, how many data owners trained on it, and its zero-shot and tuned scores."""
    zero = next((r["evaluation"] for r in rows if r["round"] == 0), {})
    evaluated = [r["evaluation"] for r in rows if (r.get("evaluation") or {}).get("emulator_finetuned_by_tier")]
    last = evaluated[-1] if evaluated else {}
    owners = {}
    for r in rows:
        owners.update(r.get("tiers", {}))
    return [{"blocks": t.blocks, "emulator_id": t.manifest["id"], "artifact_bytes": t.bytes,
             "data_owners": sum(1 for b in owners.values() if b == t.blocks),
             "emulator_zero_shot": zero.get("emulator_zero_shot_by_tier", {}).get(str(t.blocks)),
             "emulator_finetuned": last.get("emulator_finetuned_by_tier", {}).get(str(t.blocks))}
            for t in owner.tiers]
