"""No reply can crash the owner; Flower's aggregation rules behind fedot's checks; fault injection; resume."""

import json
import math
from pathlib import Path

import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from safetensors.torch import load_file

from fedot.aggregation.average import weighted_average
from fedot.aggregation.rules import RULES
from fedot.data_owner.faults import ATTACKS, FaultConfig, malicious_partitions, plan
from support.inprocess import InProcessGrid, run_config, run_server
from support.replies import REF, good, honest, reply, strategy_for


def malformed():
    """(content or error, expected reason fragment): 24 distinct ways a reply can be wrong."""
    state, _ = honest(1.0)
    bad = []

    def with_arrays(arrays, **metrics):
        return RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 5, **metrics})})

    def with_state(**change):
        return with_arrays(ArrayRecord({**state, **change}))

    bad.append((RecordDict({"metrics": MetricRecord({"num-examples": 5})}), "records 'arrays' and 'metrics'"))
    bad.append((RecordDict({"arrays": ArrayRecord(state)}), "records 'arrays' and 'metrics'"))
    bad.append((RecordDict({}), "records 'arrays' and 'metrics'"))
    bad.append((RecordDict({"arrays": MetricRecord({"w": 1.0}), "metrics": MetricRecord({"num-examples": 5})}),
                "must be an ArrayRecord"))
    bad.append((RecordDict({"arrays": ArrayRecord(state), "metrics": ConfigRecord({"num-examples": 5})}),
                "must be a MetricRecord"))
    bad.append((RecordDict({"arrays": ArrayRecord(state), "metrics": ArrayRecord(state)}), "must be a MetricRecord"))
    bad.append((RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord({"num-examples": 5}),
                            "evil": ConfigRecord({"x": 1})}), "nothing else"))
    bad.append((RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord({"num-examples": 5}),
                            "fault": ArrayRecord(state)}), "'fault' must be a ConfigRecord"))
    bad.append((RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord({"train-steps": 3})}),
                "lack 'num-examples'"))
    for value, why in [(float("nan"), "finite"), (float("inf"), "finite"), (-4, "positive"), (0, "positive"),
                       ([1.0, 2.0], "single number")]:
        bad.append((with_arrays(ArrayRecord(state), **{"num-examples": value}), why))
    bad.append((with_arrays(ArrayRecord(state), **{"train-steps": float("nan")}), "'train-steps' must be a finite"))
    bad.append((with_arrays(ArrayRecord(state), **{"train-loss": float("-inf")}), "'train-loss' must be a finite"))
    bad.append((with_arrays(ArrayRecord({"w": state["w"]})), "missing ['b']"))
    bad.append((with_state(extra=torch.zeros(1)), "unexpected ['extra']"))
    bad.append((with_state(w=torch.zeros(3000, 2000)), "has shape (3000, 2000)"))
    bad.append((with_state(w=torch.zeros(3, 2, dtype=torch.float64)), "dtype"))
    bad.append((with_state(w=torch.zeros(3, 2, dtype=torch.int64)), "dtype"))
    bad.append((with_state(b=torch.tensor([1.0, float("nan")])), "NaN or Inf"))
    bad.append((with_state(b=torch.tensor([float("inf"), 0.0])), "NaN or Inf"))
    corrupt = ArrayRecord(state)
    corrupt["w"] = Array(dtype="float32", shape=(3, 2), stype="numpy.ndarray", data=b"\x00\x01")
    bad.append((with_arrays(corrupt), "cannot be read"))
    bad.append(("client crashed: CUDA out of memory", "client failed"))
    return bad


def test_malformed_replies_are_rejected_and_the_honest_average_stands():
    bad = malformed()
    assert len(bad) >= 20
    s, sent = strategy_for(len(bad) + 2)
    (a, na), (b, nb) = honest(1.0, 10), honest(4.0, 30)
    replies = [reply(sent[0], good(a, na)), reply(sent[1], good(b, nb))]
    for msg, (content, _) in zip(sent[2:], bad):
        replies.append(reply(msg, error=content) if isinstance(content, str) else reply(msg, content))
    outcome = s.aggregate_round(1, replies)
    row = outcome.row
    assert row["aggregated"] and row["accepted"] == [sent[0].metadata.dst_node_id, sent[1].metadata.dst_node_id]
    reasons = {r["node"]: r["reason"] for r in row["rejected"]}
    for msg, (_, why) in zip(sent[2:], bad):
        assert why in reasons[msg.metadata.dst_node_id], (why, reasons[msg.metadata.dst_node_id])
    expected = weighted_average([(a, na), (b, nb)])
    for k, v in outcome.arrays.to_torch_state_dict().items():
        torch.testing.assert_close(v, expected[k])


