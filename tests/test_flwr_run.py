"""Slow smoke test: the quickstart through real `flwr run` (local SuperLink + Ray) with a tiny budget."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from support.flower import own_flower

pytestmark = pytest.mark.slow
TINY = "num-rounds=1 steps=1 batch-size=1 max-length=32 eval-limit=1 full-ft=false emulator-blocks=4"


def test_quickstart_via_fedot_sim(tmp_path, monkeypatch):
    from fedot.run.services import flwr_home, superlink_pids

    own_flower(tmp_path, monkeypatch)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "fedot.cli", "sim", "sims/quickstart", "--num-clients", "2", "--run-dir", str(out),
           "--run-config", TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "finished:completed" in proc.stdout
    rows = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1] and len(rows[1]["accepted"]) == 2
    assert (out / "results.json").exists()
    assert not superlink_pids(flwr_home())  # the SuperLink it started is stopped


def test_failed_run_exits_nonzero(tmp_path, monkeypatch, tiny_models):
    """A run that fails inside Flower (here: corrupt weights, which pre-flight cannot see) is a failed command."""
    import shutil

    own_flower(tmp_path, monkeypatch)
    model = shutil.copytree(tiny_models["llama"], tmp_path / "model")
    (model / "model.safetensors").write_bytes(b"not a safetensors file")
    cmd = [sys.executable, "-m", "fedot.cli", "sim", "sims/quickstart", "--num-clients", "1", "--run-dir",
           str(tmp_path / "run"), "--run-config",  # a lossy split pre-flight accepts: only the weights are bad
           f"model={json.dumps(str(model))} full-ft=false bottom=1 top=1 emulator-blocks=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "status" in proc.stderr and "finished:completed" not in proc.stderr


def test_bad_setting_stops_before_flower_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    cmd = [sys.executable, "-m", "fedot.cli", "sim", "sims/quickstart", "--run-dir", str(tmp_path / "run"),
           "--run-config", 'task="no_such_task"']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "key 'task' is 'no_such_task'; choose one of pydocs" in proc.stderr
    assert not (tmp_path / "flwr").exists()  # no SuperLink was ever started


def test_plain_flwr_run_trains_the_declared_data_owners(tmp_path, monkeypatch):
    """`flwr run sims/quickstart` as Flower users type it: without the sim's SuperNode count the ServerApp stops at
    once naming the command that works; with it, all 4 declared data owners train."""
    from fedot.run.launch import run_status
    from fedot.run.services import stop_superlink

    home = own_flower(tmp_path, monkeypatch)

    def flwr_run(*extra):
        cmd = [str(Path(sys.executable).with_name("flwr")), "run", "sims/quickstart", "--stream",
               "--run-config", TINY + " wait-for-clients-s=3", *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        run_id = re.search(r"started run (\d+)", proc.stdout + proc.stderr).group(1)
        return run_id, proc.stdout + proc.stderr, run_status(run_id, dict(os.environ))

    try:
        _, output, status = flwr_run()
        assert status != "finished:completed"
        assert "num-clients = 4 data owners but the federation has 2 SuperNodes" in output
        assert 'flwr run sims/quickstart --federation-config "num-supernodes=4"' in output
        run_id, output, status = flwr_run("--federation-config", "num-supernodes=4")
        assert status == "finished:completed", output[-3000:]
    finally:
        stop_superlink(home)
    rows = [json.loads(line) for line in (tmp_path / "runs" / f"quickstart-{run_id}" / "rounds.jsonl").open()]
    assert len(rows[1]["accepted"]) == 4


def _wait_for_round(state: Path, proc, after: int) -> None:
    import time

    deadline = time.monotonic() + 600
    while not (state.exists() and json.loads(state.read_text())["round"] > after):
        assert time.monotonic() < deadline and proc.poll() is None, f"the run never finished round {after + 1}"
        time.sleep(0.2)


def test_flwr_list_log_stop_then_kill_9_of_the_server_app_and_resume_to_the_uninterrupted_end(tmp_path, monkeypatch):
    """`fedot sim` prints the Flower run id and the commands to follow it; Flower's own `flwr list`, `flwr log` and
    `flwr stop` work against the SuperLink serving it; a stopped run says how to resume. The resumed run's owner
    process then dies (SIGKILL: no handler runs); `fedot sim --resume` finishes it, redoing at most the round in
    progress, keeping the rounds done as they were, and ends where the same run without interruptions ends."""
    import signal

    from fedot.run.services import stop_superlink

    home = own_flower(tmp_path, monkeypatch)
    out, state = tmp_path / "run", tmp_path / "run" / "checkpoint" / "state.json"
    flwr = str(Path(sys.executable).with_name("flwr"))
    cmd = [sys.executable, "-m", "fedot.cli", "sim", "sims/quickstart", "--num-clients", "2", "--run-dir", str(out),
           "--run-config", TINY.replace("num-rounds=1", "num-rounds=5 eval-every=5")]  # evaluated at the end only
    resume = [sys.executable, "-m", "fedot.cli", "sim", "sims/quickstart", "--resume", "--run-dir", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        run_id = None
        for line in proc.stdout:
            m = re.search(r"Flower run (\d+): `flwr log \1 --stream` follows it, `flwr list` lists runs, "
                          r"`flwr stop \1` stops it", line)
            if m:
                run_id = m.group(1)
                break
        assert run_id, "fedot sim never printed the Flower run id"
        _wait_for_round(state, proc, 0)
        listed = json.loads(subprocess.run([flwr, "list", "--format", "json"], capture_output=True, text=True,
                                           timeout=60).stdout)
        assert any(str(r["run-id"]) == run_id and r["status"] == "running" for r in listed["runs"]), listed
        stop = subprocess.run([flwr, "stop", run_id], capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        log = subprocess.run([flwr, "log", run_id], capture_output=True, text=True, timeout=60)  # after the fact too
        assert log.returncode == 0 and "round 1" in log.stdout, log.stdout[-2000:] + log.stderr[-2000:]
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        stop_superlink(home)
    assert proc.returncode != 0
    assert f"run {run_id} was stopped (flwr stop); its checkpoint holds round" in err
    assert f"fedot sim sims/quickstart --resume --run-dir {out}" in err
    stopped_at = json.loads(state.read_text())["round"]
    # resumed, then killed: the owner's process and its fedot sim die without a handler running
    proc = subprocess.Popen(resume, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_round(state, proc, stopped_at)
        servers = [pid for pid in subprocess.run(["pgrep", "-f", "flwr-simulation"], capture_output=True,
                                                  text=True).stdout.split()
                   if f"FLWR_HOME={home}".encode() in Path(f"/proc/{pid}/environ").read_bytes()]  # this test's only
        assert servers
        for pid in servers:
            os.kill(int(pid), signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        stop_superlink(home)
    before = [json.loads(line) for line in (out / "rounds.jsonl").open()]
    killed_at = json.loads(state.read_text())["round"]
    assert stopped_at < killed_at < 5 and not (out / "results.json").exists()
    resumed = subprocess.run(resume, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resuming after round {killed_at} of 5" in resumed.stdout
    rows = [json.loads(line) for line in (out / "rounds.jsonl").open()]
    assert [r["round"] for r in rows] == list(range(6))
    assert rows[:killed_at + 1] == before[:killed_at + 1]  # the rounds done before the kill are kept as they were
    assert json.loads((out / "results.json").read_text())["numbers"]["plugin"] == rows[5]["evaluation"]["plugin"]
    # and it ends where the same run without interruptions ends, tensor by tensor
    whole = tmp_path / "whole"
    uninterrupted = subprocess.run([*cmd[:cmd.index("--run-dir") + 1], str(whole), *cmd[cmd.index("--run-dir") + 2:]],
                                   capture_output=True, text=True, timeout=900)
    assert uninterrupted.returncode == 0, uninterrupted.stdout[-3000:] + uninterrupted.stderr[-3000:]
    from safetensors.torch import load_file

    a, b = load_file(out / "adapter.safetensors"), load_file(whole / "adapter.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
