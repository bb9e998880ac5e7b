"""Run a ``sims/<experiment>`` Flower app and tell whether it really succeeded.

Before Flower and Ray start, the sim's whole run config (its declared settings plus ``--run-config`` overrides,
parsed by Flower's own parser) is checked with the same messages the run would give, the model must be obtainable,
requested GPUs present and the memory plan must fit (``fedot.run.plan``; ``--plan`` prints it and stops). The sim's
``num-clients`` becomes the federation's ``num-supernodes``. ``flwr run`` exits 0 even when the run fails, so this
reads the run id from its output, asks ``flwr ls --run-id ID --format json`` for the final status and fails unless
it is ``finished:completed``. It stops the local SuperLink afterwards if it started it, unless kept alive
(``fedot.run.services``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..settings import migrate, settings_text, to_flat
from .config import FederatedConfig
from .plan import plan_text, sim_plan
from .progress import MARK
from .services import KEEP_ALIVE_ENV, flwr_home, start_ray_head, stop_superlink, superlink_pids
from .sim_folder import Sim


class SimError(RuntimeError):
    pass


def flwr_cli() -> str:
    exe = Path(sys.executable).with_name("flwr")
    return str(exe) if exe.exists() else "flwr"


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

    from ..architectures import num_blocks
    from ..emulator.tiers import tier_specs
    from ..models import check_available, config_of

    cfg = sim.config(overrides)
    check_available(cfg.emulator.model)
    config = config_of(cfg.emulator.model)
    for spec in tier_specs(cfg.emulator, cfg.tiers.levels):  # every tier: a valid split, and not the full model
        spec.split(num_blocks(config))
        cfg.refuse_lossless(spec.lossless(config))
    check_data(cfg.data_owner.task, cfg.data_owner.data_dir or None, cfg.evaluation.split)
    gpus = float(sim.resources().get("client-resources-num-gpus", 0) or 0)
    if gpus > 0 and not torch.cuda.is_available():
        raise SimError(f"{sim.name} gives each client {gpus:g} GPU but no CUDA GPU is visible here; "
                       f"run it on a GPU machine (see {sim.path / 'README.md'}); `fedot sim {sim.path} --plan` "
                       "shows the memory it needs")
    plans, lines, problems = sim_plan(sim, cfg)
    if problems:
        raise SimError(plan_text(sim, cfg, plans, lines, problems))
    return cfg


def show_plan(app: str | Path, overrides: dict | None = None, gpus: int | None = None,
              gpu_gib: float | None = None, resources: dict | None = None) -> bool:
    """Print the sim's memory plan (no weights, no GPU, no network needed); True when it fits this machine, or the
    machine of ``gpus`` GPUs of ``gpu_gib`` GiB each."""
    sim = Sim(app, resources)
    cfg = sim.config(overrides or {})
    plans, lines, problems = sim_plan(sim, cfg, gpus, gpu_gib)
    print(plan_text(sim, cfg, plans, lines, problems, checked_gpu=True if gpu_gib else None))
    return not problems


def resumed_config(run_dir: Path) -> dict:
    """The settings a run was started with (``run_config.json``, written by its ServerApp)."""
    saved = Path(run_dir) / "run_config.json"
    if not saved.exists():
        raise SimError(f"cannot resume {run_dir}: it holds no run_config.json (not a fedot run, or it stopped before "
                       "its first round); start a new run instead")
    return migrate(FederatedConfig, {k: v for k, v in json.loads(saved.read_text()).items()
                                     if k not in ("run-dir", "command", "resume")})


def claim_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """A run dir that already holds a run is refused unless resumed or explicitly overwritten."""
    held = [n for n in ("rounds.jsonl", "checkpoint", "results.json") if (run_dir / n).exists()]
    if resume:
        if not (run_dir / "checkpoint").exists() and not (run_dir / "rounds.jsonl").exists():
            raise SimError(f"cannot resume {run_dir}: no round of it was completed; start it again with --overwrite")
    elif held and not overwrite:
        raise SimError(f"run dir {run_dir} already holds a run ({', '.join(held)}); continue it with --resume "
                       f"--run-dir {run_dir}, or replace it with --overwrite")
    elif held:
        shutil.rmtree(run_dir)


def check_data(task_name: str, root, scored: str = "test") -> None:
    """The data owners' train split and the split the owner scores must be readable before anything starts."""
    from ..tasks import get_task

    task = get_task(task_name)
    for split, who in (("train", "the data owners' data"), (scored, "the split the five numbers are scored on")):
        try:
            n = len(task.docs(split, root=root))
        except Exception as e:
            raise SimError(f"task {task_name!r}: its {split} split ({who}) cannot be read: {e}. Point FEDOT_DATA_DIR "
                           "(or the data-dir setting) at a directory holding it, or use a task that is present") from e
        if not n:
            raise SimError(f"task {task_name!r}: its {split} split ({who}) is empty under {root or 'FEDOT_DATA_DIR'}")


