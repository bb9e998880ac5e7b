"""Emulator artifact, plug-in and adapter tuning on tiny random models of every family."""

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from fedot.architectures import UnsupportedModelError, architecture
from fedot.data_owner.tuning import TuningConfig, TuningError, load_trainable_state, prepare, trainable_state
from fedot.emulator import ArtifactError, adapter_local, build_emulator, read_manifest, to_original
from fedot.plugin import PluginError, load_adapter, plug_in, plug_in_dir, save_adapter
from support.models import FAMILIES

IDS = torch.tensor([[5, 17, 42, 9, 100, 7, 3, 250]])


def _logits(model):
    model.eval()
    with torch.no_grad():
        return model(IDS).logits


def _train_a_bit(model, steps=2):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(steps):
        loss = model(IDS, labels=IDS).loss
        loss.backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("family", FAMILIES)
def test_artifact_holds_only_kept_blocks_and_loads_with_plain_transformers(family, tiny_models, tmp_path):
    out = build_emulator(str(tiny_models[family]), tmp_path / "emu", bottom=1, top=1, emulator_blocks=2)
    manifest = read_manifest(out, verify=True)
    assert manifest["method"] == "uniform" and manifest["num_blocks"] == 6
    assert manifest["adapter_blocks"] == [0, 5] and manifest["emulator_blocks"] == [1, 4]
    arch = architecture(family)
    with safe_open(out / "model.safetensors", "pt") as f:
        blocks = {arch.block_index(k) for k in f.keys()} - {None}
    assert blocks == {0, 1, 2, 3}  # 4 blocks, renumbered; dropped blocks 2, 3 are absent
    emu = AutoModelForCausalLM.from_pretrained(out)
    assert len(arch_blocks(emu)) == 4
    generated = emu.generate(IDS, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert generated.shape[1] == IDS.shape[1] + 3
    # the kept tensors are the full model's tensors, renumbered
    full = AutoModelForCausalLM.from_pretrained(tiny_models[family])
    for local, orig in to_original(manifest).items():
        a = dict(arch_blocks(emu)[local].named_parameters())
        b = dict(arch_blocks(full)[orig].named_parameters())
        assert all(torch.equal(a[n], b[n]) for n in a)


def arch_blocks(model):
    return model.get_submodule(architecture(model.config).blocks)


@pytest.mark.parametrize("family", FAMILIES)
def test_lossless_emulator_round_trip_is_exact(family, tiny_models, tmp_path):
    out = build_emulator(str(tiny_models[family]), tmp_path / "emu", bottom=2, top=1)
    full = AutoModelForCausalLM.from_pretrained(tiny_models[family])
    emu = AutoModelForCausalLM.from_pretrained(out)
    assert torch.equal(_logits(full), _logits(emu))
    manifest = read_manifest(out)
    model = prepare(emu, adapter_local(manifest), TuningConfig())
    state = trainable_state(model, to_original(manifest))
    plug_in(full, state, {"mode": "full", "adapter_blocks": manifest["adapter_blocks"]})
    assert torch.equal(_logits(full), _logits(emu))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["full", "lora"])
