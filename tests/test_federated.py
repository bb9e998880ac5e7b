"""The ServerApp/ClientApp/strategy in process on tiny models: aggregation, bad replies, what is sent."""

import json
import math
import os
from pathlib import Path

import pytest
import torch
from flwr.app import ArrayRecord

from fedot.aggregation.average import weighted_average
from fedot.aggregation.schedule import lr_at
from fedot.architectures import architecture
from fedot.emulator import read_manifest
from fedot.evaluation.outcomes import metric_value, read_outcomes
from support.inprocess import InProcessGrid, outputs, run_config, run_in_process, run_server


def test_weighted_average_math():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.0])}
    b = {"w": torch.tensor([4.0, 8.0]), "b": torch.tensor([3.0])}
    avg = weighted_average([(a, 1), (b, 2)])
    torch.testing.assert_close(avg["w"], torch.tensor([3.0, 6.0]))
    torch.testing.assert_close(avg["b"], torch.tensor([2.0]))
    assert avg["w"].dtype == torch.float32


def test_lr_schedule_across_rounds():
    assert lr_at(1, 5, 1e-3) == lr_at(5, 5, 1e-3) == 1e-3
    assert lr_at(1, 5, 1e-3, "cosine") == pytest.approx(1e-3)
    assert lr_at(5, 5, 1e-3, "cosine") == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="schedule"):
        lr_at(2, 5, 1e-3, "linear")


