"""Slow smoke test: the quickstart through real `flwr run` (local SuperLink + Ray) with a tiny budget."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_quickstart_via_flwr_run(tmp_path, monkeypatch):
    from fedot.run.sim import flwr_home, superlink_pids

    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    # its own ports, so a SuperLink the user has running is not touched
    monkeypatch.setenv("FLWR_LOCAL_SUPERLINK_HTTP_API_PORT", "39191")
    monkeypatch.setenv("FLWR_LOCAL_CONTROL_API_PORT", "39193")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "fedot.cli", "sim", "sims/quickstart", "--num-clients", "2", "--run-dir", str(out),
           "--run-config",
           "num-rounds=1 local-steps=1 batch-size=1 max-length=32 eval-limit=1 full-ft=false emulator-blocks=4"]
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

    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    monkeypatch.setenv("FLWR_LOCAL_SUPERLINK_HTTP_API_PORT", "39191")
    monkeypatch.setenv("FLWR_LOCAL_CONTROL_API_PORT", "39193")
    model = shutil.copytree(tiny_models["llama"], tmp_path / "model")
    (model / "model.safetensors").write_bytes(b"not a safetensors file")
    cmd = [sys.executable, "-m", "fedot.cli", "sim", "sims/quickstart", "--num-clients", "1", "--run-dir",
           str(tmp_path / "run"), "--run-config", f"model={json.dumps(str(model))} full-ft=false"]
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
