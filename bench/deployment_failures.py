"""A real deployment (SuperLink + 3 SuperNodes, TLS, SuperNode keys) with a SuperNode or the SuperLink crashing.

``supernode``: SuperNode 1 is SIGKILLed (with its ClientApp process) while the emulator is being delivered to it,
once part of the artifact is in its store, and started again 5 s later with the same key (so the same node id)
and cache dir. The start-up delivery records it failed; before round 1 the owner delivers again and the node's
``status`` reply says what it holds, so only the rest is sent; the run must complete with every data owner trained.

``superlink``: after round 1 the SuperLink process is SIGKILLed and started again with the same ``--database``
file, port and certificates. What happens to the run in flight is recorded as Flower 1.41 does it; when the run
does not finish, the same ``flwr run`` is started again with ``resume = true`` against the restarted SuperLink (the
SuperNodes reconnect by themselves), and it must complete from the last checkpointed round.

    .venv/bin/python bench/deployment_failures.py supernode|superlink [--out runs/deployment_failures]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from pathlib import Path

from fedot.run.deploy import Deployment
from fedot.run.launch import prepare
from fedot.run.log import read_rows

RUN_CONFIG = {"num-clients": 3, "num-rounds": 3, "steps": 2, "batch-size": 1, "max-length": 32, "eval-limit": 1,
              "full-ft": False, "emulator-blocks": 4, "emulator-chunk-mb": 8.0, "round-timeout-s": 120.0,
              "wait-for-clients-s": 120.0}


def _held(node_dir: Path) -> int:
    incoming = node_dir / "cache" / "incoming"
    return sum(f.stat().st_size for f in incoming.rglob("*") if f.is_file()) if incoming.exists() else 0


def _start_run(deployment: Deployment, overrides: dict, run_dir: Path, overwrite: bool) -> tuple[threading.Thread,
                                                                                                 dict]:
    sim, _, cfg, run_dir = prepare("sims/quickstart", {**overrides, "run-dir": str(run_dir)}, overwrite=overwrite)
    result: dict = {}

    def run() -> None:
        try:
            result.update(zip(("run_id", "status"), deployment.run(sim, cfg, run_dir)))
        except Exception as e:  # what fedot tells the user when the run cannot finish
            result["error"] = f"{type(e).__name__}: {e}"

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def flower_state(database: Path) -> dict:
    """What the SuperLink's ``--database`` holds after the restart: runs, their ServerApp tasks, nodes, messages."""
    import sqlite3

    with sqlite3.connect(database) as db:
        def rows(table: str, keys: tuple[str, ...]) -> list[dict]:
            cols = [r[1] for r in db.execute(f"pragma table_info({table})")]
            return [{k: v for k, v in zip(cols, r) if k in keys} for r in db.execute(f"select * from {table}")]

        return {"runs": [r["run_id"] for r in rows("run", ("run_id",))],
                "tasks": rows("task", ("run_id", "type", "running_at", "finished_at", "sub_status", "details")),
                "nodes": rows("node", ("node_id", "status")),
                "messages_held": {t: db.execute(f"select count(*) from {t}").fetchone()[0]
                                  for t in ("message_ins", "message_res")}}


def _wait(condition, thread: threading.Thread, timeout: float = 900) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if not thread.is_alive() or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def summary(run_dir: Path) -> dict:
    rows = read_rows(run_dir)
    deliveries = [json.loads(line) for line in (run_dir / "delivery.jsonl").read_text().splitlines()] \
        if (run_dir / "delivery.jsonl").exists() else []
    results = run_dir / "results.json"
    return {"rounds": [{"round": r["round"], "accepted": len(r.get("accepted") or []),
                        "rejected": [x["reason"][:200] for x in r.get("rejected", [])],
                        **({"emulator_catch_up": r["emulator_catch_up"]} if "emulator_catch_up" in r else {})}
                       for r in rows[1:]],
            "deliveries": [{k: d.get(k) for k in ("retry", "bytes_sent", "artifact_bytes", "failed", "seconds")}
                           | {"nodes": {n: {k: v for k, v in rec.items() if k != "error"} for n, rec in
                                        d.get("nodes", {}).items()}} for d in deliveries if "mode" in d],
            "plugin": json.loads(results.read_text())["numbers"]["plugin"] if results.exists() else None}


def supernode(out: Path) -> dict:
    run_dir, record = out / "run", {"scenario": "supernode"}
    with Deployment(out / "deployment", 3, tls=True, auth=True) as deployment:
        thread, result = _start_run(deployment, RUN_CONFIG, run_dir, overwrite=True)
        node = deployment.node_dir(1)
        if _wait(lambda: _held(node) > 0, thread):
            record["held_when_killed"] = _held(node)
            deployment.kill("supernode-1", group=True)
            time.sleep(5)
            record["held_after_restart"] = _held(node)
            deployment.restart("supernode-1")
        thread.join()
    return {**record, **result, **summary(run_dir)}


def superlink(out: Path) -> dict:
    run_dir, record = out / "run", {"scenario": "superlink"}
    with Deployment(out / "deployment", 3, tls=True, auth=True) as deployment:
        thread, result = _start_run(deployment, RUN_CONFIG, run_dir, overwrite=True)
        if _wait(lambda: len(read_rows(run_dir)) >= 2, thread):
            record["killed_after_round"] = read_rows(run_dir)[-1]["round"]
            deployment.kill("superlink")
            time.sleep(3)
            deployment.restart("superlink")
        thread.join(timeout=1200)
        record["first"] = {**result, **summary(run_dir)}
        if result.get("status") != "finished:completed":
            thread, result = _start_run(deployment, {"resume": True}, run_dir, overwrite=False)
            thread.join(timeout=1200)
            record["resumed"] = {**result, **summary(run_dir)}
        record["flower_state"] = flower_state(deployment.root / "superlink.db")
    return record


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", choices=("supernode", "superlink"))
    p.add_argument("--out", default="runs/deployment_failures")
    p.add_argument("--json", default=None, help="default: bench/results/deployment_<scenario>.json")
    args = p.parse_args(argv)
    out = Path(args.out).resolve() / args.scenario
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.monotonic()
    record = {**{"supernode": supernode, "superlink": superlink}[args.scenario](out),
              "seconds": time.monotonic() - t0, "run_config": RUN_CONFIG, "command": "python " + " ".join(sys.argv)}
    path = Path(args.json or f"bench/results/deployment_{args.scenario}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    main()
