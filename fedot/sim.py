"""Run a ``sims/<experiment>`` Flower app and tell whether it really succeeded.

``flwr run`` exits 0 even when the run fails, so this wrapper reads the run id
from its output, asks ``flwr ls --run-id ID --format json`` for the final
status and returns non-zero unless it is ``finished:completed``. It stops the
local SuperLink afterwards if it started it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path


class SimError(RuntimeError):
    pass


def _flwr() -> str:
    exe = Path(sys.executable).with_name("flwr")
    return str(exe) if exe.exists() else "flwr"


def flwr_home() -> Path:
    return Path(os.environ.get("FLWR_HOME", Path.home() / ".flwr")).expanduser()


def superlink_pids(home: Path) -> list[int]:
    """Local SuperLink (and SuperExec) processes serving ``home``."""
    import psutil

    marker = str(home / "local-superlink")
    pids = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if marker in cmd and "flower-superlink" in cmd:
            pids.append(p.info["pid"])
            try:
                pids += [c.pid for c in p.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
    return pids


def stop_superlink(home: Path) -> None:
    import psutil

    procs = []
    for pid in superlink_pids(home):
        try:
            proc = psutil.Process(pid)
            proc.terminate()
            procs.append(proc)
        except psutil.NoSuchProcess:  # children may exit with their parent
            pass
    psutil.wait_procs(procs, timeout=10)


def federation_settings(app: Path, num_clients: int | None) -> dict:
    settings = tomllib.loads((app / "pyproject.toml").read_text()).get("tool", {}).get("fedot", {}).get("federation", {})
    if num_clients is not None:
        settings["num-supernodes"] = num_clients
    return settings


def preflight(app: Path, settings: dict, run_config: list[str]) -> None:
    """Fail before Flower and Ray start: a model that cannot be had, or GPUs the machine lacks."""
    import torch

    from .models import check_available

    app_config = tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    model = app_config.get("model", "")
    for override in run_config:
        m = re.search(r"(?:^|\s)model=(\"[^\"]*\"|\S+)", override)
        model = json.loads(m.group(1)) if m and m.group(1).startswith('"') else (m.group(1) if m else model)
    check_available(model)
    gpus = float(settings.get("client-resources-num-gpus", 0) or 0)
    if gpus > 0 and not torch.cuda.is_available():
        raise SimError(f"{app.name} gives each client {gpus:g} GPU but no CUDA GPU is visible here; "
                       f"run it on a GPU machine (see {app / 'README.md'})")


def run_status(run_id: str, env: dict) -> str:
    out = subprocess.run([_flwr(), "ls", "--run-id", run_id, "--format", "json"], capture_output=True, text=True, env=env)
    try:
        runs = json.loads(out.stdout)["runs"]
        return str(runs[0]["status"])
    except (ValueError, KeyError, IndexError) as e:
        raise SimError(f"could not read the status of run {run_id}: {out.stdout[-500:]} {out.stderr[-500:]}") from e


def run_sim(app: str | Path, run_config: list[str] | None = None, num_clients: int | None = None,
            run_dir: str | Path | None = None, keep_superlink: bool = False) -> Path:
    """Run the app; return its run directory. Raises :class:`SimError` unless the run completed."""
    app = Path(app).resolve()
    if not (app / "pyproject.toml").exists():
        raise SimError(f"{app} is not a Flower app folder (no pyproject.toml); pass one of the folders in sims/")
    run_dir = Path(run_dir or Path("runs") / f"{app.name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    command = ("fedot sim " + " ".join(shlex.quote(a) for a in sys.argv[2:])).replace("\"", "'") if sys.argv[1:2] == ["sim"] else ""
    overrides = [f"run-dir={json.dumps(str(run_dir))}", f"command={json.dumps(command)}"]
    if os.environ.get("FEDOT_DATA_DIR"):
        overrides.append(f"data-dir={json.dumps(str(Path(os.environ['FEDOT_DATA_DIR']).expanduser().resolve()))}")
    overrides += run_config or []
    settings = federation_settings(app, num_clients)
    preflight(app, settings, run_config or [])
    # flwr launches flower-superlink/-superexec by name: they sit beside this interpreter even in an unactivated venv
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    home = flwr_home()
    started_here = not superlink_pids(home)
    federation = " ".join(f"{k}={json.dumps(v)}" for k, v in settings.items())
    cmd = [_flwr(), "run", str(app), "--stream", "--federation-config", federation]
    for o in overrides:
        cmd += ["--run-config", o]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    run_id = None
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            m = re.search(r"started run (\d+)", line)
            run_id = run_id or (m.group(1) if m else None)
        proc.wait()
        if run_id is None:
            raise SimError(f"flwr run did not start a run (exit code {proc.returncode}); see the output above")
        status = run_status(run_id, env)
    finally:
        if started_here and not keep_superlink:
            stop_superlink(home)
    if status != "finished:completed":
        raise SimError(f"run {run_id} ended with status {status!r}; see the log above and {run_dir}")
    print(f"run {run_id} {status}; outputs in {run_dir}")
    return run_dir
