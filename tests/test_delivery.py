"""The emulator's way to the data owners: message chunks, URL downloads, the node's verified store, and what a
ClientApp may read (nothing of the owner but the artifact)."""

import json
import threading
from pathlib import Path

import pytest

from fedot.data_owner import worker
from fedot.data_owner.worker import DataOwnerConfig
from fedot.delivery import NodeStore, url
from fedot.emulator import build_emulator, read_manifest
from fedot.emulator.artifact import MANIFEST, ArtifactError
from fedot.settings import SettingError, declarations
from support.inprocess import InProcessGrid, run_config, run_server

CHUNK = {"emulator-chunk-mb": 0.05}  # a tiny model's artifact (~250 kB) in several chunks


def deliveries(rc) -> list[dict]:
    return [json.loads(line) for line in (Path(rc["run-dir"]) / "delivery.jsonl").read_text().splitlines()]


def stores(tmp_path, grid) -> dict[int, NodeStore]:
    return {n: NodeStore(tmp_path / "nodes" / f"partition-{i}") for i, n in enumerate(grid.nodes)}


def test_message_delivery_sends_each_node_the_artifact_once_in_chunks(tiny_models, tmp_path):
    rc = run_config(tiny_models["llama"], tmp_path / "run", **CHUNK)
    grid = InProcessGrid(3, rc)
    rows, results = run_server(rc, grid)
    record = deliveries(rc)[0]
    manifest = read_manifest(results["emulator"]["path"])
    assert record["mode"] == "message" and record["failed"] == {} and record["artifact_id"] == manifest["id"]
    assert record["bytes_sent"] == 3 * record["artifact_bytes"]
    sizes = [sum(len(a.numpy()) for a in m.content["chunk"].values()) for m in grid.queries
             if "chunk" in m.content.array_records]
    assert max(sizes) <= 0.05 * 2**20 and len(sizes) >= 3 * 4  # bounded Messages, several per node
    for store in stores(tmp_path, grid).values():
        assert store.artifacts() == [manifest["id"]]  # exactly once, verified
    assert all(len(r["accepted"]) == 3 for r in rows[1:])
    # a second run finds the artifact in every node's store: nothing is sent again
    rc2 = {**rc, "run-dir": str(tmp_path / "run2")}
    run_server(rc2, InProcessGrid(3, rc2))
    again = deliveries(rc2)[0]
    assert again["bytes_sent"] == 0 and all(n.get("cached") for n in again["nodes"].values())


def test_an_interrupted_delivery_continues_where_it_stopped(tiny_models, tmp_path):
    rc = run_config(tiny_models["llama"], tmp_path / "run", **CHUNK)
    emulator = Path(build_emulator(str(tiny_models["llama"]), emulator_blocks=2, bottom=1, top=1))
    aid = read_manifest(emulator)["id"]
    held = (emulator / "model.safetensors").read_bytes()[:100_000]
    NodeStore(tmp_path / "nodes" / "partition-0").write(aid, "model.safetensors", 0, held)
    grid = InProcessGrid(2, rc)
    run_server(rc, grid)
    record = deliveries(rc)[0]
    assert record["artifact_id"] == aid and record["failed"] == {}
    assert record["bytes_sent"] == 2 * record["artifact_bytes"] - len(held)


