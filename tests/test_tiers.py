"""Emulator tiers: each data owner trains through the emulator its node config sizes, one adapter is aggregated."""

import json
from pathlib import Path

import pytest

from fedot.emulator.tiers import TierConfig, choose_tier
from fedot.settings import SettingError
from support.inprocess import InProcessGrid, run_config, run_server


@pytest.mark.parametrize("tiers,match", [("6,x", "comma-separated"), ("12,6", "increasing"), ("6,6", "distinct"),
                                         ("0,6", ">= 1")])
def test_tiers_that_cannot_work_are_refused(tiers, match):
    with pytest.raises(ValueError, match=match):
        TierConfig(tiers=tiers).check()


def test_a_node_gets_the_tier_it_names_or_the_deepest_that_fits_its_memory():
    plans = [1 * 2**30, 3 * 2**30, 6 * 2**30]
    assert choose_tier({"tier": 0}, plans)[0] == 0
    assert choose_tier({"memory-gb": 4}, plans) == (1, "memory-gb 4")
    assert choose_tier({"memory-gb": 100}, plans)[0] == 2
    assert choose_tier({}, plans)[0] == 2  # a node that says nothing gets the deepest tier
    shares = [choose_tier({"partition-id": p, "num-partitions": 10}, plans, "by-partition")[0] for p in range(10)]
    assert shares == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]  # a simulation: equal contiguous shares by partition
    assert choose_tier({"tier": 1, "partition-id": 0, "num-partitions": 10}, plans, "by-partition")[0] == 1
    with pytest.raises(ValueError, match="tier = 3, but this run has tiers 0..2"):
        choose_tier({"tier": 3}, plans)
    with pytest.raises(ValueError, match="holds no tier .the smallest needs 1.0 GiB"):
        choose_tier({"memory-gb": 0.5}, plans)


def test_mixed_tiers_train_one_adapter_and_are_evaluated_per_tier(tiny_models, tmp_path):
    rc = run_config(tiny_models["llama"], tmp_path / "run", **{"emulator-tiers": "2,3", "min-replies": 2})
    grid = InProcessGrid(4, rc, node_config={101: {"tier": 0}, 102: {"memory-gb": 64}, 103: {}, 104: {"tier": 9}})
    rows, results = run_server(rc, grid)
    lines = [json.loads(x) for x in (Path(rc["run-dir"]) / "delivery.jsonl").read_text().splitlines()]
    sent = [r for r in lines if "mode" in r]
    assert sorted(r["tier_blocks"] for r in sent) == [2, 3]  # each tier's artifact went only to its nodes
    assert {len(r["nodes"]) for r in sent} == {1, 2}
    tiers = next(r["tiers"] for r in lines if "tiers" in r)
    assert tiers["tier_of"] == {"101": 2, "102": 3, "103": 3, "104": None}
    assert "tier = 9" in tiers["why"]["104"]
    for row in rows[1:]:
        assert row["tiers"] == {"101": 2, "102": 3, "103": 3, "104": -1}
        assert sorted(row["accepted"]) == [101, 102, 103]  # the same adapter tensors from either tier
        reason = next(r["reason"] for r in row["rejected"] if r["node"] == 104)
        assert "no emulator tier fits it (node config tier = 9, but this run has tiers 0..1)" in reason
    evaluation = rows[-1]["evaluation"]
    assert set(evaluation["emulator_finetuned_by_tier"]) == {"2", "3"}
    assert evaluation["emulator_finetuned_by_tier"]["3"] == evaluation["emulator_finetuned"]  # the deepest
    assert set(rows[0]["evaluation"]["emulator_zero_shot_by_tier"]) == {"2", "3"}
    by_blocks = {t["blocks"]: t for t in results["tiers"]}
    assert by_blocks[2]["data_owners"] == 1 and by_blocks[3]["data_owners"] == 2
    assert by_blocks[2]["artifact_bytes"] < by_blocks[3]["artifact_bytes"]
    assert "| Emulator tier (middle blocks) |" in (Path(rc["run-dir"]) / "results.md").read_text()


def test_every_tier_must_pass_the_privacy_check(tiny_models, tmp_path):
    rc = run_config(tiny_models["llama"], tmp_path / "run", **{"emulator-tiers": "2,4"})  # 4 of 4: the full model
    with pytest.raises(SettingError, match="ships the full model"):
        run_server(rc, InProcessGrid(2, rc))
    assert not (tmp_path / "nodes").exists()


def test_the_memory_plan_has_a_row_per_tier(capsys):
    from fedot.run.launch import show_plan

    show_plan("sims/quickstart", {"emulator-tiers": "6,12,18"})
    out = capsys.readouterr().out
    assert all(f"data owner (emulator {k + 4} of 30 blocks)" in out for k in (6, 12, 18))
