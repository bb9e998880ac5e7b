"""Per-tensor emulator compression: magnitude pruning, RTN quantization, SVD rank truncation (SRC)."""

import numpy as np
import pytest
import torch
from safetensors import safe_open

from fedot.architectures import architecture
from fedot.emulator import build_emulator, read_manifest, to_original
from fedot.emulator.methods.prune import magnitude_prune
from fedot.emulator.methods.quantize import quantize_rtn
from fedot.emulator.rank_compression import kept_rank, truncate_rank
from fedot.weights import WeightReader


def test_magnitude_prune_zeroes_the_smallest():
    w = torch.randn(20, 30)
    p = magnitude_prune(w, 0.25)
    assert int((p == 0).sum()) == 150
    assert p[p != 0].abs().min() >= w[p == 0].abs().max()
    assert torch.equal(p[p != 0], w[p != 0])


@pytest.mark.parametrize("out_dim", [0, 1])
def test_rtn_quantization_levels_and_error(out_dim):
    w = torch.randn(16, 24)
    q = quantize_rtn(w, 4, out_dim=out_dim)
    rows = q.movedim(out_dim, 0)
    scale = w.movedim(out_dim, 0).abs().amax(dim=1, keepdim=True) / 7
    assert all(len(torch.unique(r)) <= 15 for r in rows)
    assert ((rows - w.movedim(out_dim, 0)).abs() <= scale / 2 + 1e-6).all()


@pytest.mark.parametrize("beta,shape", [(0.8, (40, 24)), (0.5, (24, 40)), (0.99, (16, 16))])
def test_svd_truncation_keeps_rank_and_is_optimal(beta, shape):
    w = torch.randn(*shape, dtype=torch.float64)
    r = kept_rank(shape, beta)
    assert r == max(1, round((1 - beta) * min(shape)))
    t = truncate_rank(w, beta)
    assert np.linalg.matrix_rank(t.numpy()) == r
    s = np.linalg.svd(w.numpy(), compute_uv=False)
    # Eckart-Young-Mirsky: spectral error is the (r+1)-th singular value, Frobenius error the tail energy
    assert np.linalg.norm((w - t).numpy(), 2) == pytest.approx(s[r])
    assert np.linalg.norm((w - t).numpy()) == pytest.approx(np.sqrt((s[r:] ** 2).sum()))
    u, sv, vt = np.linalg.svd(w.numpy(), full_matrices=False)
    np.testing.assert_allclose(t.numpy(), (u[:, :r] * sv[:r]) @ vt[:r], atol=1e-10)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_src_touches_only_emulator_attention(family, tiny_models, tmp_path):
    out = build_emulator(str(tiny_models[family]), tmp_path / "emu", bottom=1, top=1, emulator_src_ratio=0.75)
    manifest = read_manifest(out, verify=True)
    assert manifest["params"]["src_ratio"] == 0.75
    arch = architecture(family)
    original = WeightReader(tiny_models[family])
    back = to_original(manifest)
    with safe_open(out / "model.safetensors", "pt") as f:
        for name in f.keys():
            block = arch.block_index(name)
            orig_name = arch.rename_block(name, back)
            same = torch.equal(f.get_tensor(name), original.get(orig_name))
            if block is not None and back[block] in manifest["emulator_blocks"] and arch.is_attention_weight(name):
                t = f.get_tensor(name)
                assert not same and np.linalg.matrix_rank(t.numpy()) == kept_rank(tuple(t.shape), 0.75)
            else:
                assert same, name


def test_prune_and_quantize_methods(tiny_models, tmp_path):
    arch = architecture("opt")
    for method, check in (("prune", lambda t: (t == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)),
                          ("quantize", lambda t: all(len(torch.unique(r)) <= 7 for r in t))):
        out = build_emulator(str(tiny_models["opt"]), tmp_path / method, bottom=1, top=1, emulator_blocks=2,
                             emulator_method=method, emulator_prune_sparsity=0.5, emulator_quantize_bits=3)
        manifest = read_manifest(out)
        assert manifest["method"] == method and ("sparsity" in manifest["params"]) == (method == "prune")
        back = to_original(manifest)
        with safe_open(out / "model.safetensors", "pt") as f:
            for name in f.keys():
                block = arch.block_index(name)
                if block is not None and back[block] in manifest["emulator_blocks"] and name.endswith("proj.weight"):
                    assert check(f.get_tensor(name)), name