def test_example_weight_is_capped_so_one_client_cannot_take_the_mean():
    s, sent = strategy_for(3, max_example_weight=100, max_norm_ratio=0)  # the absolute cap alone
    replies = [reply(sent[i], good(*honest(v, 50))) for i, v in enumerate((1.0, 1.0))]
    replies.append(reply(sent[2], good(honest(1000.0)[0], 1e300)))  # overflowed a float32 sum before
    outcome = s.aggregate_round(1, replies)
    w = outcome.arrays.to_torch_state_dict()["w"]
    assert torch.isfinite(w).all() and w.mean().item() == pytest.approx((50 + 50 + 100 * 1000) / 200)


@pytest.mark.parametrize("action", ["reject", "clip"])
def test_far_updates_are_rejected_or_clipped(action):
    s, sent = strategy_for(2, max_update_norm=1.0, update_norm_action=action)
    far = {"w": torch.full((3, 2), 10.0), "b": torch.zeros(2)}
    outcome = s.aggregate_round(1, [reply(sent[0], good(*honest(0.1))), reply(sent[1], good(far, 10))])
    if action == "reject":
        assert "exceeds max-update-norm" in outcome.row["rejected"][0]["reason"]
    else:
        assert outcome.row["clipped"] == [sent[1].metadata.dst_node_id]
        clipped_w = 2 * outcome.arrays.to_torch_state_dict()["w"] - 0.1  # mean of the two, equal weights
        assert clipped_w.norm().item() == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("rule", sorted(RULES.names()))
def test_every_rule_is_flowers_and_survives_one_attacker(rule):
    import flwr.serverapp.strategy as flower

    options = {"malicious": 1} if rule in ("krum", "multikrum", "bulyan") else {}
    s, sent = strategy_for(7, rule=rule, max_norm_ratio=0, max_weight_ratio=0, **options)  # the rule alone
    assert isinstance(s.flower_rule, flower.FedAvg)  # Flower's own class, not a re-implementation
    replies = [reply(sent[i], good(*honest(1.0 + 0.01 * i))) for i in range(6)]
    replies.append(reply(sent[6], good(honest(50.0)[0], 10)))
    outcome = s.aggregate_round(1, replies)
    assert outcome.row["aggregated"] and outcome.row["aggregation"] == rule
    w = outcome.arrays.to_torch_state_dict()["w"]
    assert torch.isfinite(w).all()
    if rule in ("median", "trimmed-mean", "krum", "multikrum", "bulyan"):
        assert w.max().item() < 1.1  # the attacker's 50 did not get in
    if rule == "fedavg":
        assert w.mean().item() > 7  # plain averaging is pulled far off: why the others exist


def test_fedavgm_multiplies_the_mean_update_from_each_rounds_global_adapter():
    from support.replies import Nodes

    s, sent = strategy_for(2, rule="fedavgm", server_lr=3.0, max_norm_ratio=0, max_weight_ratio=0)
    first = s.aggregate_round(1, [reply(sent[0], good(*honest(1.0))), reply(sent[1], good(*honest(2.0)))])
    assert first.arrays.to_torch_state_dict()["w"].mean().item() == pytest.approx(3.0 * 1.5)  # 0 + 3 x mean delta
    sent = list(s.configure_train(2, first.arrays, ConfigRecord({}), Nodes(2)))
    for i, m in enumerate(sent):
        m.metadata.__dict__["_message_id"] = f"r2m{i}"
    second = s.aggregate_round(2, [reply(m, good(*honest(5.5))) for m in sent])
    assert second.arrays.to_torch_state_dict()["b"].mean().item() == pytest.approx(4.5 + 3.0 * 1.0)


def test_a_rule_that_cannot_aggregate_keeps_the_adapter():
    s, sent = strategy_for(3, rule="bulyan", malicious=0)
    s.flower_rule.num_malicious_nodes = 1  # more assumed attackers than replies allow (pre-flight refuses this)
    outcome = s.aggregate_round(1, [reply(m, good(*honest(1.0))) for m in sent])
    assert outcome.arrays is None and "bulyan" in outcome.row["not_aggregated_reason"]