def test_federated_round_trip_in_process(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("FEDOT_NODE_CACHE", str(tmp_path / "nodes"))
    rc = run_config(tiny_models["llama"], tmp_path / "run")
    grid = run_in_process(rc, 3)
    rows, results = outputs(rc)
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert {"zero_shot", "emulator_zero_shot"} <= set(rows[0]["evaluation"])
    for row in rows[1:]:
        assert len(row["accepted"]) == 3 and not row["rejected"] and row["aggregated"]
        assert {"plugin", "emulator_finetuned", "gap"} <= set(row["evaluation"])
        assert row["bytes_down"] == row["bytes_up"] > 0  # same adapter down and up, 3 clients each way
    # the emulator's bytes as delivery sent them (its files and manifest), once per node: round 1 only
    delivered = json.loads((Path(rc["run-dir"]) / "delivery.jsonl").read_text().splitlines()[0])
    assert rows[1]["emulator_bytes_down"] == delivered["bytes_sent"] > 3 * rows[0]["emulator_bytes"]
    assert rows[2]["emulator_bytes_down"] == 0
    assert all(math.isfinite(results["numbers"][k]) for k in ("zero_shot", "emulator_zero_shot", "emulator_finetuned",
                                                              "plugin"))
    again = {**rc, "run-dir": str(tmp_path / "again"), "num-rounds": 1}  # the nodes hold the emulator: nothing sent
    run_in_process(again, 3)
    assert outputs(again)[0][1]["emulator_bytes_down"] == 0
    out = Path(rc["run-dir"])
    assert (out / "adapter.safetensors").exists() and (out / "results.png").exists() and (out / "rounds.png").exists()
    # per-example outcomes of every evaluated round beside the log; the final five's in outcomes.json, tested pairwise
    assert sorted(p.name for p in (out / "outcomes").iterdir()) == ["r0.json", "r1.json", "r2.json"]
    final = read_outcomes(out / "outcomes.json")
    assert set(final) == {"zero_shot", "emulator_zero_shot", "emulator_finetuned", "plugin"}
    assert final["plugin"] == read_outcomes(out / "outcomes/r2.json")["plugin"]
    assert metric_value(final["plugin"], results["metric"]) == pytest.approx(results["numbers"]["plugin"])
    assert set(results["paired"]) == {"plug-in vs zero-shot", "plug-in vs OT emulator"}
    assert results["paired"]["plug-in vs zero-shot"]["value_a"] == pytest.approx(results["numbers"]["plugin"])
    # only adapter tensors travel in training Messages; the emulator went once per node by delivery Messages
    manifest = read_manifest(results["emulator"]["path"])
    arch = architecture("llama")
    for msg in grid.sent:
        names = list(msg.content["arrays"].keys())
        assert names and {arch.block_index(n) for n in names} <= set(manifest["adapter_blocks"])
        config = msg.content["config"]
        assert config["emulator-id"] == manifest["id"] and config["emulator-delivery"] == "message"
        assert "emulator-path" not in config
        assert config.count_bytes() < 1000
    # the byte accounting equals the sizes of the tensors actually sent
    for row in rows[1:]:
        sent = grid.sent[3 * (row["round"] - 1): 3 * row["round"]]  # 3 clients a round, in order
        assert row["bytes_down"] == sum(a.numpy().nbytes for m in sent for a in m.content["arrays"].values())
    # in-process every client shares one worker: the emulator was loaded once for all clients and rounds
    assert [r["emulator_loads_by_worker"] for r in rows[1:]] == [{str(os.getpid()): 1}] * 2
    # the default tracker (TensorBoard) holds every round's row and the final numbers, as rounds.jsonl and results
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard")).Reload()
    assert [(e.step, e.value) for e in events.Scalars("train_loss")] == [(r["round"], pytest.approx(r["train_loss"]))
                                                                         for r in rows[1:]]
    assert len(rows[1]["train_loss_by_owner"]) == 3 and "train_loss_by_owner/" + next(
        iter(rows[1]["train_loss_by_owner"])) in events.Tags()["scalars"]
    assert events.Scalars("final/plugin")[0].value == pytest.approx(results["numbers"]["plugin"])


def test_replies_are_averaged_as_they_arrive(tiny_models, tmp_path, monkeypatch):
    """With the relative bounds off, each reply is folded into the running sum before the next client runs: the
    server never holds a round (with them on, the default, the round's replies are held until it ends)."""
    from fedot.aggregation.average import RunningAverage
    from fedot.data_owner import worker

    events = []
    add = RunningAverage.add
    monkeypatch.setattr(RunningAverage, "add", lambda self, u, n: (events.append("add"), add(self, u, n))[1])
    calls = []
    real = worker.partition_indices
    monkeypatch.setattr(worker, "partition_indices", lambda *a, **k: (calls.append(a), real(*a, **k))[1])
    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"num-rounds": 2, "max-norm-ratio": 0.0,
                                                              "max-weight-ratio": 0.0})
    run_server(rc, InProcessGrid(3, rc, tamper=lambda node, reply: (events.append(node), reply)[1]))
    assert events[1::2] == ["add"] * 6 and sorted(events[0:6:2]) == sorted(events[6::2]) == [101, 102, 103]
    assert len(calls) == 1  # one worker computes the partitioning once for all its data owners and rounds


def test_streaming_grid_pulls_until_every_reply_or_timeout():
    from flwr.app import Message
    from flwr.app import RecordDict as RD

    from fedot_apps import streaming_grid

    class Link:  # replies become available two per pull; one message never gets a reply
        def __init__(self):
            self.pulls = 0

        def push_messages(self, messages):
            self.msgs = list(messages)
            for i, m in enumerate(self.msgs):
                m.metadata.__dict__["_message_id"] = f"m{i}"
            return [m.metadata.message_id for m in self.msgs]

        def pull_messages(self, ids):
            self.pulls += 1
            ready = [m for m in self.msgs[:4] if m.metadata.message_id in ids][:2]
            return [Message(RD(), reply_to=m) for m in ready]

    link = Link()
    grid = streaming_grid.StreamingGrid(link)
    msgs = [Message(RD(), dst_node_id=n, message_type="train") for n in range(5)]
    replies = grid.send_and_receive(msgs, timeout=1.2)
    assert link.pulls == 0  # lazy: nothing is pulled before the strategy reads
    got = [r.metadata.reply_to_message_id for r in replies]
    assert got == ["m0", "m1", "m2", "m3"]  # m4 never answered: given up at the timeout, not waited on forever