def run_status(run_id: str, env: dict, connection: list[str] = ()) -> str:
    out = subprocess.run([flwr_cli(), "ls", *connection, "--run-id", run_id, "--format", "json"], capture_output=True,
                         text=True, env=env)
    try:
        return str(json.loads(out.stdout)["runs"][0]["status"])
    except (ValueError, KeyError, IndexError) as e:
        raise SimError(f"could not read the status of run {run_id}: {out.stdout[-500:]} {out.stderr[-500:]}") from e


def prepare(app: str | Path, overrides: dict | None = None, overwrite: bool = False, print_config: bool = False,
            resources: dict | None = None) -> tuple[Sim, dict, FederatedConfig, Path]:
    """The sim, its run-config overrides (flat settings: ``--run-config`` and the setting flags, parsed once), the
    checked settings and the claimed run dir, before Flower starts. With ``resume`` the run dir's own settings come
    first (``--run-dir`` names it). ``resources``: simulation resources over the sim's [tool.fedot.federation]."""
    sim = Sim(app, resources)
    overrides = dict(overrides or {})
    resume = bool(overrides.get("resume"))
    if resume:
        if not overrides.get("run-dir"):
            raise SimError("--resume continues a run: name its directory with --run-dir")
        overrides = {**resumed_config(Path(overrides["run-dir"])), **overrides}
    if os.environ.get("FEDOT_DATA_DIR") and "data-dir" not in overrides:
        overrides["data-dir"] = str(Path(os.environ["FEDOT_DATA_DIR"]).expanduser().resolve())
    run_dir = Path(overrides.get("run-dir") or Path("runs") / f"{sim.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = run_dir.expanduser().resolve()
    argv = sys.argv[1:] if sys.argv[1:2] in (["sim"], ["deploy"]) else []
    if argv or not overrides.get("command"):  # a caller (``fedot study``) may say what reproduces the run
        overrides["command"] = "fedot " + " ".join(shlex.quote(a) for a in argv)
    overrides["run-dir"] = str(run_dir)
    cfg = preflight(sim, overrides)
    if not print_config:
        claim_run_dir(run_dir, resume=resume, overwrite=overwrite)
    return sim, overrides, cfg, run_dir


def handoff(cfg: FederatedConfig, run_dir: Path) -> list[str]:
    """The ``flwr run`` arguments that hand Flower the checked settings once: every setting in one TOML file
    (``<run dir>/run_config.toml``), which Flower reads with its own parser."""
    import tomli_w

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "run_config.toml"
    path.write_text(tomli_w.dumps(to_flat(cfg)))
    return ["--run-config", str(path)]


def flwr_env() -> dict:
    # flwr launches flower-superlink/-superexec by name: they sit beside this interpreter even in an unactivated venv
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}


