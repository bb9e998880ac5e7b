"""Run a ``sims/<experiment>`` Flower app and tell whether it really succeeded.

Before Flower and Ray start, the sim's whole run config (its declared settings plus ``--run-config`` overrides,
parsed by Flower's own parser) is checked with the same messages the run would give, the model must be obtainable
and requested GPUs present. The sim's ``num-clients`` becomes the federation's ``num-supernodes``. ``flwr run``
exits 0 even when the run fails, so this reads the run id from its output, asks ``flwr ls --run-id ID --format
json`` for the final status and fails unless it is ``finished:completed``. It stops the local SuperLink afterwards
if it started it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ..settings import describe
from .config import FederatedConfig
from .sims import Sim


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


def parse_overrides(run_config: list[str]) -> dict:
    """``--run-config`` strings as Flower parses them (TOML values, flattened keys)."""
    from flwr.common.config import parse_config_args

    try:
        return parse_config_args(run_config) if run_config else {}
    except Exception as e:  # click's exception for bad syntax: say it our way
        raise SimError(f"cannot parse --run-config {run_config!r}: {getattr(e, 'message', e)}") from e


def federation(sim: Sim, cfg: FederatedConfig) -> dict:
    """The ``--federation-config`` of a simulation: one SuperNode per data owner, the sim's resources each."""
    return {**sim.resources(), "num-supernodes": cfg.num_clients}


def preflight(sim: Sim, overrides: dict) -> FederatedConfig:
    """Fail before Flower and Ray start: any bad setting, a model that cannot be had, GPUs the machine lacks."""
    import torch

    from ..models import check_available

    cfg = sim.config(overrides)
    check_available(cfg.emulator.model)
    gpus = float(sim.resources().get("client-resources-num-gpus", 0) or 0)
    if gpus > 0 and not torch.cuda.is_available():
        raise SimError(f"{sim.name} gives each client {gpus:g} GPU but no CUDA GPU is visible here; "
                       f"run it on a GPU machine (see {sim.path / 'README.md'})")
    return cfg


def run_status(run_id: str, env: dict) -> str:
    out = subprocess.run([_flwr(), "ls", "--run-id", run_id, "--format", "json"], capture_output=True, text=True,
                         env=env)
    try:
        return str(json.loads(out.stdout)["runs"][0]["status"])
    except (ValueError, KeyError, IndexError) as e:
        raise SimError(f"could not read the status of run {run_id}: {out.stdout[-500:]} {out.stderr[-500:]}") from e


def run_sim(app: str | Path, run_config: list[str] | None = None, num_clients: int | None = None,
            run_dir: str | Path | None = None, keep_superlink: bool = False, print_config: bool = False) -> Path:
    """Run the app; return its run directory. Raises :class:`SimError` unless the run completed."""
    sim = Sim(app)
    overrides = parse_overrides(run_config or [])
    if num_clients is not None:
        overrides["num-clients"] = num_clients
    if os.environ.get("FEDOT_DATA_DIR") and "data-dir" not in overrides:
        overrides["data-dir"] = str(Path(os.environ["FEDOT_DATA_DIR"]).expanduser().resolve())
    run_dir = Path(run_dir or Path("runs") / f"{sim.name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    argv = sys.argv[2:] if sys.argv[1:2] == ["sim"] else []
    overrides.update({"run-dir": str(run_dir), "command": "fedot sim " + " ".join(shlex.quote(a) for a in argv)})
    cfg = preflight(sim, overrides)
    if print_config:
        print(describe(cfg))
        return run_dir
    # flwr launches flower-superlink/-superexec by name: they sit beside this interpreter even in an unactivated venv
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    home = flwr_home()
    started_here = not superlink_pids(home)
    cmd = [_flwr(), "run", str(sim.path), "--stream", "--federation-config",
           " ".join(f"{k}={json.dumps(v)}" for k, v in federation(sim, cfg).items())]
    for key, value in overrides.items():  # Flower's parser takes "..." without inner double quotes
        value = value.replace('"', "'") if isinstance(value, str) else value
        cmd += ["--run-config", f"{key}={json.dumps(value)}"]
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
