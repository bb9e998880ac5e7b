"""Kept replies (keep-replies) and their replay under other rules: the run's own rule gives the run's own adapter."""

import pytest
import torch

from fedot.run import checkpoint
from fedot.run.replies import read_round
from fedot.settings import SettingError
from strategies.replay import replay_round
from support.inprocess import InProcessGrid, run_config, run_server


@pytest.fixture(scope="module")
def kept_run(tiny_models, tmp_path_factory):
    """One round of 4 data owners, one of them an attacker scaling its update by 10, another failing: every reply
    kept."""
    out = tmp_path_factory.mktemp("kept") / "run"
    rc = run_config(tiny_models["llama"], out, **{"num-rounds": 1, "keep-replies": True, "fault-byzantine": 0.25,
                                                 "fault-attack": "scale", "fault-strength": 10.0,
                                                 "eval-every": 1})
    rows, _ = run_server(rc, InProcessGrid(4, rc))
    return out, rows


def test_every_reply_is_kept_with_the_global_adapter_it_answered(kept_run):
    out, rows = kept_run
    (out / "replies" / "round-1" / "notes.json").write_text("{}")  # another file there is not a reply
    reference, records = read_round(out, 1)
    assert sorted(r["node"] for r in records) == sorted(rows[1]["sampled"])
    assert all(set(r["arrays"]["arrays"]) == set(reference) for r in records)
    assert all(list(r["arrays"]["arrays"]) == list(reference) for r in records)  # the order they were sent in
    assert all("num-examples" in r["metrics"]["metrics"] for r in records)


def test_replaying_the_runs_own_settings_gives_the_runs_adapter_bit_for_bit(kept_run):
    out, rows = kept_run
    outcome = replay_round(out, 1)
    adapter = checkpoint.load(out).adapter
    replayed = outcome.arrays.to_torch_state_dict()
    assert set(replayed) == set(adapter)  # (the checkpoint stores names sorted)
    assert all(torch.equal(replayed[k], adapter[k]) for k in adapter)
    for key in ("accepted", "rejected", "clipped", "num_examples", "influence"):
        assert outcome.row[key] == rows[1][key], key


def test_other_rules_aggregate_the_same_replies(kept_run):
    out, rows = kept_run
    runs = {rule: replay_round(out, 1, {"aggregation": rule, "max-norm-ratio": 0, "max-weight-ratio": 0})
            for rule in ("fedavg", "median")}
    plain, median = (runs[r].arrays.to_torch_state_dict() for r in ("fedavg", "median"))
    assert runs["fedavg"].row["accepted"] == runs["median"].row["accepted"]  # the same replies, all accepted
    assert len(runs["fedavg"].row["accepted"]) == 4
    assert any(not torch.equal(plain[k], median[k]) for k in plain)  # the attacker moves the mean, not the median
    _, records = read_round(out, 1)
    stacked = {k: torch.stack([r["arrays"]["arrays"][k] for r in records]) for k in plain}
    for k, v in median.items():  # Flower's FedMedian: numpy's coordinate-wise median (the middle two averaged)
        torch.testing.assert_close(v, torch.quantile(stacked[k].double(), 0.5, dim=0).to(v.dtype))


def test_a_replay_refuses_what_would_change_the_replies_or_the_privacy_budget(kept_run, tiny_models, tmp_path):
    out, _ = kept_run
    with pytest.raises(SettingError, match="the data owners trained with no rule settings"):
        replay_round(out, 1, {"aggregation": "fedprox"})
    with pytest.raises(SettingError, match="second noisy release"):
        replay_round(out, 1, {"dp": "server-fixed"})
    with pytest.raises(FileNotFoundError, match="round 2 never ran"):
        replay_round(out, 2)
    rc = run_config(tiny_models["llama"], tmp_path / "plain", **{"num-rounds": 1})
    run_server(rc, InProcessGrid(2, rc))
    with pytest.raises(FileNotFoundError, match="keep-replies = true"):
        replay_round(tmp_path / "plain", 1)


def test_a_reply_declaring_oversized_tensors_is_recorded_but_never_decoded(tmp_path):
    from flwr.app import ArrayRecord, MetricRecord, RecordDict

    from fedot.run.replies import keeping
    from support.replies import REF, reply, strategy_for

    _, sent = strategy_for(2)
    huge = RecordDict({"arrays": ArrayRecord({"w": torch.zeros(3000, 2000)}),  # 24 MB against a 32-byte adapter
                       "metrics": MetricRecord({"num-examples": 1})})
    small = RecordDict({"arrays": ArrayRecord(REF), "metrics": MetricRecord({"num-examples": 1})})
    passed = list(keeping([reply(sent[0], huge), reply(sent[1], small)], tmp_path, 1, REF, sent))
    assert len(passed) == 2  # both go on to validation unchanged
    _, records = read_round(tmp_path, 1)
    assert "more than" in records[0]["unreadable"] and not (tmp_path / "replies/round-1/0.arrays.safetensors").exists()
    assert set(records[1]["arrays"]["arrays"]) == set(REF)
