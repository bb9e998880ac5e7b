"""The local processes a simulation uses: Flower's local SuperLink and, when kept alive, a Ray head.

Every ``fedot sim`` pays a fixed start-up (the SuperLink, then Ray inside the simulation) and tear-down. With
``--keep-alive`` (or ``FEDOT_KEEP_ALIVE=1`` exported in the shell session) the SuperLink is left running after the
run, and a Ray head is started once (``ray start --head`` in its own temp dir) whose address the SuperLink and its
simulations inherit (``RAY_ADDRESS``: Flower's Ray backend calls ``ray.init()``, which joins that cluster instead of
starting one). ``fedot stop`` ends both, and only these: processes are found by their home and temp dir.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

KEEP_ALIVE_ENV = "FEDOT_KEEP_ALIVE"


def flwr_home() -> Path:
    return Path(os.environ.get("FLWR_HOME", Path.home() / ".flwr")).expanduser()


def _procs(marker: str, name: str | None = None) -> list:
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if marker in cmd and (name is None or name in cmd):
            out.append(p)
    return out


def superlink_pids(home: Path) -> list[int]:
    """Local SuperLink (and SuperExec) processes serving ``home``."""
    import psutil

    pids = []
    for p in _procs(str(home / "local-superlink"), "flower-superlink"):
        pids.append(p.pid)
        try:
            pids += [c.pid for c in p.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return pids


def _terminate(pids: list[int]) -> None:
    import psutil

    procs = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.terminate()
            procs.append(proc)
        except psutil.NoSuchProcess:  # children may exit with their parent
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        proc.kill()


def stop_superlink(home: Path) -> None:
    _terminate(superlink_pids(home))


def _state(home: Path) -> Path:
    return home / "fedot-ray-head.json"


def ray_head(home: Path) -> dict | None:
    """The kept-alive Ray head of ``home`` when its processes are still running."""
    try:
        state = json.loads(_state(home).read_text())
    except (OSError, ValueError):
        return None
    return state if _procs(state["temp_dir"], "raylet") else None


def start_ray_head(home: Path) -> dict:
    """A Ray head for consecutive runs (reused when alive); returns its address and temp dir."""
    state = ray_head(home)
    if state is not None:
        return state
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp_dir = tempfile.mkdtemp(prefix="fedot-ray-")  # short: Ray's unix sockets live under it
    ray = str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray, "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}", "--include-dashboard=false",
                    "--disable-usage-stats", f"--num-cpus={os.cpu_count()}"], check=True, capture_output=True)
    state = {"address": f"127.0.0.1:{port}", "temp_dir": temp_dir}
    home.mkdir(parents=True, exist_ok=True)
    _state(home).write_text(json.dumps(state))
    return state


def stop_all(home: Path) -> list[str]:
    """Stop the SuperLink and the Ray head kept alive for ``home``; returns what was stopped."""
    stopped = []
    if superlink_pids(home):
        stop_superlink(home)
        stopped.append("SuperLink")
    state = ray_head(home)
    if state is not None:
        _terminate([p.pid for p in _procs(state["temp_dir"])])
        stopped.append(f"Ray head {state['address']}")
    _state(home).unlink(missing_ok=True)
    return stopped