def test_a_non_finite_aggregate_never_replaces_the_adapter(monkeypatch):
    s, sent = strategy_for(2, rule="median")
    monkeypatch.setattr(s.flower_rule, "aggregate_train",
                        lambda r, m: (ArrayRecord({"w": torch.full((3, 2), float("nan")), "b": torch.zeros(2)}), None))
    outcome = s.aggregate_round(1, [reply(m, good(*honest(1.0))) for m in sent])
    assert outcome.arrays is None and outcome.row["not_aggregated_reason"] == "the aggregate is not finite"


def test_rules_needing_more_replies_are_refused_before_start(tiny_models, tmp_path):
    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"aggregation": "bulyan", "bulyan-malicious": 1})
    with pytest.raises(ValueError, match="needs at least 7 replies per round"):
        run_server(rc, InProcessGrid(2, rc))


def test_fault_plan_is_deterministic_and_exact():
    cfg = FaultConfig(dropout=0.3, straggler_s=2.0, byzantine=0.3)
    plans = [[plan(cfg, 0, r, node, node, 10) for node in range(10)] for r in range(1, 21)]
    assert plans == [[plan(cfg, 0, r, node, node, 10) for node in range(10)] for r in range(1, 21)]
    drops = sum(p.get("dropout", False) for ps in plans for p in ps)
    assert 35 < drops < 85  # ~30% of 200
    assert all(0 <= p["delay_s"] <= 2.0 for ps in plans for p in ps)
    assert len(malicious_partitions(cfg, 0, 10)) == 3 and malicious_partitions(cfg, 0, 10) != \
        malicious_partitions(cfg, 1, 10)
    assert {sum("attack" in p for p in ps) for ps in plans} == {3}  # the same 3 attack every round


@pytest.mark.parametrize("attack", sorted(ATTACKS.names()))
def test_each_attack_sends_what_it_says(attack):
    state, n = honest(1.0)
    out, n2 = ATTACKS[attack](state, REF, n, 10.0, torch.Generator().manual_seed(0))
    delta = {k: state[k] - REF[k] for k in REF}
    if attack in ("scale", "sign-flip"):  # the honest delta times +-strength
        sign = 1 if attack == "scale" else -1
        assert n2 == n and all(torch.allclose(out[k] - REF[k], sign * 10.0 * delta[k]) for k in REF)
    elif attack == "gaussian":  # noise of strength x the delta's std around the reference, nothing of the update
        ref = {"w": torch.zeros(50, 40)}
        honest_state = {"w": torch.randn(50, 40, generator=torch.Generator().manual_seed(1)) * 0.1}
        out, n2 = ATTACKS[attack](honest_state, ref, n, 10.0, torch.Generator().manual_seed(0))
        noise, expected = out["w"].flatten(), 10.0 * honest_state["w"].std().item()
        assert n2 == n and abs(noise.std().item() / expected - 1) < 0.1  # 2,000 draws: 10% is 6 standard errors
        assert abs(torch.corrcoef(torch.stack([noise, honest_state["w"].flatten()]))[0, 1].item()) < 0.1
    elif attack == "nan":  # exactly one tensor poisoned, the rest honest
        poisoned = [k for k in REF if torch.isnan(out[k]).all()]
        assert len(poisoned) == 1 and all(torch.equal(out[k], state[k]) for k in REF if k not in poisoned)
    elif attack == "examples-inflation":  # an honest update claiming strength x 1e6 times its examples
        assert n2 == n * 10.0 * 1e6 and all(torch.equal(out[k], state[k]) for k in REF)
    else:
        pytest.fail(f"attack {attack!r} has no check of what it sends")


def test_injected_faults_are_recorded(tiny_models, tmp_path):
    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"num-rounds": 2, "fault-byzantine": 0.5,
                                                             "fault-attack": "nan", "fault-dropout": 0.3})
    rows, results = run_server(rc, InProcessGrid(4, rc))
    for row in rows[1:]:
        attacked = {f["node"] for f in row["faults"] if f.get("attack") == "nan"}
        dropped = {f["node"] for f in row["faults"] if f.get("dropout")}
        assert len(attacked | dropped) >= 2 and not (attacked | dropped) & set(row["accepted"])
        reasons = {r["node"]: r["reason"] for r in row["rejected"]}
        assert all("NaN" in reasons[n] for n in attacked) and all("injected fault" in reasons[n] for n in dropped)
    assert math.isfinite(results["numbers"]["plugin"])


