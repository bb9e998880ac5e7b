"""Settings are declared once; keys, CLI flags, checks, docs and the sims' tables all derive from the declarations."""

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib

from fedot.cli import README_BEGIN, README_END, main
from fedot.data_owner.worker import DataOwnerConfig
from fedot.emulator import METHODS
from fedot.run.config import FederatedConfig
from fedot.settings import (
    SettingError,
    add_arguments,
    declarations,
    from_args,
    from_flat,
    group,
    markdown_table,
    setting,
    settings_text,
    to_flat,
    toml_table,
)

ROOT = Path(__file__).parents[1]


@dataclass
class Inner:
    rate: float = setting(0.5, "a rate", ge=0, lt=1)
    mode: str = setting("a", "a mode", choices=("a", "b"))


@dataclass
class Outer:
    steps: int = setting(3, "steps", ge=1)
    on: bool = setting(False, "a switch")
    names: list[float] = setting([1.0], "some numbers", gt=0)
    inner: Inner = group(Inner, prefix="in")

    def check(self):
        if self.on and self.inner.mode == "b":
            raise SettingError("on needs mode a")


def test_keys_derive_from_fields_and_group_prefixes():
    assert [d.key for d in declarations(Outer)] == ["steps", "on", "names", "in-rate", "in-mode"]
    assert to_flat(Outer()) == {"steps": 3, "on": False, "names": [1.0], "in-rate": 0.5, "in-mode": "a"}
    assert to_flat(from_flat(Outer, {"in-rate": 0.25})) == {**to_flat(Outer()), "in-rate": 0.25}


@pytest.mark.parametrize("flat,match", [
    ({"steps": 0}, "'steps' is 0; it must be >= 1"),
    ({"steps": 2.5}, "must be an integer"),
    ({"steps": True}, "must be an integer"),
    ({"on": "false"}, "must be true or false.*without quotes"),
    ({"in-rate": 1.0}, r"must be \[0, 1\)"),
    ({"in-rate": float("nan")}, "finite"),
    ({"in-mode": "c"}, "choose one of a, b"),
    ({"names": [1.0, -1.0]}, "must be > 0"),
    ({"stesp": 1}, "unknown run config key 'stesp' \\(did you mean 'steps'\\?\\)"),
    ({"on": True, "in-mode": "b"}, "on needs mode a"),  # the dataclass's own check of relations
])
def test_every_bad_value_names_its_key_and_the_fix(flat, match):
    with pytest.raises(SettingError, match=match):
        from_flat(Outer, flat)


def test_cli_flags_have_the_run_config_names_defaults_and_ranges():
    p = argparse.ArgumentParser()
    add_arguments(p, Outer)
    text = p.format_help()
    assert "--in-rate FLOAT" in text and "(default 0.5; [0, 1))" in text and "--on, --no-on" in text
    cfg = from_args(Outer, p.parse_args(["--steps", "5", "--on", "--names", "2", "3"]))
    assert (cfg.steps, cfg.on, cfg.names, cfg.inner.rate) == (5, True, [2.0, 3.0], 0.5)
    with pytest.raises(SettingError, match="command-line key 'steps'"):
        from_args(Outer, p.parse_args(["--steps", "0"]))


def test_every_emulator_method_contributes_its_own_keys():
    keys = {d.key for d in declarations(FederatedConfig)}
    for name, settings in METHODS.settings_groups().items():
        for d in declarations(settings):
            assert f"emulator-{name}-{d.key}" in keys


def test_defaults_are_resolved_once_and_stay_valid():
    """The drift the settings had (max-length 512 vs 256, warmup 0.06 vs 0.0, steps 10 vs 5) cannot recur:
    there is one declaration of each, and the defaults pass their own checks."""
    keys = [d.key for d in declarations(FederatedConfig)]
    assert len(keys) == len(set(keys))
    cfg = from_flat(FederatedConfig, {})
    assert (cfg.data_owner.train.max_length, cfg.data_owner.train.warmup_ratio, cfg.data_owner.train.steps) == \
        (512, 0.06, 10)


def test_the_data_owner_reads_no_owner_setting():
    keys = {d.key for d in declarations(DataOwnerConfig)}
    assert not keys & {"model", "run-dir", "emulator-method", "full-ft", "lr"}


def test_toml_table_round_trips():
    cfg = from_flat(FederatedConfig, {"lr": 3e-4, "full-ft": True, "emulator-blocks": 7})
    assert tomllib.loads(toml_table(cfg)) == to_flat(cfg)
    assert re.search(r"^lr +=  ?0.0003   \(default 0.0001\)$", settings_text(cfg), re.M)


def test_readme_settings_table_is_generated():
    readme = (ROOT / "README.md").read_text()
    assert readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0] == markdown_table(FederatedConfig), \
        "README's settings table is stale: run `fedot settings --sync`"


def test_settings_and_print_config_commands(capsys):
    assert main(["settings"]) == 0
    assert "emulator-distill-tokens" in capsys.readouterr().out
    assert main(["sim", "sims/quickstart", "--print-config", "--run-config", "lr=1e-3"]) == 0
    out = capsys.readouterr().out
    assert "lr" in out and "0.001   (default 0.0001)" in out and "num-clients" in out
    assert main(["sim", "sims/quickstart", "--print-config", "--run-config", "num-rouds=2"]) == 2
    assert "did you mean 'num-rounds'" in capsys.readouterr().err
