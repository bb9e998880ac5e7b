"""A Flower home of the test's own (test support)."""

import os
import sys
from pathlib import Path


def own_flower(tmp_path, monkeypatch) -> Path:
    """A Flower home and ports of the test's own, so a SuperLink the user has running is not touched."""
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    monkeypatch.setenv("FLWR_LOCAL_SUPERLINK_HTTP_API_PORT", "39191")
    monkeypatch.setenv("FLWR_LOCAL_CONTROL_API_PORT", "39193")
    monkeypatch.setenv("FEDOT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    return tmp_path / "flwr"
