"""Experiment tracking: what a round logs, each tracker's own files read back with its own reader, bad settings."""

from pathlib import Path

import pytest

from fedot.run.tracking import Tracking, TrackingConfig, round_metrics
from fedot.settings import SettingError

ROW = {"round": 2, "lr": 2e-4, "sampled": [18446744073709551557, 7], "accepted": [7], "timed_out": [],
       "rejected": [{"node": 18446744073709551557, "reason": "update norm 9.1 > 10 x the round's lower median (0.8)"}],
       "bytes_up": 1000, "train_loss": 2.5, "train_loss_by_owner": {"7": 2.5}, "aggregated": True,
       "evaluation": {"plugin": 30.5, "plugin_ci95": [29.0, 32.0], "gap": float("nan")}, "dp": {"epsilon": 1.5},
       "influence": [{"node": 7, "weight": 1.0}], "elapsed_s": 3.0}
RECORD = {"numbers": {"zero_shot": 33.6, "plugin": 30.5}, "recovered": 0.4, "conditions": {"zero_shot < plug-in": True}}


def test_a_round_logs_its_numbers_counts_and_reasons_never_ids():
    m = round_metrics(ROW)
    assert m["evaluation/plugin"] == 30.5 and m["evaluation/plugin_ci95/low"] == 29.0
    assert m["evaluation/plugin_ci95/high"] == 32.0 and "evaluation/gap" not in m  # NaN is not a point
    assert m["train_loss_by_owner/7"] == 2.5 and m["dp/epsilon"] == 1.5
    assert (m["sampled"], m["accepted"], m["rejected"], m["timed_out"]) == (2, 1, 1, 0)
    assert m["rejected_by_reason/update_norm_9.1_10_x_the_round_s_lower_median"] == 1
    assert m["aggregated"] == 1.0 and not any("influence" in k or "round" == k for k in m)


def test_a_curve_round_is_logged_beside_the_curve_points_of_whole_split_rounds():
    curve_round = {**ROW, "evaluation": {"plugin": 31.0, "emulator_finetuned": 90.0, "curve_examples": 6}}
    last = {**ROW, "round": 4, "evaluation": {"plugin": 30.5, "curve": {"plugin": 29.5, "examples": 6}}}
    m, n = round_metrics(curve_round), round_metrics(last)
    assert m["evaluation/curve/plugin"] == 31.0 and "evaluation/plugin" not in m  # never mixed with the whole split
    assert n["evaluation/curve/plugin"] == 29.5 and n["evaluation/plugin"] == 30.5


@pytest.mark.parametrize("value,match", [("tensorbord", "unknown tracker"), ("tensorboard,comet", "comet")])
def test_an_unknown_tracker_is_refused_before_the_run(value, match):
    from fedot.run.config import FederatedConfig
    from fedot.settings import from_flat

    with pytest.raises(SettingError, match=match):
        from_flat(FederatedConfig, {"report-to": value})
    assert from_flat(FederatedConfig, {"report-to": "none"}).tracking.trackers == []


def test_a_missing_package_is_named_with_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(SettingError, match="pip install wandb"):
        TrackingConfig("tensorboard,wandb").check()


def _log_a_run(out: Path, tracker: str):
    said = []
    t = Tracking(TrackingConfig(tracker), out, "run-a", {"lr": 2e-4, "task": "pydocs", "lr-list": [1e-4]},
                 report=said.append)
    t.log_row({**ROW, "round": 1, "train_loss": 3.0})
    t.log_row(ROW)
    t.finish(RECORD)
    assert said == [] and t.trackers  # no tracker failed and was dropped along the way


def test_tensorboard_event_files_hold_every_round_and_the_final_numbers(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _log_a_run(tmp_path, "tensorboard")
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert [(e.step, e.value) for e in events.Scalars("train_loss")] == [(1, 3.0), (2, 2.5)]
    assert [e.value for e in events.Scalars("evaluation/plugin")] == [30.5, 30.5]
    hparams = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert "final/plugin" in hparams.Tags()["scalars"] and hparams.Scalars("final/plugin")[0].value == 30.5


def test_mlflow_file_store_holds_params_metrics_and_the_final_numbers(tmp_path):
    from mlflow.tracking import MlflowClient

    from fedot.run.tracking import mlflow_uri

    _log_a_run(tmp_path, "mlflow")
    client = MlflowClient(tracking_uri=mlflow_uri(tmp_path))
    run = client.search_runs([client.get_experiment_by_name("fedot").experiment_id])[0]
    assert run.data.params["task"] == "pydocs" and run.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train_loss")] == [(1, 3.0),
                                                                                                      (2, 2.5)]
    assert run.data.metrics["final/plugin"] == 30.5 and run.data.metrics["final/recovered"] == 0.4


@pytest.mark.slow
def test_wandb_offline_run_is_written_in_the_run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    _log_a_run(tmp_path, "wandb")
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    log = next(runs[0].glob("run-*.wandb")).read_bytes()  # W&B's own protobuf log, synced later by `wandb sync`
    assert b"final/plugin" in log and b"evaluation/plugin_ci95/low" in log and b"pydocs" in log


def test_a_failing_tracker_is_dropped_with_a_message_never_the_run(tmp_path):
    said = []
    t = Tracking(TrackingConfig("none"), tmp_path, "run", {}, report=said.append)

    class Broken:
        def log(self, metrics, step):
            raise OSError("disk full")

    t.trackers = [Broken()]
    t.log_row(ROW)
    t.log_row(ROW)
    assert t.trackers == [] and len(said) == 1 and "disk full" in said[0]


def test_a_distillation_curve_is_logged_at_each_held_out_check(tmp_path):
    import importlib.util
    from types import SimpleNamespace

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = importlib.util.spec_from_file_location("distill_curve", Path(__file__).parents[1] / "bench/distill_curve.py")
    curve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(curve)
    history = [{"step": 0, "tokens": 0, "held_out_mse": 0.9, "held_out_objective": 30.0, "emulator_zero_shot": 900.0,
                "ratio_to_full": 30.0},
               {"step": 25, "tokens": 51200, "held_out_mse": 0.5, "held_out_objective": 20.0},
               {"step": 50, "tokens": 102400, "held_out_mse": 0.3, "held_out_objective": 12.0,
                "emulator_zero_shot": 150.0, "ratio_to_full": 5.0}]
    args = SimpleNamespace(out=str(tmp_path / "curve.json"), report_to="tensorboard", eval_task="wikitext2", limit=4)
    spec_ = SimpleNamespace(model="m", bottom=2, emulator_blocks=18, top=2)
    curve.write(args, "python bench/distill_curve.py", 30.0, spec_, tmp_path / "artifact",
                {"distill_result": {"history": history, "steps": 50}, "corpus": "gutenberg"}, 1.0)
    events = EventAccumulator(str(tmp_path / "curve.tracking" / "tensorboard")).Reload()
    assert [(e.step, e.value) for e in events.Scalars("distill/held_out_mse")] == [(0, pytest.approx(0.9)),
                                                                                   (25, 0.5), (50, pytest.approx(0.3))]
    assert events.Scalars("final/ratio_to_full")[0].value == 5.0
