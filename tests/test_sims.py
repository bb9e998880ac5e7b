"""Every sims/ folder is a valid Flower app whose config is fedot's defaults plus what it declares."""

import importlib
import re
from pathlib import Path

import pytest

from fedot.models import ModelNotFoundError
from fedot.run.config import FederatedConfig
from fedot.run.launch import SimError, federation, parse_overrides, preflight
from fedot.run.sim_folder import Sim, all_sims
from fedot.settings import SettingError, declarations, to_flat

ROOT = Path(__file__).parents[1]
SIMS = all_sims(ROOT / "sims")


def test_required_sims_exist():
    assert {"quickstart", "smollm2_1client", "smollm2_10clients", "opt13b_10clients"} <= {s.name for s in SIMS}


@pytest.mark.parametrize("sim", SIMS, ids=lambda s: s.name)
def test_sim_is_a_valid_flower_app(sim):
    doc = sim.doc
    assert re.fullmatch(r"[A-Za-z0-9-]+", doc["project"]["name"])
    assert doc["project"]["dependencies"] == []
    for ref in doc["tool"]["flwr"]["app"]["components"].values():
        module, attr = ref.split(":")
        assert getattr(importlib.import_module(module), attr) is not None
    assert "fedot sim sims/" + sim.name in (sim.path / "README.md").read_text()
    assert "num-supernodes" not in sim.resources()  # declared once, as num-clients
    # the ServerApp names the sim in its messages from the project name
    from types import SimpleNamespace

    from fedot_apps.federation import sim_folder

    grid = SimpleNamespace(run=SimpleNamespace(fab_id=f"fedot/{doc['project']['name']}"))
    assert sim_folder(grid) == f"sims/{sim.name}"


@pytest.mark.parametrize("sim", SIMS, ids=lambda s: s.name)
def test_sim_config_is_the_defaults_plus_its_declared_settings(sim):
    """The generated [tool.flwr.app.config] holds every setting, equal to the defaults + [tool.fedot.sim]."""
    declared = sim.declared()
    app = sim.app_config()
    assert list(app) == [d.key for d in declarations(FederatedConfig)]  # every key, so --run-config can set any
    defaults = to_flat(FederatedConfig())
    for key, value in app.items():
        assert value == declared.get(key, defaults[key]), f"{sim.name}: {key} = {value!r} is neither the default " \
            f"{defaults[key]!r} nor declared in [tool.fedot.sim]; run `fedot settings --sync`"
    assert sim.generated().split("[tool.flwr.app.config]\n", 1)[1] in sim.file.read_text()  # comments in sync too


def test_same_total_budget_for_one_and_ten_clients():
    one, ten = (Sim(ROOT / "sims" / n).config() for n in ("smollm2_1client", "smollm2_10clients"))
    assert one.num_rounds * one.data_owner.train.steps * one.num_clients == \
        ten.num_rounds * ten.data_owner.train.steps * ten.num_clients


def test_the_control_differs_from_the_one_client_baseline_only_in_per_round_steps():
    """One data owner taking as many steps a round as each federated client: federation vs early stopping."""
    from fedot.settings import to_flat

    one, control, ten = (Sim(ROOT / "sims" / n).config() for n in
                         ("smollm2_1client", "smollm2_1client_control", "smollm2_10clients"))
    assert control.num_clients == 1 and control.data_owner.train.steps == ten.data_owner.train.steps
    differ = {k for k, v in to_flat(control).items() if to_flat(one)[k] != v}
    assert differ == {"steps"}


def test_bad_declared_setting_is_refused_with_the_sim_name(tmp_path):
    text = (ROOT / "sims/pydocs_4clients/pyproject.toml").read_text().replace("\nsteps = 5", "\nstep = 5", 1)
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(SettingError, match=r"run config key 'step' \(did you mean 'steps'\?\)"):
        Sim(tmp_path).config()


def test_run_config_overrides_are_parsed_like_flower():
    assert parse_overrides(["lr=1e-3 tuning='lora'", "full-ft=false"]) == {"lr": 1e-3, "tuning": "lora",
                                                                             "full-ft": False}
    cfg = Sim(ROOT / "sims/quickstart").config(parse_overrides(["num-clients=7"]))
    assert federation(Sim(ROOT / "sims/quickstart"), cfg)["num-supernodes"] == 7


def test_preflight_unreachable_hub_model():
    with pytest.raises(ModelNotFoundError, match="facebook/opt-13b"):
        preflight(Sim(ROOT / "sims/opt13b_10clients"), {})


def test_preflight_gpu_request_without_gpu(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    text = (ROOT / "sims/quickstart/pyproject.toml").read_text().replace("client-resources-num-gpus = 0.0",
                                                                          "client-resources-num-gpus = 0.25")
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(SimError, match="no CUDA GPU"):
        preflight(Sim(tmp_path), {})
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        preflight(Sim(ROOT / "sims/quickstart"), {"model": "/no/such/model"})
    with pytest.raises(SettingError, match="full-ft"):
        preflight(Sim(ROOT / "sims/quickstart"), {"full-ft": "false"})


def test_preflight_needs_the_task_data(tmp_path):
    """A task whose splits are not where the run will look is refused before Flower starts, naming the fix."""
    (tmp_path / "data").mkdir()
    with pytest.raises(SimError, match=r"task 'arc_easy': its train split .*cannot be read.*FEDOT_DATA_DIR"):
        preflight(Sim(ROOT / "sims/quickstart"), {"task": "arc_easy", "partitioning": "iid",
                                                  "data-dir": str(tmp_path / "data")})


def test_a_run_dir_in_use_is_refused_unless_resumed_or_overwritten(tmp_path):
    from fedot.run.launch import claim_run_dir

    claim_run_dir(tmp_path / "new", resume=False, overwrite=False)  # nothing there: fine
    (tmp_path / "rounds.jsonl").write_text("{}\n")
    with pytest.raises(SimError, match="already holds a run .*--resume"):
        claim_run_dir(tmp_path, resume=False, overwrite=False)
    claim_run_dir(tmp_path, resume=True, overwrite=False)
    claim_run_dir(tmp_path, resume=False, overwrite=True)
    assert not (tmp_path / "rounds.jsonl").exists()
    with pytest.raises(SimError, match="no round of it was completed"):
        claim_run_dir(tmp_path / "empty", resume=True, overwrite=False)


def test_the_checked_settings_reach_flower_exactly_once_quotes_included(tmp_path):
    """fedot sim hands Flower every setting in one TOML file, which Flower's own parser reads back byte for byte."""
    import shlex

    from flwr.common.config import parse_config_args

    from fedot.run.config import FederatedConfig
    from fedot.run.launch import handoff
    from fedot.settings import from_flat, to_flat

    command = "fedot " + shlex.join(["sim", "sims/quickstart", "--run-config", "emulator-alignment='fedbiot' seed=1",
                                     'a\\b"c'])
    cfg = from_flat(FederatedConfig, {"command": command, "num-rounds": 3, "lr": 2e-4, "full-ft": False})
    args = handoff(cfg, tmp_path)
    assert args[0] == "--run-config" and len(args) == 2 and parse_config_args(args[1:]) == to_flat(cfg)
