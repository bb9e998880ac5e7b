"""The privacy-utility frontier on a tiny model: every point's five numbers, the ceiling, resumption, refusals."""

import json

import pytest

from fedot.run import frontier as frontier_module
from fedot.run.frontier import FrontierConfig, run_frontier, summarise
from fedot.settings import from_flat
from support import datafix


def _cfg(tiny_models, **extra):
    return from_flat(FrontierConfig, {"model": str(tiny_models["llama"]), "bottom": 1, "top": 1, "task": "pydocs",
                                      "methods": "uniform", "blocks": "2,3", "steps": 2, "batch-size": 2,
                                      "max-length": 32, "lr": [1e-3], "limit": 2, "val-limit": 2, "train-limit": 4,
                                      **extra}, where="frontier")


def test_frontier_runs_the_grid_and_the_ceiling_then_resumes_without_recomputing(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    result = run_frontier(_cfg(tiny_models), tmp_path / "f")
    assert [r["point"] for r in result["rows"]] == ["uniform-2", "uniform-3", "lossless"]
    ceiling = result["rows"][-1]
    assert ceiling["kept_blocks"] == 4 and ceiling["numbers"]["full_finetuned"] is not None  # FT trained once
    assert ceiling["numbers"]["emulator_zero_shot"] == pytest.approx(ceiling["numbers"]["zero_shot"], rel=1e-4)
    for row in result["rows"]:
        n = row["numbers"]
        gain = n["full_finetuned"] - n["zero_shot"]
        assert row["recovered"] == (pytest.approx((n["plugin"] - n["zero_shot"]) / gain) if gain < 0 else None)
        assert row["privacy_gap"] == pytest.approx(n["emulator_finetuned"] - n["plugin"])  # perplexity: lower wins
    for name in ("frontier.json", "frontier.md", "frontier.png"):
        assert (tmp_path / "f" / name).stat().st_size > 0
    assert json.loads((tmp_path / "f" / "uniform-2" / "results.json").read_text())["numbers"]

    def never(*a, **k):
        raise AssertionError("a finished point was recomputed")

    monkeypatch.setattr(frontier_module, "run", never)
    again = run_frontier(_cfg(tiny_models), tmp_path / "f")
    assert [r["numbers"] for r in again["rows"]] == [r["numbers"] for r in result["rows"]]
    with pytest.raises(ValueError, match="other settings; use another --out"):
        run_frontier(_cfg(tiny_models, **{"steps": 3}), tmp_path / "f")
    with pytest.raises(ValueError, match="k=1 cannot keep both"):  # a bad point stops the grid before anything runs
        run_frontier(_cfg(tiny_models, blocks="1,3"), tmp_path / "g")
    assert not (tmp_path / "g").exists()


def test_frontier_recommends_the_smallest_emulator_meeting_both_conditions():
    def record(kept, zs, emu, plug):
        return {"numbers": {"zero_shot": zs, "emulator_zero_shot": 99.0, "emulator_finetuned": emu, "plugin": plug},
                "higher_is_better": False, "chosen_lr": 1e-4,
                "emulator": {"method": "distill", "emulator_blocks": list(range(kept))}}

    rows = [summarise("a", record(6, 30.0, 80.0, 31.0), 25.0, 0.05),  # plug-in worse than zero-shot
            summarise("b", record(12, 30.0, 29.5, 29.0), 25.0, 0.05),  # emulator within 5% of plug-in: leaks
            summarise("c", record(18, 30.0, 40.0, 28.0), 25.0, 0.05)]
    assert [r["acceptable"] for r in rows] == [False, False, True]
    assert rows[2]["recovered"] == pytest.approx(0.4)


@pytest.mark.parametrize("hib,zs,ft,plug,emu,meets", [
    (True, 0.50, 0.60, 0.56, 0.50, True),  # 60% of the gain, the tuned emulator 6 points below plug-in
    (True, 0.50, 0.60, 0.56, 0.52, False),  # 4 points: the owner's gap is too small
    (True, 0.50, 0.60, 0.54, 0.40, False),  # 40% of the gain
    (False, 30.0, 25.0, 27.0, 60.0, True),  # 60%, the tuned emulator 2.2x plug-in's perplexity
    (False, 30.0, 25.0, 27.0, 50.0, False),  # 1.85x
    (False, 30.0, 25.0, 28.0, 90.0, False)])  # 40%
def test_the_aim_needs_half_the_gain_and_a_clear_owners_gap_in_the_metrics_own_unit(hib, zs, ft, plug, emu, meets):
    record = {"numbers": {"zero_shot": zs, "emulator_zero_shot": emu, "emulator_finetuned": emu, "plugin": plug},
              "higher_is_better": hib, "chosen_lr": 1e-4, "emulator": {"method": "distill",
                                                                        "emulator_blocks": list(range(12))}}
    assert FrontierConfig().meets_aim(summarise("p", record, ft, 0.05), hib) is meets
    assert not FrontierConfig().meets_aim(summarise("lossless", record, ft, 0.05), hib)  # the ceiling is no candidate


@pytest.mark.parametrize("flat,match", [({"methods": "scaleot"}, "not emulator-blocks"),
                                        ({"methods": "magic"}, "unknown methods"),
                                        ({"blocks": "6,x"}, "comma-separated integers")])
def test_frontier_refuses_a_grid_that_cannot_work(flat, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        run_frontier(from_flat(FrontierConfig, flat, where="frontier"), tmp_path / "f")


def test_explicit_points_carry_their_own_settings_and_the_ceiling_is_added(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    cfg = _cfg(tiny_models, points="two: emulator-blocks=2; pruned: emulator-method='prune' emulator-blocks=3 "
                                   "emulator-prune-sparsity=0.5")
    assert [n for n, _ in cfg.point_overrides()] == ["two", "pruned", "lossless"]
    result = run_frontier(cfg, tmp_path / "f")
    rows = {r["point"]: r for r in result["rows"]}
    assert rows["two"]["kept_blocks"] == 2
    assert rows["pruned"]["method"] == "prune" and rows["pruned"]["kept_blocks"] == 3
    pruned = json.loads((tmp_path / "f" / "pruned" / "results.json").read_text())
    assert pruned["config"]["emulator-prune-sparsity"] == 0.5 and pruned["config"]["full-ft"] is False
    for bad, match in (("lossless: emulator-blocks=2", "NAME not 'lossless'"), ("nocolon", "NAME: key=value"),
                       ("a: emulator-blocks=2; a: emulator-blocks=3", "distinct names")):
        with pytest.raises(ValueError, match=match):
            _cfg(tiny_models, points=bad)