def test_plug_in_changes_only_adapter_and_matches_emulator_adapter(family, mode, tiny_models, tmp_path):
    out = build_emulator(str(tiny_models[family]), tmp_path / "emu", bottom=1, top=1)
    manifest = read_manifest(out)
    cfg = TuningConfig.of(mode, **({"rank": 2} if mode == "lora" else {}))
    emu = prepare(AutoModelForCausalLM.from_pretrained(out), adapter_local(manifest), cfg)
    _train_a_bit(emu)
    state = trainable_state(emu, to_original(manifest))
    assert all(v.dtype == torch.float32 for v in state.values())
    meta = {**cfg.metadata(), "adapter_blocks": manifest["adapter_blocks"]}
    full = AutoModelForCausalLM.from_pretrained(tiny_models[family])
    before = {k: v.clone() for k, v in full.state_dict().items()}
    plug_in(full, state, meta)
    arch = architecture(family)
    changed = {k for k, v in full.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and {arch.block_index(k) for k in changed} <= {0, 5}
    # a lossless emulator with the tuned adapter equals the full model with it plugged in
    merged = emu.merge_and_unload() if mode == "lora" else emu
    torch.testing.assert_close(_logits(full), _logits(merged), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_only_on_adapter_blocks_and_only_trainable_tensors_returned(family, tiny_models):
    model = AutoModelForCausalLM.from_pretrained(tiny_models[family])
    model = prepare(model, [0, 5], TuningConfig.of("lora", rank=4))
    arch = architecture(family)
    state = trainable_state(model)
    assert state and all(".lora_A." in k or ".lora_B." in k for k in state)
    assert {arch.block_index(k) for k in state} == {0, 5}
    assert len(state) == sum(p.requires_grad for p in model.parameters())
    targeted = {k.split(".")[-3] for k in state}
    assert targeted == set(arch.lora_targets)


@pytest.mark.parametrize("family", ["opt", "gpt2", "bloom"])
def test_bitfit_trains_only_adapter_biases(family, tiny_models):
    model = prepare(AutoModelForCausalLM.from_pretrained(tiny_models[family]), [0, 5], TuningConfig.of("bitfit"))
    state = trainable_state(model)
    assert state and all(k.endswith(".bias") for k in state)
    assert {architecture(family).block_index(k) for k in state} == {0, 5}


def test_bitfit_rejected_for_bias_free_family(tiny_models):
    with pytest.raises(TuningError, match="no bias terms"):
        prepare(AutoModelForCausalLM.from_pretrained(tiny_models["llama"]), [0, 5], TuningConfig.of("bitfit"))


def test_load_trainable_state_round_trip_and_mismatch(tiny_models):
    a = prepare(AutoModelForCausalLM.from_pretrained(tiny_models["opt"]), [0, 5], TuningConfig())
    _train_a_bit(a)
    b = prepare(AutoModelForCausalLM.from_pretrained(tiny_models["opt"]), [0, 5], TuningConfig())
    load_trainable_state(b, trainable_state(a))
    assert torch.equal(_logits(a), _logits(b))
    state = trainable_state(a)
    state.pop(next(iter(state)))
    with pytest.raises(TuningError, match="missing"):
        load_trainable_state(b, state)


def test_plug_in_rejects_missing_and_mismatched_tensors(tiny_models, tmp_path):
    full = AutoModelForCausalLM.from_pretrained(tiny_models["opt"])
    model = prepare(AutoModelForCausalLM.from_pretrained(tiny_models["opt"]), [0, 5], TuningConfig())
    state = trainable_state(model)
    meta = {"mode": "full", "adapter_blocks": [0, 5]}
    missing = dict(state)
    missing.pop(next(iter(missing)))
    with pytest.raises(PluginError, match="missing"):
        plug_in(full, missing, meta)
    bad = dict(state)
    name = next(iter(bad))
    bad[name] = torch.zeros(3, 3)
    with pytest.raises(PluginError, match="shape"):
        plug_in(full, bad, meta)
    with pytest.raises(PluginError, match="unexpected"):
        plug_in(full, {**state, "model.decoder.layers.2.fc1.weight": torch.zeros(1)}, meta)


def test_plug_in_dir_writes_a_normal_model(tiny_models, tmp_path):
    model = prepare(AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"]), [0, 5], TuningConfig.of("lora"))
    _train_a_bit(model)
    meta = {**TuningConfig.of("lora").metadata(), "adapter_blocks": [0, 5]}
    path = save_adapter(tmp_path / "adapter.safetensors", trainable_state(model), meta)
    assert load_adapter(path)[1] == meta
    out = plug_in_dir(str(tiny_models["gpt2"]), path, tmp_path / "plugged")
    plugged = AutoModelForCausalLM.from_pretrained(out)
    torch.testing.assert_close(_logits(plugged), _logits(model.merge_and_unload()), rtol=1e-4, atol=1e-5)
    with pytest.raises(PluginError, match="does not exist"):
        plug_in_dir(str(tiny_models["gpt2"]), tmp_path / "nope.safetensors", tmp_path / "x")


def test_unsupported_family_is_a_clear_error(tmp_path):
    from transformers import GPTNeoXConfig
    GPTNeoXConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                  vocab_size=100).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="supports .*llama.*opt"):
        build_emulator(str(tmp_path), tmp_path / "emu")


def test_bad_inputs(tiny_models, tmp_path):
    from fedot.emulator.split import SplitError
    from fedot.models import ModelNotFoundError
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        build_emulator("./no/such/model", tmp_path / "emu")
    with pytest.raises(SplitError, match="cannot keep"):
        build_emulator(str(tiny_models["opt"]), tmp_path / "emu", bottom=2, top=2, emulator_blocks=5)
    assert not (tmp_path / "emu").exists()
    with pytest.raises(ArtifactError, match="not an emulator artifact"):
        read_manifest(tmp_path)
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not an emulator artifact"):
        build_emulator(str(tiny_models["opt"]), tmp_path / "keep")
    assert (tmp_path / "keep" / "precious.txt").exists()


@pytest.mark.parametrize("tamper,match", [
    ("config.json", "corrupt"),  # the config, not only the weights, is covered
    ("tokenizer.json", "corrupt"),
    ("model.safetensors", "corrupt"),
    ("extra", "does not list"),
    ("manifest", "replaced or modified"),
])
def test_every_file_of_the_artifact_is_verified(tamper, match, tiny_models, tmp_path):
    out = build_emulator(str(tiny_models["opt"]), tmp_path / "emu", bottom=1, top=1, emulator_blocks=2)
    identity = read_manifest(out, verify=True)["id"]
    if tamper == "extra":
        (out / "notes.txt").write_text("x")
    elif tamper == "manifest":
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["emulator_blocks"] = [1, 2]
        (out / "manifest.json").write_text(json.dumps(manifest))
    else:
        with open(out / tamper, "ab") as f:
            f.write(b" ")
    with pytest.raises(ArtifactError, match=match):
        read_manifest(out, verify=True, expected_id=identity)


def test_a_converted_model_published_twice_keeps_the_first(tmp_path):
    """Two processes converting the embedded model at once: the second to finish keeps the first's directory."""
    from fedot.models import publish
    out = tmp_path / "model"
    for i in (1, 2):
        tmp = tmp_path / f"model.partial-{i}"
        tmp.mkdir()
        (tmp / "config.json").write_text(str(i))
        assert publish(tmp, out) == out
        assert not tmp.exists()
    assert (out / "config.json").read_text() == "1"
    lonely = tmp_path / "other.partial"
    lonely.mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("not a model")
    with pytest.raises(OSError):  # a non-model directory in the way is not silently replaced
        publish(lonely, tmp_path / "other")