def test_resume_continues_from_the_checkpoint(tiny_models, tmp_path):
    from fedot.run import checkpoint

    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"num-rounds": 2})
    run_server(rc, InProcessGrid(2, rc))
    out = Path(rc["run-dir"])
    ck = checkpoint.load(out)
    assert ck.round == 2 and json.loads((out / "run_config.json").read_text())["num-rounds"] == 2
    with pytest.raises(RuntimeError, match="already holds a run"):  # a second run into it is refused
        run_server(rc, InProcessGrid(2, rc))
    (out / "results.json").unlink()
    resumed = {**rc, "num-rounds": 3, "resume": True}
    rows, results = run_server(resumed, InProcessGrid(2, resumed))
    assert [r["round"] for r in rows] == [0, 1, 2, 3] and checkpoint.load(out).round == 3
    # the resumed run ends where an uninterrupted 3-round run ends, tensor by tensor and number by number
    whole = {**rc, "num-rounds": 3, "run-dir": str(tmp_path / "whole")}
    whole_rows, whole_results = run_server(whole, InProcessGrid(2, whole))
    a, b = load_file(out / "adapter.safetensors"), load_file(tmp_path / "whole" / "adapter.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
    assert results["numbers"] == pytest.approx(whole_results["numbers"], rel=1e-6)
    assert [r["train_loss"] for r in rows[1:]] == pytest.approx([r["train_loss"] for r in whole_rows[1:]], rel=1e-6)


def test_a_run_with_no_aggregated_round_fails_and_writes_no_result(tiny_models, tmp_path):
    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"num-rounds": 1})
    with pytest.raises(RuntimeError, match="no round aggregated"):
        run_server(rc, InProcessGrid(2, rc, fail_nodes=[101, 102]))
    assert not (Path(rc["run-dir"]) / "results.json").exists()
    assert not (Path(rc["run-dir"]) / "adapter.safetensors").exists()


def test_each_client_draws_new_batches_every_round(tiny_models, tmp_path, monkeypatch):
    """A data owner's seed depends on the round: `seed + partition` replayed the same batches every round, and made
    (seed 0, partition 1) the same stream as (seed 1, partition 0)."""
    from fedot.data_owner import worker

    seeds = []
    real = worker.train
    monkeypatch.setattr(worker, "train", lambda *a, **k: (seeds.append((k["desc"], k["seed"])), real(*a, **k))[1])
    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"num-rounds": 2})
    run_server(rc, InProcessGrid(2, rc))
    by_client = {}
    for client, seed in seeds:
        by_client.setdefault(client, []).append(seed)
    assert all(len(set(s)) == 2 for s in by_client.values())  # round 1 and round 2 differ for every client
    assert worker.round_seed(0, 1, 1) != worker.round_seed(1, 1, 0)


def test_fedprox_sends_mu_and_pulls_toward_the_global_adapter(tiny_models, tmp_path):
    from fedot.aggregation.validate import update_norm
    from fedot.data_owner.worker import WorkerCache, data_owner_config, local_round
    from fedot.emulator import build_emulator, read_manifest

    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"num-rounds": 1, "aggregation": "fedprox",
                                                             "fedprox-mu": 0.5})
    grid = InProcessGrid(2, rc)
    rows, _ = run_server(rc, grid)
    assert grid.sent[0].content["config"]["proximal-mu"] == 0.5 and rows[1]["aggregated"]
    # the term itself: the same local round from the same global adapter, with and without it
    emulator = build_emulator(str(tiny_models["opt"]), tmp_path / "emu", bottom=1, top=1, emulator_blocks=2)
    reference = grid.sent[0].content["arrays"].to_torch_state_dict()
    cfg = data_owner_config({**rc, "steps": 10})
    moved = {mu: update_norm(local_round(WorkerCache(), str(emulator), read_manifest(emulator)["id"], reference, cfg,
                                         partition_id=0, num_partitions=2, lr=1e-2, proximal_mu=mu)[0], reference)
             for mu in (0.0, 50.0)}
    assert 0 < moved[50.0] < 0.8 * moved[0.0]


def test_sampled_clients_that_never_replied_are_logged_as_timed_out():
    s, sent = strategy_for(3)
    outcome = s.aggregate_round(1, [reply(sent[0], good(*honest(1.0)))])  # the grid gave up on the other two
    late = sorted(m.metadata.dst_node_id for m in sent[1:])
    assert outcome.row["timed_out"] == late and outcome.row["aggregated"]
    assert {r["node"] for r in outcome.row["rejected"] if "timed out" in r["reason"]} == set(late)
