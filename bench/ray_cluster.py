"""`fedot sim` on a Ray cluster of two raylets (two machines' stand-in), and the second raylet killed mid-run.

A Ray head (``ray start --head``, 1 CPU, custom resource ``site_a``) and a second raylet joining it (``ray start
--address``, 1 CPU, ``site_b``) run on this machine under one temp dir of their own; ``fedot sim`` joins the cluster
through ``RAY_ADDRESS`` (Flower's Ray backend calls ``ray.init()``, which attaches to it), so Flower's actor pool
gets one data-owner worker on each raylet. Every process title ``ray::ClientAppActor.run`` (a worker running a
ClientApp) is sampled with its parent, the raylet it belongs to, and that raylet's Ray node id. After round
``--kill-after`` the second raylet is SIGKILLed (its worker dies with it). The run must then complete on the head
alone, the data owners whose Messages were on the dead raylet rejected or timed out (``round-timeout-s``) with the
reason, or fail saying why, and ``fedot sim --resume`` finishes it. Only this cluster's processes are stopped (found
by its temp dir), never another Ray on the machine.

    .venv/bin/python bench/ray_cluster.py [--out runs/ray_cluster]      # writes bench/results/ray_cluster.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fedot.run.deploy import free_port
from fedot.run.log import read_rows

RUN_CONFIG = ("steps=3 batch-size=1 max-length=32 eval-limit=1 full-ft=false emulator-blocks=4 round-timeout-s=90 "
              "num-rounds={rounds}")
CLIENTS = 4


def _ray(*args: str, env: dict) -> str:
    exe = str(Path(sys.executable).with_name("ray"))
    proc = subprocess.run([exe, *args, "--disable-usage-stats"], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"ray {' '.join(args)} failed: {(proc.stdout + proc.stderr)[-1500:]}")
    return proc.stdout + proc.stderr


def raylets(temp_dir: str) -> dict[str, int]:
    """This cluster's raylets: Ray node id -> raylet pid."""
    import psutil

    out = {}
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "raylet/raylet" in cmd and temp_dir in cmd:
            out[re.search(r"--node_id=([0-9a-f]+)", cmd).group(1)] = p.info["pid"]
    return out


def start_cluster(temp_dir: str, env: dict) -> tuple[str, dict[str, str]]:
    """Head + second raylet; (address, {'site_a': head node id, 'site_b': second node id})."""
    port = free_port()
    _ray("start", "--head", f"--port={port}", "--num-cpus=1", f"--temp-dir={temp_dir}", "--include-dashboard=false",
         '--resources={"site_a": 1}', env=env)
    head = set(raylets(temp_dir))
    _ray("start", f"--address=127.0.0.1:{port}", "--num-cpus=1", '--resources={"site_b": 1}', env=env)
    second = set(raylets(temp_dir)) - head
    return f"127.0.0.1:{port}", {"site_a": head.pop(), "site_b": second.pop()}


def stop_cluster(temp_dir: str) -> None:
    import psutil

    procs = [p for p in psutil.process_iter(["cmdline", "environ"]) if p.pid != os.getpid()
             and (temp_dir in " ".join(p.info["cmdline"] or []) or temp_dir in str(p.info["environ"] or {}))]
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def running_workers(temp_dir: str, home: Path) -> dict[int, str]:
    """Workers of this run now running a ClientApp: pid -> Ray node id of the raylet that started it."""
    import psutil

    by_pid = {pid: node for node, pid in raylets(temp_dir).items()}
    out = {}
    for p in psutil.process_iter(["pid", "cmdline", "ppid"]):
        if "ray::ClientAppActor.run" in " ".join(p.info["cmdline"] or []) and p.info["ppid"] in by_pid:
            out[p.info["pid"]] = by_pid[p.info["ppid"]]
    return out


