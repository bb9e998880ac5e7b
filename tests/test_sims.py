"""Every sims/ folder is a valid Flower app for the installed package, and `fedot sim` refuses what cannot run."""

import importlib
import re
import tomllib
from pathlib import Path

import pytest

from fedot.federated import FederatedConfig
from fedot.models import ModelNotFoundError
from fedot.sim import SimError, federation_settings, preflight

SIMS = sorted(p for p in (Path(__file__).parents[1] / "sims").iterdir() if (p / "pyproject.toml").exists())


def test_required_sims_exist():
    assert {"quickstart", "smollm2_1client", "smollm2_10clients", "opt13b_10clients"} <= {p.name for p in SIMS}


@pytest.mark.parametrize("sim", SIMS, ids=lambda p: p.name)
def test_sim_is_a_valid_flower_app(sim):
    doc = tomllib.loads((sim / "pyproject.toml").read_text())
    assert re.fullmatch(r"[A-Za-z0-9-]+", doc["project"]["name"])
    assert doc["project"]["dependencies"] == []
    for ref in doc["tool"]["flwr"]["app"]["components"].values():
        module, attr = ref.split(":")
        assert getattr(importlib.import_module(module), attr) is not None
    cfg = FederatedConfig.from_run_config(doc["tool"]["flwr"]["app"]["config"])
    assert cfg.num_rounds >= 1
    assert "num-supernodes" in doc["tool"]["fedot"]["federation"]
    assert "fedot sim sims/" + sim.name in (sim / "README.md").read_text()


def test_same_total_budget_for_one_and_ten_clients():
    one = tomllib.loads((Path(SIMS[0]).parent / "smollm2_1client/pyproject.toml").read_text())
    ten = tomllib.loads((Path(SIMS[0]).parent / "smollm2_10clients/pyproject.toml").read_text())
    budget = lambda d: d["tool"]["flwr"]["app"]["config"]["num-rounds"] * d["tool"]["flwr"]["app"]["config"]["local-steps"] \
        * d["tool"]["fedot"]["federation"]["num-supernodes"]  # noqa: E731
    assert budget(one) == budget(ten)


def test_preflight_unreachable_hub_model():
    sim = Path(SIMS[0]).parent / "opt13b_10clients"
    with pytest.raises(ModelNotFoundError, match="facebook/opt-13b"):
        preflight(sim, federation_settings(sim, None), [])


def test_preflight_gpu_request_without_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    sim = Path(SIMS[0]).parent / "quickstart"
    settings = {**federation_settings(sim, 2), "client-resources-num-gpus": 0.25}
    with pytest.raises(SimError, match="no CUDA GPU"):
        preflight(sim, settings, [])
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        preflight(sim, federation_settings(sim, 2), ['model="/no/such/model"'])