@pytest.mark.parametrize("kwargs,match", [
    ({"emulator_method": "prune", "emulator_prune_sparsity": 1.0}, "emulator-prune-sparsity"),
    ({"emulator_method": "quantize", "emulator_quantize_bits": 1}, "emulator-quantize-bits"),
    ({"emulator_src_ratio": 1.0}, "emulator-src-ratio"),
    ({"emulator_src_ratio": -0.5}, "emulator-src-ratio"),
    ({"emulator_method": "magic"}, "choose one of crash, distill, prune"),
    ({"emulator_metod": "prune"}, "did you mean 'emulator-method'"),
])
def test_bad_compression_parameters(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        build_emulator("/never/loaded", tmp_path / "emu", **kwargs)


def test_the_token_distance_is_not_dominated_by_one_massive_position():
    """Hand-worked: position 0 carries a massive activation (100) and is matched exactly, position 1 (energy 1) is
    entirely wrong. Eq. 1's global RMS makes that look perfect; the per-position distance does not."""
    from fedot.emulator.middle import normalised_mse, token_normalised_mse

    target = torch.tensor([[[100.0, 0.0], [1.0, 0.0]]])
    hidden = torch.tensor([[[100.0, 0.0], [0.0, 0.0]]])
    # global: mean squared error 1/4 over the target's mean square (100^2 + 1) / 4
    assert normalised_mse(target, hidden).item() == pytest.approx((1 / 4) / (10001 / 4))
    # per position: 0 / 100^2 at the first, 1 / 1 at the second, averaged
    assert token_normalised_mse(target, hidden).item() == pytest.approx(0.5)
    assert token_normalised_mse(target, target).item() == 0.0


@pytest.mark.parametrize("distance", ["global", "token"])
def test_distillation_lowers_held_out_mse_and_keeps_the_artifact_format(tiny_models, tmp_path, monkeypatch, distance):
    from transformers import AutoModelForCausalLM

    from support import datafix

    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    out = build_emulator(str(tiny_models["llama"]), tmp_path / "emu", bottom=1, top=1, emulator_blocks=2,
                         emulator_method="distill", emulator_distill_corpus="pydocs", emulator_distill_tokens=1920,
                         emulator_distill_lr=3e-3, emulator_distill_batch_size=2, emulator_distill_max_length=32,
                         emulator_distill_eval_every=10, emulator_distill_kd_distance=distance)
    manifest = read_manifest(out, verify=True)
    result = manifest["params"]["distill_result"]
    assert manifest["method"] == "distill" and manifest["params"]["tokens"] == 1920 and result["steps"] == 30
    assert [p["tokens"] for p in result["history"]] == [0, 640, 1280, 1920]
    assert not (tmp_path / "emu.stage").exists()  # the undistilled stage is gone once the artifact is final
    assert result["held_out_mse_after"] < result["held_out_mse_before"]
    # both distances are recorded at every check, the trained one is the selection's; the official one keeps the
    # artifact key it had before the setting existed
    first, best = result["history"][0], next(p for p in result["history"] if p["step"] == result["best_step"])
    assert best[f"held_out_{distance}_distance"] == result["held_out_mse_after"]
    assert best[f"held_out_{distance}_distance"] < first[f"held_out_{distance}_distance"]
    assert ("kd_distance" in manifest["params"]) == (distance != "global")
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 4
    # only the middle (emulator) blocks changed; adapter blocks and embeddings are the full model's
    arch = architecture("llama")
    original = WeightReader(tiny_models["llama"])
    back = to_original(manifest)
    for name, p in model.state_dict().items():
        block = arch.block_index(name)
        if name in ("lm_head.weight",) or "rotary" in name:
            continue
        same = torch.equal(p, original.get(arch.rename_block(name, back)))
        assert same == (block is None or back[block] in manifest["adapter_blocks"]), name


def test_distillation_needs_a_corpus_and_a_sandwich(tiny_models, tmp_path):
    with pytest.raises(ValueError, match="emulator-distill-corpus.*wikitext2, pydocs"):
        build_emulator("/never/loaded", tmp_path / "e", emulator_method="distill", emulator_distill_corpus="piqa")
    from fedot.emulator.middle import middle_indices as _middle_indices

    with pytest.raises(ValueError, match="sandwich"):
        _middle_indices({"num_blocks": 8, "adapter_blocks": [0, 3, 7], "emulator_blocks": [1, 5]})
    assert _middle_indices({"num_blocks": 8, "adapter_blocks": [0, 1, 7], "emulator_blocks": [2, 4, 6]}) == (5, 7)


DISTILL = dict(bottom=1, top=1, emulator_blocks=2, emulator_method="distill", emulator_distill_corpus="pydocs",
               emulator_distill_tokens=1280, emulator_distill_lr=3e-3, emulator_distill_batch_size=2,
               emulator_distill_max_length=32, emulator_distill_eval_every=5)


def test_interrupted_distillation_continues_to_the_uninterrupted_result(tiny_models, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from fedot.emulator.methods.distill import loop as distill_module
    from support import datafix

    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    whole = build_emulator(str(tiny_models["llama"]), tmp_path / "whole", **DISTILL)
    calls, real = [], distill_module.Objective.__call__

    def interrupt_at_step_12(self, batch, target=None):
        if self.student.training:
            calls.append(1)
            if len(calls) == 12:
                raise KeyboardInterrupt
        return real(self, batch, target)

    monkeypatch.setattr(distill_module.Objective, "__call__", interrupt_at_step_12)
    with pytest.raises(KeyboardInterrupt):
        build_emulator(str(tiny_models["llama"]), tmp_path / "resumed", **DISTILL)
    checkpoint = tmp_path / "resumed.distill"
    assert not (tmp_path / "resumed").exists()  # no artifact where an unfinished one would belong
    assert distill_module.json.loads((checkpoint / "state.json").read_text())["step"] == 11  # saved on Ctrl-C
    monkeypatch.setattr(distill_module.Objective, "__call__", real)
    resumed = build_emulator(str(tiny_models["llama"]), tmp_path / "resumed", **DISTILL)
    assert not checkpoint.exists()
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    history = read_manifest(resumed)["params"]["distill_result"]["history"]
    assert [p["step"] for p in history] == [0, 5, 10, 15, 20]
    reference = read_manifest(whole)["params"]["distill_result"]["history"]
    assert all(p["held_out_mse"] == pytest.approx(q["held_out_mse"], rel=1e-5) for p, q in zip(history, reference))


def test_distillation_refuses_a_checkpoint_of_other_settings(tiny_models, tmp_path, monkeypatch):
    from fedot.emulator.methods.distill import loop as distill_module
    from support import datafix

    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    (tmp_path / "emu.distill").mkdir()
    state = {"step": 3, "history": [], "best": None, "settings": {"seed": 99}}
    (tmp_path / "emu.distill" / "state.json").write_text(distill_module.json.dumps(state))
    with pytest.raises(ValueError, match="other settings.*delete it"):
        build_emulator(str(tiny_models["llama"]), tmp_path / "emu", **DISTILL)
    with pytest.raises(ValueError, match="both 0"):
        build_emulator(str(tiny_models["llama"]), tmp_path / "e2", **{**DISTILL, "emulator_distill_kd_weight": 0,
                                                                       "emulator_distill_lm_weight": 0})


def test_distillation_schedule_warms_up_then_decays_to_zero():
    from fedot.emulator.methods.distill import DistillSettings
    from fedot.emulator.methods.distill.loop import lr_at

    cfg = DistillSettings(tokens=100 * 4 * 256, warmup=0.1, lr=1e-4)
    lrs = [lr_at(s, cfg) for s in range(1, cfg.steps + 1)]
    assert cfg.steps == 100 and lrs[9] == pytest.approx(1e-4) and lrs[0] == pytest.approx(1e-5)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] == pytest.approx(0, abs=1e-12)
