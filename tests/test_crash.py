"""CRaSh (clustering, removing, sharing) and block sharing for uniform layer-drop, on hand-worked examples and tiny
models."""

from __future__ import annotations

import pytest
import torch

from fedot.emulator import build_emulator, load_emulator, read_manifest
from fedot.emulator.methods.crash import centres, cluster_adjacent, linear_cka
from fedot.emulator.methods.uniform import nearest_kept


def test_clustering_merges_the_most_alike_neighbours_first_by_hand():
    # boundary similarities of 6 blocks: (2,3) merge first, then (0,1), then (4,5): three clusters of two
    sim = {(0, 1): 0.9, (1, 2): 0.2, (2, 3): 0.95, (3, 4): 0.5, (4, 5): 0.8}
    clusters = cluster_adjacent(lambda a, b: sim[(a, b)], list(range(6)), 3)
    assert clusters == [[0, 1], [2, 3], [4, 5]] and centres(clusters) == [1, 3, 5]
    # merging uses the boundary blocks of the clusters, not their members: after [2,3] forms, (1,2) still scores 0.2
    assert cluster_adjacent(lambda a, b: sim[(a, b)], list(range(6)), 2) == [[0, 1], [2, 3, 4, 5]]
    assert centres([[7], [8, 9, 10], [11, 12]]) == [7, 9, 12]  # the middle of a cluster (len // 2)


def test_linear_cka_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3 * x + 5) == pytest.approx(1.0)  # invariant to scale and shift
    assert linear_cka(x, x @ torch.tensor([[0.0, 1.0], [-1.0, 0.0]])) == pytest.approx(1.0)  # and to rotation
    y = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])  # column 0 of x plus column 1: 1/2 of x's variance
    assert linear_cka(x, y) == pytest.approx(1 / 2 ** 0.5)


def test_uniform_sharing_repeats_the_nearest_kept_block():
    assert nearest_kept([2, 3, 4, 5, 6, 7], [2, 5, 7]) == {3: 2, 4: 5, 6: 7}  # 6: equidistant to 5 and 7 -> 7


@pytest.mark.parametrize("method", ["crash", "uniform"])
def test_a_shared_emulator_keeps_the_depth_ships_the_kept_blocks_and_trains(method, tiny_models, tmp_path,
                                                                          monkeypatch):
    from fedot.data_owner.tuning import TuningConfig, load_tunable, trainable_state
    from fedot.emulator import to_original
    from fedot.plugin import adapter_metadata, plug_in
    from support import datafix

    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    options = {"emulator_crash_samples": 8, "emulator_crash_max_length": 16} if method == "crash" else \
        {"emulator_uniform_share": True}
    out = build_emulator(str(tiny_models["llama"]), tmp_path / "emu", bottom=1, top=1, emulator_blocks=2,
                         emulator_method=method, **options)
    manifest = read_manifest(out, verify=True)
    shared = {int(k): v for k, v in manifest["shared_blocks"].items()}
    assert len(manifest["emulator_blocks"]) == 2 and set(shared) == {1, 2, 3, 4} - set(manifest["emulator_blocks"])
    assert set(shared.values()) <= set(manifest["emulator_blocks"]) and not manifest["lossless"]
    if method == "crash":
        clusters = manifest["params"]["clusters"]
        assert [b for c in clusters for b in c] == [1, 2, 3, 4] and centres(clusters) == manifest["emulator_blocks"]
        assert all(shared[b] == c[len(c) // 2] for c in clusters for b in c if b in shared)
    model, _ = load_emulator(out)
    layers = model.model.layers
    assert len(layers) == 6 and model.config.num_hidden_layers == 6  # the full model's depth
    position = {orig: j for j, orig in enumerate(range(6))}
    for b, kept in shared.items():  # the same weights, a different module (its own cache slot)
        assert layers[position[b]] is not layers[position[kept]]
        assert layers[position[b]].mlp.up_proj.weight is layers[position[kept]].mlp.up_proj.weight
    assert [layer.self_attn.layer_idx for layer in layers] == list(range(6))
    ids = torch.tensor([[5, 17, 42, 9, 100, 7]])
    with torch.no_grad():
        cached = model.generate(ids, max_new_tokens=4, do_sample=False)
        uncached = model.generate(ids, max_new_tokens=4, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)  # a repeated block never reads another position's keys
    tuned, manifest = load_tunable(out, TuningConfig())
    tuned(input_ids=ids, labels=ids).loss.backward()
    state = trainable_state(tuned, to_original(manifest))
    assert {int(k.split(".")[2]) for k in state} == {0, 5}  # the adapter only: shared middle blocks stay frozen
    from fedot.models import load_model

    full = load_model(tiny_models["llama"])
    plug_in(full, state, adapter_metadata(TuningConfig(), manifest, "m", "pydocs"))


def test_crash_refuses_a_corpus_that_is_not_the_owners(tmp_path):
    with pytest.raises(ValueError, match="emulator-crash-corpus.*not one of"):
        build_emulator("/never/loaded", tmp_path / "e", emulator_method="crash", emulator_crash_corpus="piqa")