def test_a_corrupted_chunk_is_discarded_and_that_data_owner_rejected_with_the_reason(tiny_models, tmp_path):
    class Corrupting(InProcessGrid):
        def _reply(self, msg):
            if msg.metadata.dst_node_id == self.nodes[1] and "chunk" in msg.content.array_records:
                record = msg.content["chunk"]
                data = record["0"].numpy().copy()
                data[len(data) // 2] ^= 0xFF  # one flipped byte in transit
                record["0"] = type(record["0"])(data)
            return super()._reply(msg)

    rc = run_config(tiny_models["llama"], tmp_path / "run", **CHUNK)
    grid = Corrupting(3, rc)
    rows, _ = run_server(rc, grid)
    bad = grid.nodes[1]
    assert "failed verification" in deliveries(rc)[0]["failed"][str(bad)]
    assert stores(tmp_path, grid)[bad].artifacts() == [] and stores(tmp_path, grid)[bad].held(_aid(rc)) == {}
    for row in rows[1:]:
        assert sorted(row["accepted"]) == sorted(n for n in grid.nodes if n != bad)
        reason = next(r["reason"] for r in row["rejected"] if r["node"] == bad)
        assert "not delivered" in reason


def test_a_delivery_cut_off_mid_way_is_completed_before_that_node_trains(tiny_models, tmp_path):
    """Node 1's worker dies on its third chunk (an error reply): the start-up delivery records it failed; before
    round 1 the owner delivers again and sends only what the node does not hold; the node then trains every round."""
    class DyingOnce(InProcessGrid):
        chunks = 0

        def _reply(self, msg):
            if msg.metadata.dst_node_id == self.nodes[1] and "chunk" in msg.content.array_records:
                self.chunks += 1
                if self.chunks == 3:
                    return Message(Error(code=1, reason="worker killed"), reply_to=msg)
            return super()._reply(msg)

    from flwr.app import Error, Message

    rc = run_config(tiny_models["llama"], tmp_path / "run", **CHUNK)
    grid = DyingOnce(3, rc)
    rows, _ = run_server(rc, grid)
    first, retry = deliveries(rc)[:2]
    node = grid.nodes[1]
    assert list(first["failed"]) == [str(node)] and "worker killed" in first["failed"][str(node)]
    held = first["nodes"][str(node)]["bytes"]  # the two chunks that arrived
    assert 0 < held < first["artifact_bytes"]
    assert retry["retry"] and retry["failed"] == {} and list(retry["nodes"]) == [str(node)]
    assert retry["bytes_sent"] == first["artifact_bytes"] - held  # only the rest
    assert rows[1]["emulator_catch_up"]["retried"][0]["nodes"] == 1
    assert all(sorted(r["accepted"]) == sorted(grid.nodes) for r in rows[1:])
    assert stores(tmp_path, grid)[node].artifacts() == [first["artifact_id"]]
    assert "emulator_catch_up" not in rows[2]  # nothing more to send


def test_a_node_that_connects_after_the_start_gets_its_emulator_then_trains(tiny_models, tmp_path):
    """A SuperNode restarted without a key comes back under a new node id: it is delivered to at its first round."""
    class Growing(InProcessGrid):
        def push_messages(self, messages):
            messages = list(messages)
            if any(m.metadata.message_type == "train" for m in messages) and len(self.nodes) == 2:
                self.nodes.append(999)  # connects during round 1: sampled from round 2
            return super().push_messages(messages)

    rc = run_config(tiny_models["llama"], tmp_path / "run", **CHUNK, **{"num-rounds": 2})
    grid = Growing(2, rc, node_config={n: {"num-partitions": 3} for n in (101, 102, 999)})
    grid.node_config[999]["partition-id"] = 2
    rows, _ = run_server({**rc, "num-clients": 2}, grid)
    assert sorted(rows[1]["accepted"]) == [101, 102]
    assert rows[2]["emulator_catch_up"]["joined"] == {"nodes": [999], "failed": {}}
    assert sorted(rows[2]["accepted"]) == [101, 102, 999]
    late = deliveries(rc)[-1]
    assert late["nodes"] == {"999": late["nodes"]["999"]} and late["bytes_sent"] == late["artifact_bytes"]


def _aid(rc) -> str:
    return deliveries(rc)[0]["artifact_id"]


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a/b", "..", ""])
def test_the_store_refuses_file_names_that_are_paths(tmp_path, name):
    with pytest.raises(ArtifactError, match="plain file name"):
        NodeStore(tmp_path).write("0" * 64, name, 0, b"x")


def test_the_store_refuses_gaps_and_ids_that_are_not_hashes(tmp_path):
    store = NodeStore(tmp_path)
    with pytest.raises(ArtifactError, match="resend from 0"):
        store.write("0" * 64, "model.safetensors", 10, b"x")
    with pytest.raises(ArtifactError, match="sha256"):
        store.write("../../x", "model.safetensors", 0, b"x")


def test_client_app_reads_nothing_of_the_owner(tiny_models, tmp_path, monkeypatch):
    """Data owners see only their own run-config keys and never the owner's cache (which holds the full model)."""
    rc = run_config(tiny_models["llama"], tmp_path / "run")
    loaded = []
    real = worker.load_tunable
    monkeypatch.setattr(worker, "load_tunable", lambda path, *a, **k: (loaded.append(Path(path)), real(path, *a,
                                                                                                    **k))[1])

    class OwnerBlind(InProcessGrid):
        def _reply(self, msg):
            monkeypatch.setenv("FEDOT_CACHE", str(tmp_path / "not-the-owners"))  # the owner's cache is out of reach
            try:
                return super()._reply(msg)
            finally:
                monkeypatch.setenv("FEDOT_CACHE", str(tmp_path / "cache"))

    keys = {d.key for d in declarations(DataOwnerConfig)}
    assert not {"model", "run-dir", "emulator-blocks", "bottom"} & keys
    grid = OwnerBlind(2, rc, client_keys=keys)
    rows, _ = run_server(rc, grid)
    assert all(len(r["accepted"]) == 2 for r in rows[1:])
    assert loaded and all((tmp_path / "nodes") in p.parents for p in loaded)
    assert not (tmp_path / "not-the-owners").exists()


def test_a_lossless_emulator_is_refused_unless_allowed(tiny_models, tmp_path):
    rc = run_config(tiny_models["llama"], tmp_path / "run", **{"emulator-blocks": -1})
    with pytest.raises(SettingError, match="ships the full model"):
        run_server(rc, InProcessGrid(2, rc))
    assert not (tmp_path / "nodes").exists()  # refused before anything was built or sent
    rc = run_config(tiny_models["llama"], tmp_path / "run2", **{"emulator-blocks": -1,
                                                                "allow-lossless-emulator": True, "num-rounds": 1})
    rows, _ = run_server(rc, InProcessGrid(2, rc))
    assert rows[1]["aggregated"]


@pytest.fixture
def published(tiny_models, tmp_path):
    """An emulator served over HTTP with Range support, as `fedot emulator serve` does."""
    emulator = Path(build_emulator(str(tiny_models["llama"]), emulator_blocks=2, bottom=1, top=1))
    httpd = url.server(emulator)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield emulator, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_url_delivery_downloads_once_per_node_and_verifies(tiny_models, tmp_path, published):
    emulator, base = published
    rc = run_config(tiny_models["llama"], tmp_path / "run", **{"emulator-delivery": "url", "emulator-url": base})
    grid = InProcessGrid(2, rc)
    rows, _ = run_server(rc, grid)
    aid = read_manifest(emulator)["id"]
    assert all(len(r["accepted"]) == 2 for r in rows[1:]) and not grid.queries
    assert all(s.artifacts() == [aid] for s in stores(tmp_path, grid).values())
    assert grid.sent[0].content["config"]["emulator-url"] == base


def test_url_download_resumes_a_partial_file(published, tmp_path):
    emulator, base = published
    aid = read_manifest(emulator)["id"]
    store = NodeStore(tmp_path / "node")
    whole = (emulator / "model.safetensors").read_bytes()
    part = store.incoming(aid)
    part.mkdir(parents=True)
    (part / "model.safetensors").write_bytes(whole[:1000])
    moved = url.download(f"{base}/model.safetensors", part / "model.safetensors", progress=False)
    assert moved == len(whole) - 1000 and (part / "model.safetensors").read_bytes() == whole
    assert url.fetch(base, aid, store, progress=False) == store.ready(aid)
    file_store = NodeStore(tmp_path / "file-node")  # file:// works the same way
    assert url.fetch(emulator.as_uri(), aid, file_store, progress=False) == file_store.ready(aid)


def test_url_serving_another_artifact_is_refused(published, tmp_path, tiny_models):
    emulator, base = published
    with pytest.raises(ArtifactError, match="serves another"):
        url.fetch(base, "f" * 64, NodeStore(tmp_path / "node"), progress=False)
    rc = run_config(tiny_models["llama"], tmp_path / "run", **{"emulator-delivery": "url", "emulator-url": base,
                                                               "emulator-blocks": 3})
    with pytest.raises(ArtifactError, match="publish"):  # the owner checks before round 1
        run_server(rc, InProcessGrid(2, rc))
    assert not (tmp_path / "run" / "rounds.jsonl").exists()


def test_url_delivery_needs_a_url():
    from fedot.run.config import FederatedConfig

    with pytest.raises(SettingError, match="emulator-url"):
        FederatedConfig.from_run_config({"emulator-delivery": "url"})
    with pytest.raises(SettingError, match="http"):
        FederatedConfig.from_run_config({"emulator-delivery": "url", "emulator-url": "ftp://x"})


def test_a_manifest_from_the_url_is_checked_before_any_file(published, tmp_path):
    emulator, _ = published
    aid = read_manifest(emulator)["id"]
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / MANIFEST).write_text((emulator / MANIFEST).read_text().replace('"format"', '"extra": 1, "format"'))
    with pytest.raises(ArtifactError, match="serves another"):
        url.fetch(fake.as_uri(), aid, NodeStore(tmp_path / "node"), progress=False)


