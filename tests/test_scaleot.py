"""ScaleOT's RL score update (Eq. 5) on a hand-checked example, and group-wise selection (Eqs. 8-10)."""

import math
import random
from pathlib import Path

import pytest

from fedot.emulator.methods.scaleot import groups, rewards, sample_kept, select, sigmoid, update_scores


def test_groups_are_adjacent_and_cover():
    g = groups(10, 4)
    assert sum(g, []) == list(range(10)) and {len(x) for x in g} == {2, 3}
    assert groups(8, 4) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    with pytest.raises(ValueError, match="N_g"):
        groups(3, 4)


def test_sampling_keeps_half_of_each_group():
    g = groups(12, 4)
    kept = sample_kept([0.0] * 12, g, random.Random(0))
    assert all(len(set(grp) & kept) == len(grp) // 2 for grp in g)


def test_score_update_by_hand():
    # two candidates: losses 1 and 2 -> e^-1 = 0.3679, e^-2 = 0.1353, mean 0.2516 -> rewards +0.1163, -0.1163
    r = rewards([1.0, 2.0])
    assert r[0] == pytest.approx((math.exp(-1) - math.exp(-2)) / 2) and r[1] == pytest.approx(-r[0])
    scores = [0.0, 1.0, -1.0]
    new = update_scores(scores, [{0, 1}, {1, 2}], [1.0, 2.0])
    d0 = sigmoid(0) * (1 - sigmoid(0))  # 0.25
    d1 = sigmoid(1) * (1 - sigmoid(1))
    assert new[0] == pytest.approx(0 + r[0] * d0)  # only in the better candidate: goes up
    assert new[1] == pytest.approx(1 + r[0] * d1 + r[1] * d1)  # in both: the rewards cancel
    assert new[2] == pytest.approx(-1 + r[1] * sigmoid(-1) * (1 - sigmoid(-1)))  # only in the worse: goes down


def test_selection_per_group():
    scores = [5, 1, 3, 2, 9, 0, 4, 7]  # N_g = 2: blocks 0-3 and 4-7
    grouping = groups(8, 2)
    out = select(scores, grouping, n_adapter=2, alpha=0.25)
    assert out["adapter"] == [0, 4]  # the best of each group (Eq. 8, k = 1)
    assert out["harmonized"] == [1, 5]  # the worst of each group (kappa = 8 * 0.25 / 2 = 1)
    assert out["emulator"] == [2, 3, 6, 7]


@pytest.mark.parametrize("n_adapter,alpha,match", [(3, 0.25, "multiple"), (0, 0.25, "multiple"), (2, 1.0, "alpha"),
                                                   (2, -0.1, "alpha"), (6, 0.5, "cannot hold")])
def test_bad_selection_parameters(n_adapter, alpha, match):
    with pytest.raises(ValueError, match=match):
        select([0.0] * 8, groups(8, 2), n_adapter, alpha)


# --- harmonizers, Dynamic LayerReplace and ScaleOT emulators on tiny models -------------------

import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from fedot.architectures import architecture, blocks_of  # noqa: E402
from fedot.data_owner.tuning import TuningConfig, prepare, trainable_state  # noqa: E402
from fedot.emulator import build_emulator, load_emulator, read_manifest, to_original  # noqa: E402
from fedot.emulator.methods.scaleot import Harmonizer, LayerReplaceConfig, learn_importance, save_importance  # noqa: E402,E501
from fedot.plugin import plug_in  # noqa: E402
from support.models import FAMILIES  # noqa: E402

IDS = torch.tensor([[5, 17, 42, 99, 7, 250, 3, 11]])


def _logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


def _importance(tiny_models, family, tmp_path, monkeypatch, steps=6):
    from transformers import AutoTokenizer

    from support import datafix

    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    cfg = LayerReplaceConfig(corpus="pydocs", steps=steps, lr=1e-2, batch_size=2, max_length=16, rank=4, n_groups=2,
                             eval_every=3)
    model = AutoModelForCausalLM.from_pretrained(tiny_models[family])
    result = learn_importance(model, AutoTokenizer.from_pretrained(tiny_models[family]), cfg)
    return model, result, save_importance(tmp_path / "importance", result, str(tiny_models[family]))


def test_untrained_harmonizer_is_a_dropped_block():
    h = Harmonizer(8, 2)
    x = torch.randn(2, 3, 8)
    assert torch.equal(h(x, attention_mask=None), x)
    assert Harmonizer(8, 2, returns_tuple=True)(x)[0] is not None


@pytest.mark.parametrize("family", ["llama", "bloom"])
def test_dynamic_layer_replace_learns_scores_and_harmonizers_and_restores_the_model(family, tiny_models, tmp_path,
                                                                                    monkeypatch):
    reference = _logits(AutoModelForCausalLM.from_pretrained(tiny_models[family]))
    model, result, out = _importance(tiny_models, family, tmp_path, monkeypatch)
    assert torch.equal(_logits(model), reference)  # every block back in place, nothing trained
    assert all(not isinstance(b, Harmonizer) for b in blocks_of(model))
    assert len(result["scores"]) == 6 and any(s != 0 for s in result["scores"])
    assert all(h.up.weight.abs().sum() > 0 for h in result["harmonizers"].values())  # every harmonizer was trained
    assert [h["step"] for h in result["history"]] == [0, 3, 6]
    assert all((out / f).exists() for f in ("importance.json", "harmonizers.safetensors", "importance.png"))


@pytest.mark.parametrize("family", FAMILIES)
def test_scaleot_emulator_inserts_harmonizers_and_plugs_a_non_sandwich_adapter(family, tiny_models, tmp_path,
                                                                               monkeypatch):
    _, result, importance = _importance(tiny_models, family, tmp_path, monkeypatch, steps=3)
    out = build_emulator(str(tiny_models[family]), tmp_path / "emu", emulator_method="scaleot",
                         emulator_scaleot_n_adapter=2, emulator_scaleot_alpha=0.34,
                         emulator_scaleot_importance=str(importance), emulator_src_ratio=0.5)
    manifest = read_manifest(out, verify=True)
    adapter, harmonized = manifest["adapter_blocks"], manifest["harmonized_blocks"]
    assert len(adapter) == 2 and len(harmonized) == 2 and len(manifest["emulator_blocks"]) == 2
    assert adapter == [max(g, key=lambda i: result["scores"][i]) for g in result["groups"]]  # Eq. 8
    assert manifest["params"]["src_ratio"] == 0.5 and manifest["params"]["importance_scores"] == result["scores"]
    plain = AutoModelForCausalLM.from_pretrained(out)  # plain transformers: the stored blocks only
    emu, _ = load_emulator(out)
    assert len(blocks_of(plain)) == 4 and len(blocks_of(emu)) == 6
    assert [isinstance(b, Harmonizer) for b in blocks_of(emu)] == [i in harmonized for i in range(6)]
    assert torch.isfinite(_logits(emu)).all() and not torch.equal(_logits(emu), _logits(plain))
    # the data owner tunes the (non-sandwich) adapter through the emulator; the owner plugs it in by name
    tuned = prepare(emu, [i for i, orig in to_original(manifest).items() if orig in adapter], TuningConfig.of("full"))
    with torch.no_grad():
        for p in tuned.parameters():
            if p.requires_grad:
                p.add_(0.01)
    state = trainable_state(tuned, to_original(manifest))
    arch = architecture(family)
    assert {arch.block_index(k) for k in state} == set(adapter)
    full = AutoModelForCausalLM.from_pretrained(tiny_models[family])
    before = {k: v.clone() for k, v in full.state_dict().items()}
    plug_in(full, state, {"mode": "full", "adapter_blocks": adapter})
    changed = {k for k, v in full.state_dict().items() if not torch.equal(v, before[k])}
    assert {arch.block_index(k) for k in changed} == set(adapter)
    for k in changed:
        assert torch.equal(full.state_dict()[k], state[k])


def test_harmonizer_file_is_verified(tiny_models, tmp_path, monkeypatch):
    from fedot.emulator import ArtifactError

    _, _, importance = _importance(tiny_models, "llama", tmp_path, monkeypatch, steps=2)
    out = build_emulator(str(tiny_models["llama"]), tmp_path / "emu", emulator_method="scaleot",
                         emulator_scaleot_n_adapter=2, emulator_scaleot_alpha=0.34,
                         emulator_scaleot_importance=str(importance))
    with open(out / "harmonizers.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ArtifactError, match="harmonizers.safetensors"):
        read_manifest(out, verify=True)


@pytest.mark.parametrize("kwargs,match", [
    ({"emulator_scaleot_alpha": 1.0}, "alpha"), ({"emulator_scaleot_alpha": -0.5}, "alpha"),
    ({"emulator_scaleot_n_adapter": 3}, "multiple of N_g"),
    ({"emulator_scaleot_replace_corpus": "piqa"}, "replace-corpus.*wikitext2, pydocs, wikitext103, gutenberg"),
    ({"emulator_scaleot_replace_n_candidates": 1}, "n-candidates"),
    ({"emulator_src_ratio": 1.0}, "src-ratio"),
])
def test_bad_scaleot_parameters_fail_before_any_work(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        build_emulator("/never/loaded", tmp_path / "emu", emulator_method="scaleot", **kwargs)


def test_importance_from_another_model_is_rejected(tiny_models, tmp_path, monkeypatch, tokenizer_dir):
    from support.models import make_model_dir

    _, _, importance = _importance(tiny_models, "llama", tmp_path, monkeypatch, steps=2)
    other = make_model_dir(tmp_path / "deeper", "llama", 8, tokenizer_dir)
    with pytest.raises(ValueError, match="another model"):
        build_emulator(str(other), tmp_path / "emu", emulator_method="scaleot",
                       emulator_scaleot_importance=str(importance), emulator_scaleot_n_adapter=2)
    with pytest.raises(FileNotFoundError, match="fedot emulator importance"):
        build_emulator(str(other), tmp_path / "emu", emulator_method="scaleot",
                       emulator_scaleot_importance=str(tmp_path / "nothing"), emulator_scaleot_n_adapter=2)


def test_scaleot_runs_in_the_federated_simulation(tiny_models, tmp_path, monkeypatch):
    from support.inprocess import outputs, run_config, run_in_process

    _, result, importance = _importance(tiny_models, "llama", tmp_path, monkeypatch, steps=2)
    rc = run_config(tiny_models["llama"], tmp_path / "run", **{
        "num-rounds": 1, "emulator-method": "scaleot", "emulator-scaleot-n-adapter": 2,
        "emulator-scaleot-alpha": 0.34, "emulator-scaleot-importance": str(importance)})
    grid = run_in_process(rc, 2)
    rows, results = outputs(rc)
    manifest = read_manifest(results["emulator"]["path"], verify=True)
    assert manifest["method"] == "scaleot" and manifest["params"]["src_ratio"] == 0.8  # the paper's default beta
    assert rows[0]["emulator_bytes"] > (Path(results["emulator"]["path"]) / "model.safetensors").stat().st_size
    arch = architecture("llama")
    for msg in grid.sent:
        assert {arch.block_index(n) for n in msg.content["arrays"].keys()} == set(manifest["adapter_blocks"])
    assert all(math.isfinite(results["numbers"][k]) for k in ("zero_shot", "emulator_zero_shot", "emulator_finetuned",
                                                              "plugin"))
