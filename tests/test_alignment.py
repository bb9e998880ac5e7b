"""Per-round emulator alignment (FedBiOT): it lowers the distance it optimises, touches only the emulator's middle, and
a data owner is sent only the block files that changed."""

import json
from pathlib import Path

import pytest
import torch

from fedot.data_owner.tuning import TuningConfig, load_trainable_state, prepare, trainable_state
from fedot.delivery import NodeStore
from fedot.emulator import adapter_local, build_emulator, load_emulator, read_manifest, to_local, to_original
from fedot.emulator.alignment import AlignmentConfig
from fedot.emulator.artifact import ArtifactError
from fedot.emulator.shards import read_tensors, write_sharded
from fedot.models import load_model, load_tokenizer
from fedot.plugin import plug_in
from fedot.run import checkpoint
from fedot.run.config import FederatedConfig
from fedot.settings import SettingError
from support.inprocess import InProcessGrid, run_config, run_server

ALIGN = {"emulator-alignment": "fedbiot", "emulator-alignment-corpus": "pydocs", "emulator-alignment-steps": 6,
         "emulator-alignment-lr": 1e-3, "emulator-alignment-max-length": 32, "emulator-alignment-batch-size": 2,
         "emulator-chunk-mb": 0.05}


def moved_adapter(emulator, manifest) -> dict:
    """An adapter that moved away from the one the emulator was built with (as after some rounds)."""
    torch.manual_seed(1)
    return {k: v + 0.05 * torch.randn_like(v) for k, v in trainable_state(emulator, to_original(manifest)).items()}


@pytest.mark.parametrize("distance", ["global", "token"])
def test_alignment_lowers_the_distance_it_optimises_and_trains_only_the_middle(tiny_models, distance):
    model_dir = tiny_models["llama"]
    path = Path(build_emulator(str(model_dir), emulator_blocks=2, bottom=1, top=1))
    emulator, manifest = load_emulator(path)
    emulator = prepare(emulator, adapter_local(manifest), TuningConfig())
    adapter = moved_adapter(emulator, manifest)
    load_trainable_state(emulator, adapter, to_local=to_local(manifest))
    full = plug_in(load_model(model_dir), adapter, {"mode": "full", "adapter_blocks": manifest["adapter_blocks"]})
    before = {n: p.detach().clone() for n, p in emulator.named_parameters()}
    cfg = AlignmentConfig(method="fedbiot", corpus="pydocs", steps=8, lr=3e-3, max_length=32, batch_size=2,
                          distance=distance)
    record = cfg.build(load_tokenizer(path)).align(emulator, full, manifest, server_round=1)
    assert record["distance_after"]["objective"] < record["distance_before"]["objective"]
    assert record["distance_after"]["mse"] < record["distance_before"]["mse"]
    middle = {f"model.layers.{to_local(manifest)[i]}." for i in manifest["emulator_blocks"]}
    for name, p in emulator.named_parameters():
        moved = not torch.equal(p, before[name])
        assert moved == any(name.startswith(m) for m in middle), name  # the adapter, embeddings and head stay
        assert p.requires_grad == any(name.startswith(f"model.layers.{i}.") for i in adapter_local(manifest))
    assert set(record["tensors"]) == {n for n in before if any(n.startswith(m) for m in middle)}


def test_a_new_version_rewrites_only_the_changed_block_files(tiny_models, tmp_path):
    path = Path(build_emulator(str(tiny_models["llama"]), emulator_blocks=2, bottom=1, top=1))
    manifest = read_manifest(path)
    v0, written = write_sharded(path, tmp_path / "v0", manifest)
    assert "rest.safetensors" in written and len(written) == 5  # from the one-file layout: every shard is new
    tensors = read_tensors(tmp_path / "v0")
    name = "model.layers.2.mlp.up_proj.weight"
    update = {name: tensors[name] + 1, "model.norm.weight": tensors["model.norm.weight"]}
    v1, written = write_sharded(tmp_path / "v0", tmp_path / "v1", manifest, update)
    assert written == ["block-002.safetensors"]  # an unchanged replacement is not a change
    assert [f for f in v1["files"] if v1["files"][f] != v0["files"][f]] == ["block-002.safetensors"]
    model, _ = load_emulator(tmp_path / "v1", expected_id=v1["id"])
    assert torch.equal(dict(model.named_parameters())[name], tensors[name] + 1)
    with pytest.raises(ArtifactError, match="has no tensors"):
        write_sharded(tmp_path / "v1", tmp_path / "v2", manifest, {"model.layers.9.x.weight": tensors[name]})
    with pytest.raises(ArtifactError, match="shape"):
        write_sharded(tmp_path / "v1", tmp_path / "v2", manifest, {name: tensors[name][:1]})
    assert not (tmp_path / "v2").exists()


def test_a_node_reuses_only_identical_files_it_holds(tiny_models, tmp_path):
    path = Path(build_emulator(str(tiny_models["llama"]), emulator_blocks=2, bottom=1, top=1))
    v0, _ = write_sharded(path, tmp_path / "v0", read_manifest(path))
    tensors = read_tensors(tmp_path / "v0")
    v1, _ = write_sharded(tmp_path / "v0", tmp_path / "v1", read_manifest(path),
                          {"model.layers.1.mlp.up_proj.weight": tensors["model.layers.1.mlp.up_proj.weight"] * 2})
    store = NodeStore(tmp_path / "node")
    for name in v0["files"]:
        store.write(v0["id"], name, 0, (tmp_path / "v0" / name).read_bytes())
    store.write(v0["id"], "manifest.json", 0, (tmp_path / "v0" / "manifest.json").read_bytes())
    store.finish(v0["id"])
    reused = store.seed(v1["id"], v1["files"])
    held = store.held(v1["id"])
    assert "block-001.safetensors" not in held and set(held) == set(v1["files"]) - {"block-001.safetensors"}
    assert reused == sum((tmp_path / "v1" / f).stat().st_size for f in held)
    with pytest.raises(ArtifactError, match="not a plain file name"):
        store.seed(v1["id"], {"../../etc/passwd": v0["files"]["config.json"]})