def test_fedot_sim_refuses_a_lossless_emulator_before_flower_starts(tiny_models, tmp_path):
    from fedot.run.launch import preflight
    from fedot.run.sim_folder import Sim

    overrides = {"model": str(tiny_models["llama"]), "bottom": 1, "top": 1, "data-dir": ""}
    with pytest.raises(SettingError, match="allow-lossless-emulator"):
        preflight(Sim("sims/quickstart"), {**overrides, "emulator-blocks": -1})
    with pytest.raises(SettingError, match="allow-lossless-emulator"):
        preflight(Sim("sims/quickstart"), {**overrides, "emulator-blocks": 4})  # 4 of 4 middle blocks: all of them
    preflight(Sim("sims/quickstart"), {**overrides, "emulator-blocks": 3})
    preflight(Sim("sims/quickstart"), {**overrides, "emulator-blocks": 4, "emulator-method": "quantize"})


def test_path_delivery_refuses_an_artifact_replaced_on_the_owners_disk(tiny_models, tmp_path):
    from fedot.delivery import locate
    from fedot.emulator.artifact import write_manifest

    emulator = Path(build_emulator(str(tiny_models["llama"]), tmp_path / "emulator", emulator_blocks=2, bottom=1,
                                   top=1))
    manifest = read_manifest(emulator)
    config = {"emulator-delivery": "path", "emulator-path": str(emulator), "emulator-id": manifest["id"]}
    assert locate(config, {}) == emulator
    (emulator / "config.json").write_text((emulator / "config.json").read_text() + " ")  # changed, then re-hashed
    write_manifest(emulator, manifest)
    with pytest.raises(ArtifactError, match="the artifact was replaced or modified"):
        locate(config, {})