def test_aggregate_is_the_weighted_mean_of_replies(tiny_models, tmp_path):
    replies = {}

    def capture(node, reply):
        replies[node] = (reply.content["arrays"].to_torch_state_dict(), reply.content["metrics"]["num-examples"])
        return reply

    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"num-rounds": 1})
    run_server(rc, InProcessGrid(2, rc, tamper=capture))
    from fedot.plugin import load_adapter

    saved, _ = load_adapter(Path(rc["run-dir"]) / "adapter.safetensors")
    expected = weighted_average(list(replies.values()))
    for k in expected:
        torch.testing.assert_close(saved[k], expected[k])


def test_bad_and_failed_replies_are_dropped_with_reasons(tiny_models, tmp_path):
    def poison(node, reply):
        if node == 101:
            arrays = reply.content["arrays"].to_torch_state_dict()
            first = next(iter(arrays))
            arrays[first] = torch.full_like(arrays[first], float("nan"))
            reply.content["arrays"] = ArrayRecord(arrays)
        return reply

    rc = run_config(tiny_models["gpt2"], tmp_path / "run", **{"num-rounds": 1})
    rows, results = run_server(rc, InProcessGrid(4, rc, tamper=poison, fail_nodes=[102]))
    row = rows[1]
    assert sorted(row["accepted"]) == [103, 104]
    reasons = {r["node"]: r["reason"] for r in row["rejected"]}
    assert "NaN" in reasons[101] and "simulated crash" in reasons[102]
    assert all(math.isfinite(v) for v in results["numbers"].values())


def test_too_few_replies_keep_the_previous_adapter(tiny_models, tmp_path):
    from fedot.run.log import read_rows

    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"num-rounds": 1, "min-replies": 2})
    with pytest.raises(RuntimeError, match="no round aggregated"):  # and so the run fails: nothing to plug in
        run_server(rc, InProcessGrid(2, rc, fail_nodes=[101]))
    rows = read_rows(tmp_path / "run")
    assert rows[1]["aggregated"] is False and rows[1]["accepted"] == [102]
    assert "min-replies 2" in rows[1]["not_aggregated_reason"]


def test_lora_federated(tiny_models, tmp_path):
    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"num-rounds": 1, "tuning": "lora"})
    grid = InProcessGrid(2, rc)
    rows, results = run_server(rc, grid)
    assert all(".lora_" in n for n in grid.sent[0].content["arrays"].keys())
    assert rows[1]["bytes_up"] < 20_000


@pytest.mark.parametrize("overrides,match", [
    ({"run-dir": "relative/dir"}, "absolute"),
    ({"partitioning": "dirichlet"}, "dirichlet partitioning does not apply to pydocs"),
    ({"fraction-train": 0.0}, "fraction-train"),
    ({"tuning": "prefix"}, "choose one of full, lora, bitfit"),
    ({"emulator-blocks": 9}, "cannot keep"),
    ({"full-ft": "false"}, "must be true or false"),
    ({"num-rouds": 2}, "did you mean .num-rounds."),
    ({"min-replies": 3}, "can never be met"),
])
def test_bad_run_config_fails_before_the_model_loads(overrides, match, tiny_models, tmp_path):
    rc = run_config(tiny_models["opt"], tmp_path / "run", **overrides)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        run_server(rc, InProcessGrid(2, rc))


def test_local_epochs_and_step_accounting(tiny_models, tmp_path, monkeypatch):
    from support import datafix

    monkeypatch.delenv("FEDOT_DATA_DIR", raising=False)  # the run's data-dir key alone must lead to the data
    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"num-rounds": 1, "epochs": 1.0, "max-length": 32,
                                                             "full-ft": True, "full-ft-steps": 0, "task": "wikitext2",
                                                             "data-dir": str(datafix.write(tmp_path / "data"))})
    grid = InProcessGrid(2, rc)
    rows, results = run_server(rc, grid)
    sizes = [len(v) for v in grid.cache.examples.values()]
    assert rows[1]["client_steps"] == sum(-(-n // 2) for n in sizes)  # one epoch at batch 2 on each client
    assert results["client_steps"] == rows[1]["client_steps"] and "full_finetuned" in results["numbers"]
