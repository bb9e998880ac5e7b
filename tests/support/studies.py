"""A tiny study file over a tiny sim, and a launcher that runs each study run in-process (tests/test_study*.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedot.settings import to_flat
from support import datafix
from support.inprocess import run_in_process


def write_study(tmp_path: Path, model: Path, arms=("federated", "local-only"), extra: str = "") -> Path:
    sim = tmp_path / "sim"
    sim.mkdir(exist_ok=True)
    (sim / "pyproject.toml").write_text(f"""
[tool.fedot.sim]
model = "{model}"
num-clients = 3
num-rounds = 2
steps = 2
batch-size = 2
max-length = 64
warmup-ratio = 0.0
emulator-blocks = 2
bottom = 1
top = 1
eval-limit = 4
lr = 1e-3
""")
    path = tmp_path / "tiny.toml"
    path.write_text(f"""
[study]
sim = "sim"
seeds = [0, 1]
partitionings = ["iid"]
arms = {json.dumps(list(arms))}
local-only-owners = 1

[settings]
eval-every = 2
{extra}
[tasks.arc_easy]
""")
    return path


class Launcher:
    """Runs each study run in-process (the real ServerApp, strategy and ClientApp), recording the calls."""

    def __init__(self, fail_at: int | None = None):
        self.calls, self.fail_at = [], fail_at

    def __call__(self, sim: Path, overrides: dict, fresh: bool) -> None:
        from fedot.run.sim_folder import Sim

        self.calls.append((overrides["run-dir"], overrides["resume"], fresh))
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise RuntimeError("interrupted")
        cfg = Sim(sim).config(overrides)
        rc = {k: v for k, v in to_flat(cfg).items()}
        run_in_process(rc, cfg.num_clients)


@pytest.fixture(name="data")
def study_data(tmp_path, monkeypatch):
    """FEDOT_DATA_DIR pointing at a small offline copy of the tasks' data (import it to use the fixture)."""
    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
