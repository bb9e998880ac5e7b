"""The GPU path, checked on CPU: 16-bit frozen weights beside fp32 trainable tensors in every path, devices that
differ, the hub's .bin-only checkpoints, one emulator per GPU worker, data owners that need a GPU, and where each
data owner trained (rounds.jsonl)."""

from __future__ import annotations

import pytest
import torch

from fedot.data_owner.tuning import TuningConfig
from fedot.settings import SettingError, from_flat
from support import datafix
from support.inprocess import InProcessGrid, run_config, run_server


def test_the_hub_download_takes_bin_shards_when_a_repo_has_no_safetensors(monkeypatch, tmp_path):
    import huggingface_hub

    from fedot.models import hub_patterns, resolve

    asked = {}
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda spec: ["config.json", "pytorch_model.bin.index.json",
                                                                            "pytorch_model-00001-of-00003.bin"])
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda spec, allow_patterns: asked.setdefault("patterns", allow_patterns) and str(tmp_path))
    assert resolve("facebook/opt-13b") == tmp_path
    assert "*.bin" in asked["patterns"] and "*.safetensors" not in asked["patterns"]
    assert "*.safetensors" in hub_patterns(["model.safetensors", "pytorch_model.bin"])  # never both


@pytest.mark.parametrize("mode", ["full", "bitfit"])
def test_single_site_trains_validates_and_plugs_in_with_bf16_frozen_weights(mode, tiny_models, tmp_path, monkeypatch):
    from fedot.run.single_site import OffsiteConfig, run

    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    cfg = from_flat(OffsiteConfig, {"model": str(tiny_models["opt"]), "bottom": 1, "top": 1, "emulator-blocks": 2,
                                    "task": "pydocs", "tuning": mode, "dtype": "bfloat16", "steps": 3,
                                    "eval-every": 1, "batch-size": 2, "max-length": 32, "lr": [1e-3], "limit": 1,
                                    "val-limit": 1, "train-limit": 4})
    record = run(cfg, tmp_path / "run")  # validation every step: the path that crashed without autocast
    assert all(torch.isfinite(torch.tensor(v)) for v in record["numbers"].values())
    assert len(record["lr_sweep"][0]["train"]["history"]) >= 4


def test_float16_is_refused_for_training_with_the_reason():
    from fedot.data_owner.worker import DataOwnerConfig

    with pytest.raises(SettingError, match="loss scaling.*bfloat16"):
        from_flat(DataOwnerConfig, {"dtype": "float16"})


def test_a_federated_run_with_bf16_frozen_weights_logs_where_each_data_owner_trained(tiny_models, tmp_path):
    rc = run_config(tiny_models["llama"], tmp_path / "run", **{"dtype": "bfloat16", "num-rounds": 1,
                                                               "tuning": "lora"})
    rows, results = run_server(rc, InProcessGrid(2, rc))
    assert rows[1]["aggregated"] and torch.isfinite(torch.tensor(results["numbers"]["plugin"]))
    assert rows[1]["runtime"] == {str(n): {"device": "cpu", "dtype": "bfloat16"} for n in (101, 102)}


def test_a_data_owner_that_needs_a_gpu_refuses_a_worker_without_one_naming_the_fix(monkeypatch):
    from fedot.data_owner import worker

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="federation-config.*client-resources-num-gpus"):
        worker.worker_device("cuda")
    assert worker.worker_device("cpu") == "cpu"


def test_a_gpu_worker_keeps_one_emulator_a_cpu_worker_a_few(monkeypatch):
    from fedot.data_owner import worker

    monkeypatch.setattr(worker, "load_tunable", lambda path, *a, **k: (object(), {"id": path}))
    monkeypatch.setattr(worker, "load_tokenizer", lambda path: None)
    for device, kept in (("cuda:0", 1), ("cpu", 2)):
        cache = worker.WorkerCache()
        for aid in ("a", "b"):
            cache.emulator(aid, aid, TuningConfig(), device, torch.bfloat16)
        assert len(cache.emulators) == kept


def test_lora_merges_on_the_weights_device_in_float32_rounding_once():
    from fedot.architectures import architecture
    from fedot.data_owner.tuning import LoRA

    arch, meta = architecture("llama"), {"lora_scaling": 2.0}
    name = "model.layers.0.self_attn.q_proj"
    a, b = torch.randn(4, 8), torch.randn(8, 4) * 1e-3  # the update arrives on the CPU
    out = LoRA().merge({f"{name}.weight": torch.empty(8, 8, device="meta")},  # the model's weight on another device
                       {f"{name}.lora_A.weight": a, f"{name}.lora_B.weight": b}, meta, arch)
    assert out[f"{name}.weight"].device.type == "meta"  # computed where the weight is, no device mixing
    original = torch.randn(8, 8)
    merged = LoRA().merge({f"{name}.weight": original}, {f"{name}.lora_A.weight": a, f"{name}.lora_B.weight": b},
                          meta, arch)[f"{name}.weight"]
    assert merged.dtype == torch.float32 and torch.allclose(merged, original + 2.0 * b @ a)


def test_plug_in_merges_into_the_checkpoints_float32_weights_when_the_model_holds_bf16(tiny_models):
    from fedot.models import load_model
    from fedot.plugin import adapter_parameters, original_adapter, plug_in

    full = load_model(tiny_models["llama"], torch.bfloat16)
    original = original_adapter(tiny_models["llama"], [0])
    update = {n: v + 1e-3 for n, v in original.items()}  # a small step, below bf16's resolution of many weights
    plug_in(full, update, {"mode": "full", "adapter_blocks": [0]}, base=original)
    for n, p in adapter_parameters(full, [0]).items():
        assert torch.equal(p, update[n].to(torch.bfloat16))  # rounded once, from the float32 sum