def stream(cmd: list[str], env: dict, run_dir: Path, verbose: bool, connection: list[str] = ()) -> tuple[str, str]:
    """Run ``flwr run``, progress lines to the terminal and everything to ``flower.log``; (run id, final status)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "flower.log"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    run_id = None
    with open(log_path, "a", buffering=1) as flower_log:
        for line in proc.stdout:
            flower_log.write(line)
            if verbose or MARK in line:
                sys.stdout.write(line[line.index(MARK):] if MARK in line and not verbose else line)
                sys.stdout.flush()
            m = re.search(r"started run (\d+)", line)
            if m and run_id is None:
                run_id = m.group(1)
                print(follow_text(run_id, connection, env.get("FLWR_HOME")), flush=True)
    proc.wait()
    if run_id is None:
        raise SimError(f"flwr run did not start a run (exit code {proc.returncode}); see {log_path}")
    try:
        return run_id, run_status(run_id, env, connection)
    except SimError as e:
        if UNREACHABLE not in str(e):
            raise
        raise SimError(lost_text(run_id, run_dir)) from e


UNREACHABLE = "Connection to the SuperLink is unavailable"


def lost_text(run_id: str, run_dir: Path) -> str:
    """What to do when the SuperLink stops answering during a run (bench/deployment_failures.py superlink)."""
    return (f"the SuperLink stopped answering during run {run_id} (it crashed or was restarted); "
            f"{checkpointed(run_dir)}. Flower 1.41 fails the run's ServerApp when its SuperLink goes away, while its "
            "--database keeps the runs, the registered SuperNodes and their keys (the SuperNodes reconnect by "
            "themselves). Once the SuperLink is back, continue with the same command plus --resume --run-dir "
            f"{run_dir} (or `flwr run` with --run-config 'resume=true run-dir=\"{run_dir}\"')")


def follow_text(run_id: str, connection: list[str] | tuple = (), home: str | None = None) -> str:
    """How to follow and stop the run with Flower's own commands (while the SuperLink serves it); a deployment's
    connection and Flower home are named."""
    env = f"FLWR_HOME={home} " if home and connection else ""
    where = "".join(f" {c}" for c in connection)
    return (f"{MARK} Flower run {run_id}: `{env}flwr log {run_id}{where} --stream` follows it, `{env}flwr list{where}` "
            f"lists runs, `{env}flwr stop {run_id}{where}` stops it (resumable from its last round)")


def checkpointed(run_dir: Path) -> str:
    from . import checkpoint

    ck = checkpoint.load(run_dir)
    return f"its checkpoint holds round {ck.round}" if ck else "no round had finished, so nothing is checkpointed"


def stopped_text(run_id: str, run_dir: Path, sim_name: str) -> str:
    return (f"run {run_id} was stopped (flwr stop); {checkpointed(run_dir)}. Continue it with: fedot sim {sim_name} "
            f"--resume --run-dir {run_dir}")


def finish(run_id: str, status: str, run_dir: Path, verbose: bool, sim_name: str = "") -> Path:
    log_path = run_dir / "flower.log"
    if status == "finished:stopped":
        raise SimError(stopped_text(run_id, run_dir, sim_name or "<sim>"))
    if status != "finished:completed":
        if not verbose:
            tail = log_path.read_text().splitlines()[-25:]
            print("\n".join(["", f"last lines of {log_path}:", *tail]), file=sys.stderr)
        raise SimError(f"run {run_id} ended with status {status!r}; the whole log is {log_path}")
    if (run_dir / "results.md").exists():
        print("\n" + (run_dir / "results.md").read_text())
    print(f"run {run_id} {status}; outputs in {run_dir}; Flower and Ray output in {log_path}")
    return run_dir


def run_sim(app: str | Path, overrides: dict | None = None, keep_alive: bool = False, print_config: bool = False,
            overwrite: bool = False, resources: dict | None = None) -> Path:
    """Run the app; return its run directory. Raises :class:`SimError` unless the run completed."""
    sim, overrides, cfg, run_dir = prepare(app, overrides, overwrite, print_config, resources)
    if print_config:
        print(settings_text(cfg))
        return run_dir
    env, home, verbose = flwr_env(), flwr_home(), cfg.data_owner.verbose
    keep_alive = keep_alive or os.environ.get(KEEP_ALIVE_ENV) == "1"
    started_here = not superlink_pids(home)
    if keep_alive:  # before the SuperLink starts: it and its simulations inherit the address
        env["RAY_ADDRESS"] = start_ray_head(home)["address"]
    cmd = [flwr_cli(), "run", str(sim.path), "--stream", "--federation-config",
           " ".join(f"{k}={json.dumps(v)}" for k, v in federation(sim, cfg).items()), *handoff(cfg, run_dir)]
    print(f"{MARK} {sim.name}: {cfg.num_clients} data owners, {cfg.num_rounds} rounds "
          f"(Flower and Ray output: {run_dir / 'flower.log'}{'' if verbose else '; --verbose shows it'})", flush=True)
    try:
        run_id, status = stream(cmd, env, run_dir, verbose)
    finally:
        if started_here and not keep_alive:
            stop_superlink(home)
    return finish(run_id, status, run_dir, verbose, str(app))