def experiment(out: Path, kill_after: int, num_rounds: int = 4, kill_worker_after: int = -1) -> dict:
    """``kill_worker_after`` >= 0: first SIGKILL one worker of the head's raylet while it runs a ClientApp in the
    round after that one (a worker lost while its raylet lives: it is replaced), then the second raylet after
    ``kill_after``."""
    out.mkdir(parents=True, exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix="fedot-raycluster-")  # short: Ray's unix sockets live under it
    home, run_dir = out / "flwr-home", out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # its rounds.jsonl decides when to kill: never a previous run's
    env = {**os.environ, "FLWR_HOME": str(home), "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(free_port()),
           "FLWR_LOCAL_CONTROL_API_PORT": str(free_port())}  # beside any other local SuperLink
    run_config = RUN_CONFIG.format(rounds=num_rounds)
    record: dict = {"run_config": run_config, "clients": CLIENTS, "kill_after_round": kill_after,
                    "kill_worker_after_round": kill_worker_after}
    try:
        address, nodes = start_cluster(temp_dir, env)
        record.update(address=address, nodes=nodes)
        env["RAY_ADDRESS"] = address
        cmd = [sys.executable, "-m", "fedot.cli", "sim", "sims/quickstart", "--num-clients", str(CLIENTS),
               "--run-dir", str(run_dir), "--overwrite", "--run-config", run_config]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        seen: dict[str, set[int]] = {}  # Ray node id -> worker pids seen running a ClientApp
        killed_at = worker_killed = None
        while proc.poll() is None:
            workers = running_workers(temp_dir, home)
            for pid, node in workers.items():
                seen.setdefault(node, set()).add(pid)
            done = max([r["round"] for r in read_rows(run_dir)], default=-1)
            if kill_worker_after >= 0 and worker_killed is None and done >= kill_worker_after:
                on_head = [pid for pid, node in workers.items() if node == nodes["site_a"]]
                if on_head:
                    os.kill(on_head[0], signal.SIGKILL)
                    worker_killed = {"pid": on_head[0], "after_round": done, "at_s": time.monotonic() - t0}
            if killed_at is None and done >= kill_after and (kill_worker_after < 0 or worker_killed):
                os.kill(raylets(temp_dir)[nodes["site_b"]], signal.SIGKILL)
                killed_at = time.monotonic() - t0
            time.sleep(0.2)
        output = proc.stdout.read()
        log = (run_dir / "flower.log").read_text() if (run_dir / "flower.log").exists() else ""
        record.update(worker_killed=worker_killed, workers_replaced=log.count("a new worker takes its place"),
                      workers_lost=log.count("no node has room for a new one"))
        record.update(exit=proc.returncode, seconds=time.monotonic() - t0, killed_at_s=killed_at,
                      workers_seen={node: sorted(pids) for node, pids in seen.items()},
                      status=(re.findall(r"finished:\w+", output) or ["?"])[-1], tail=output[-1500:])
        record["rounds"] = [{"round": r["round"], "accepted": len(r.get("accepted") or []),
                             "rejected": [x["reason"][:160] for x in r.get("rejected", [])]}
                            for r in read_rows(run_dir)[1:]]
        if proc.returncode and (run_dir / "checkpoint").exists():  # failed with a reason: resume on the head alone
            resumed = subprocess.run([sys.executable, "-m", "fedot.cli", "sim", "sims/quickstart", "--resume",
                                      "--run-dir", str(run_dir)], env=env, capture_output=True, text=True)
            record["resume"] = {"exit": resumed.returncode, "tail": (resumed.stdout + resumed.stderr)[-1500:],
                                "rounds": [r["round"] for r in read_rows(run_dir)]}
        results = run_dir / "results.json"
        record["plugin"] = json.loads(results.read_text())["numbers"]["plugin"] if results.exists() else None
    finally:
        subprocess.run([sys.executable, "-m", "fedot.cli", "stop"], env=env, capture_output=True)
        stop_cluster(temp_dir)
    return record


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/ray_cluster")
    p.add_argument("--kill-after", type=int, default=1, help="round after which the second raylet is killed")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--kill-worker-after", type=int, default=-1,
                   help=">= 0: also kill one head worker mid-round after this round, before the raylet")
    p.add_argument("--json", default="bench/results/ray_cluster.json")
    args = p.parse_args(argv)
    record = experiment(Path(args.out).resolve(), args.kill_after, args.rounds, args.kill_worker_after)
    record["command"] = "python " + " ".join(sys.argv)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "tail"}, indent=2))


if __name__ == "__main__":
    main()