def test_the_writer_refuses_a_checkpoint_missing_a_parameter(tiny_models, tmp_path):
    from safetensors.torch import load_file, save_file

    from fedot.emulator import build_emulator
    from fedot.emulator.split import SplitError

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_models["llama"].iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    tensors = load_file(broken / "model.safetensors")
    del tensors["model.layers.0.mlp.up_proj.weight"]
    save_file(tensors, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(SplitError, match="no tensor 'model.layers.0.mlp.up_proj.weight'.*random weights"):
        build_emulator(str(broken), tmp_path / "emu", bottom=1, top=1, emulator_blocks=2)


def test_distillation_resumes_its_optimizer_state_where_the_parameters_are(tmp_path):
    from fedot.emulator.methods.distill.loop import _resume, _save

    param = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.AdamW([param])
    param.sum().backward()
    opt.step()
    _save(tmp_path / "ck", {"step": 1, "history": [], "best": None, "settings": {"a": 1}}, {"w": param},
          {"w": param.detach().clone()}, opt)
    on_meta = torch.nn.Parameter(torch.empty(3, device="meta"))
    opt2 = torch.optim.AdamW([on_meta])
    _resume(tmp_path / "ck", {"a": 1}, {"w": on_meta}, opt2)
    assert {t.device.type for t in opt2.state[on_meta].values() if t.dim()} == {"meta"}


def test_a_bf16_emulator_aligns_through_fp32_master_copies(tiny_models, tmp_path, monkeypatch):
    from fedot.data_owner.tuning import load_tunable
    from fedot.emulator import build_emulator
    from fedot.emulator.alignment import AlignmentConfig
    from fedot.emulator.middle import middle_parameters
    from fedot.models import load_model, load_tokenizer

    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    emu = build_emulator(str(tiny_models["llama"]), tmp_path / "emu", bottom=1, top=1, emulator_blocks=2)
    student, manifest = load_tunable(emu, TuningConfig(), torch.bfloat16)
    teacher = load_model(tiny_models["llama"], torch.bfloat16)
    cfg = AlignmentConfig(method="fedbiot", steps=3, lr=1e-6, corpus="gutenberg", batch_size=2, max_length=16,
                          held_out_batches=1)
    before = {n: p.detach().float().clone() for n, p in middle_parameters(student, manifest).items()}
    record = cfg.build(load_tokenizer(emu)).align(student, teacher, manifest, 1)
    moved = {n: (t - before[n]).abs().max().item() for n, t in record["tensors"].items()}
    assert all(t.dtype == torch.float32 for t in record["tensors"].values())
    assert 0 < max(moved.values()) < 1e-4  # steps far below bf16's resolution survive in the masters


def test_gradient_checkpointing_trains_the_same_and_the_plan_keeps_less(tiny_models):
    from fedot.data_owner.train import TrainConfig, train
    from fedot.data_owner.tuning import prepare, trainable_state
    from fedot.emulator.split import sandwich
    from fedot.memory import client_plan
    from fedot.models import load_config, load_model

    examples = [(list(range(10, 42)), list(range(10, 42))) for _ in range(4)]
    states = []
    for checkpointing in (False, True):
        model = prepare(load_model(tiny_models["llama"]), [0, 5], TuningConfig())
        cfg = TrainConfig(batch_size=2, max_length=32, gradient_checkpointing=checkpointing)
        train(model, examples, cfg, lr=1e-3, steps=2, progress=False)
        states.append(trainable_state(model))
    assert all(torch.allclose(states[0][k], states[1][k], atol=1e-6) for k in states[0])
    config, split = load_config(tiny_models["llama"]), sandwich(6, 1, 1, 2)
    plain, kept = (client_plan(config, split, TuningConfig(), 2, 64, "cpu", checkpointing=c) for c in (False, True))
    assert kept.parts["activations"] < plain.parts["activations"] and kept.parts["weights"] == plain.parts["weights"]


def test_the_owner_can_spread_its_full_model_with_accelerate(tiny_models, tmp_path):
    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"owner-device-map": "auto", "num-rounds": 1})
    rows, results = run_server(rc, InProcessGrid(2, rc))
    assert rows[1]["aggregated"] and results["numbers"]["plugin"] > 0


def test_distillation_trains_an_fp32_middle_between_bf16_frozen_weights(tiny_models, tmp_path):
    from fedot.emulator import build_emulator, load_emulator
    from fedot.emulator.methods.distill import DistillSettings
    from fedot.emulator.methods.distill.loop import Objective
    from fedot.emulator.middle import middle_parameters
    from fedot.models import load_model

    emu = build_emulator(str(tiny_models["llama"]), tmp_path / "emu", bottom=1, top=1, emulator_blocks=2)
    student, manifest = load_emulator(emu, torch.bfloat16)  # what a GPU distillation holds
    teacher = load_model(tiny_models["llama"], torch.bfloat16)
    student.requires_grad_(False)
    middle = middle_parameters(student, manifest)
    for p in middle.values():
        p.data = p.data.float()
        p.requires_grad_(True)
    objective = Objective(student, teacher, manifest, DistillSettings(), "bfloat16")
    kd, lm = objective([list(range(5, 21)), list(range(30, 46))])
    objective.total(kd, lm).backward()
    assert torch.isfinite(kd) and torch.isfinite(lm)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in middle.values())