def test_alignment_settings_that_cannot_work_are_refused():
    with pytest.raises(SettingError, match="url delivery serves"):
        FederatedConfig.from_run_config({"emulator-alignment": "fedbiot", "emulator-delivery": "url",
                                         "emulator-url": "file:///tmp/x"})
    with pytest.raises(SettingError, match="each tier would need its own alignment"):
        FederatedConfig.from_run_config({"emulator-alignment": "fedbiot", "emulator-tiers": "6,12"})


def test_a_federated_run_realigns_each_round_and_sends_only_the_changed_blocks(tiny_models, tmp_path):
    rc = run_config(tiny_models["llama"], tmp_path / "run", **ALIGN, **{"num-rounds": 3})
    grid = InProcessGrid(3, rc)
    rows, results = run_server(rc, grid)
    out = Path(rc["run-dir"])
    aligned = [r["alignment"] for r in rows[1:3]]
    assert "alignment" not in rows[3] and "emulator_update" not in rows[1]  # nobody trains after the last round
    for a in aligned:
        assert a["distance_after"]["objective"] < a["distance_before"]["objective"]
        assert a["owner_seconds"] > 0 and a["changed_files"] == ["block-001.safetensors", "block-002.safetensors"]
    for row, a in zip(rows[2:4], aligned):  # the next round brings each data owner the changed blocks only
        update = row["emulator_update"]
        assert update["artifact_id"] == a["emulator_id"] and update["failed"] == {}
        assert 3 * a["changed_bytes"] < update["bytes_sent"] < 3 * a["artifact_bytes"] / 2
        assert update["bytes_reused"] > update["bytes_sent"]
    trained_on = [{str(m.content["config"]["emulator-id"]) for m in grid.sent if
                   int(m.content["config"]["server-round"]) == r} for r in (1, 2, 3)]
    assert trained_on[1] == {aligned[0]["emulator_id"]} and trained_on[2] == {aligned[1]["emulator_id"]}
    for i in range(3):  # each node keeps the current version only
        assert NodeStore(tmp_path / "nodes" / f"partition-{i}").artifacts() == [aligned[1]["emulator_id"]]
    assert sorted(p.name for p in out.glob("emulator-r*")) == ["emulator-r2"]  # the owner too
    assert checkpoint.load(out).emulator == {"dir": "emulator-r2", "id": aligned[1]["emulator_id"]}
    assert read_manifest(out / "emulator-r2")["aligned"]["from"] == aligned[0]["emulator_id"]


def test_a_resumed_run_continues_with_the_realigned_emulator(tiny_models, tmp_path):
    rc = run_config(tiny_models["llama"], tmp_path / "run", **ALIGN, **{"num-rounds": 2})
    run_server(rc, InProcessGrid(2, rc))
    out = Path(rc["run-dir"])
    current = checkpoint.load(out).emulator
    (out / "results.json").unlink()
    resumed = {**rc, "num-rounds": 3, "resume": True}
    grid = InProcessGrid(2, resumed)
    rows, _ = run_server(resumed, grid)
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    third = {str(m.content["config"]["emulator-id"]) for m in grid.sent
             if int(m.content["config"]["server-round"]) == 3}
    assert third == {current["id"]}  # the version the checkpoint names, not a rebuilt one
    lines = [json.loads(x) for x in (out / "delivery.jsonl").read_text().splitlines()]
    assert lines[-1]["artifact_id"] == current["id"] and lines[-1]["bytes_sent"] == 0  # the nodes hold it already


def test_the_memory_plan_adds_the_owners_alignment(tiny_models):
    from fedot.emulator.split import sandwich
    from fedot.memory import alignment_bytes
    from fedot.models import load_config
    from fedot.run.plan import run_plan

    config = load_config(tiny_models["llama"])
    split = sandwich(6, 1, 1, 2)
    middle = sum(p.numel() for n, p in load_model(tiny_models["llama"]).named_parameters()
                 if any(n.startswith(f"model.layers.{i}.") for i in split.emulator))

    def floor(batch, length):  # what alignment must hold whatever the modelling code: fp32 gradients + two AdamW
        tokens = batch * length  # moments of the middle, the teacher's hidden states (every block's) and both models'
        return 12 * middle + (6 + 1) * tokens * config.hidden_size * 4 + 2 * tokens * config.vocab_size * 4  # logits

    assert alignment_bytes(config, split, 2, 16, "cpu") > floor(2, 16)
    more = alignment_bytes(config, split, 4, 16, "cpu") - alignment_bytes(config, split, 2, 16, "cpu")
    assert more >= floor(2, 16) - 12 * middle  # the per-token terms grow with the batch; the optimizer state does not
    cfg = FederatedConfig.from_run_config({"model": str(tiny_models["llama"]), "emulator-blocks": 2, "bottom": 1,
                                           "top": 1})
    without = run_plan(cfg, "cpu")[0]
    assert "alignment" not in without.parts
    cfg.alignment.method = "fedbiot"
    owner = run_plan(cfg, "cpu")[0]
    assert owner.total - without.total == owner.parts["alignment"] > floor(cfg.alignment.batch_size,
                                                                           cfg.alignment.max_length)
    assert {k: v for k, v in owner.parts.items() if k != "alignment"} == without.parts  # nothing else changes
