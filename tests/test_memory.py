"""The memory plan: meta-device counts equal what the real model holds, and the fit check refuses with the fix."""

import pytest
import torch

from fedot.data_owner.tuning import TuningConfig, prepare
from fedot.emulator.split import sandwich
from fedot.memory import GIB, RolePlan, client_plan, config_for_plan, saved_activations
from fedot.models import load_config, load_model
from fedot.run.plan import fit
from support.models import FAMILIES


def _real_saved_bytes(model, batch, length) -> int:
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and not (t.dim() >= 2 and t.shape[-1] == t.shape[-2] == length):
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(3, 100, (batch, length))
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids)
    return sum(seen.values())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["full", "lora"])
def test_meta_device_activations_match_the_real_models(tiny_models, family, mode):
    """What autograd keeps, counted without weights on the meta device, is what the real model keeps (within 15%:
    the real count is per storage, so a saved slice counts its whole base there)."""
    config = load_config(tiny_models[family])
    real = prepare(load_model(tiny_models[family]), [0, 5], TuningConfig.of(mode))
    with torch.device("meta"):
        from transformers import AutoModelForCausalLM

        meta = prepare(AutoModelForCausalLM.from_config(config), [0, 5], TuningConfig.of(mode))
    planned, largest = saved_activations(meta, 2, 16, "cpu")
    assert planned == pytest.approx(_real_saved_bytes(real, 2, 16), rel=0.15)
    assert 0 < largest <= planned


def test_client_plan_counts_what_a_data_owner_trains(tiny_models):
    config = load_config(tiny_models["llama"])
    split = sandwich(6, 1, 1, 2)
    lora = client_plan(config, split, TuningConfig.of("lora"), 2, 16, "cpu")
    full = client_plan(config, split, TuningConfig.of("full"), 2, 16, "cpu")
    assert lora.parts["weights"] == full.parts["weights"] + lora.parts["gradients"]  # the same emulator + LoRA
    assert lora.parts["adamw"] == 2 * lora.parts["gradients"] < full.parts["gradients"]
    gpu = client_plan(config, split, TuningConfig.of("full"), 2, 16, "cuda")
    assert gpu.parts["weights"] < full.parts["weights"]  # frozen weights in bf16 on a GPU
    assert gpu.parts["activations"] < full.parts["activations"]  # bf16 activations under autocast


def test_plan_works_offline_for_the_hub_models_the_sims_name():
    config = config_for_plan("facebook/opt-13b")
    assert config.num_hidden_layers == 40 and config.hidden_size == 5120
    with pytest.raises(ValueError, match="cannot plan for 'nobody/nothing'.*config.json"):
        config_for_plan("nobody/nothing")


def _plans(owner_gib, client_gib, device="cpu"):
    return [RolePlan("owner", device, {"w": int(owner_gib * GIB)}), RolePlan("client", device,
                                                                             {"w": int(client_gib * GIB)})]


def test_fit_on_cpu_counts_the_data_owners_ray_runs_at_once():
    resources = {"client-resources-num-cpus": 2}
    lines, problems = fit(_plans(2, 3), resources, clients=10, host=16 * GIB, gpu=None, cpus=8)
    assert not problems and "4 data owner(s) at once" in lines[0]  # 8 CPUs / 2 each; 2 + 4 x 3 = 14 GiB
    lines, problems = fit(_plans(2, 3), resources, clients=10, host=12 * GIB, gpu=None, cpus=8)
    assert len(problems) == 1 and "raise client-resources-num-cpus" in problems[0] and "14.0 GiB" in problems[0]


def test_fit_on_gpu_refuses_a_share_too_small_and_an_overfull_first_gpu():
    resources = {"client-resources-num-gpus": 0.5}
    _, problems = fit(_plans(10, 20, "cuda"), resources, clients=10, host=GIB, gpu=80 * GIB)
    assert problems == []  # 10 + 2 x 20 <= 80
    _, problems = fit(_plans(10, 45, "cuda"), resources, clients=10, host=GIB, gpu=80 * GIB)
    assert "a data owner needs 45.0 GiB but 0.5 of a 80 GiB GPU" in problems[0]
    _, problems = fit(_plans(41, 20, "cuda"), resources, clients=10, host=GIB, gpu=80 * GIB)
    assert "first GPU would hold the model owner and 2 data owners: 81.0 GiB" in problems[0]
    lines, problems = fit(_plans(41, 20, "cuda"), resources, clients=10, host=GIB, gpu=None)
    assert not problems and "no GPU is visible here" in lines[-1]


def test_sim_plan_prints_every_role_without_weights_or_gpus(capsys):
    from fedot.run.launch import show_plan

    assert show_plan("sims/opt13b_10clients") is True  # nothing to refuse where no GPU can be checked
    out = capsys.readouterr().out
    assert "model owner (ServerApp)" in out and "data owner (emulator 22 of 40 blocks)" in out
    import torch

    if torch.cuda.is_available():  # on a GPU machine the fit is checked against it: one verdict or the other
        assert ("\nfits" in out) != ("does NOT fit" in out)
    else:
        assert out.rstrip().endswith("fit not checked: no GPU here")


@pytest.mark.parametrize("gpus, gib, fits", [(8, 79.6, True), (1, 79.6, True), (1, 39.4, False)])
def test_the_opt13b_sim_fits_the_hardware_its_readme_names(gpus, gib, fits, capsys):
    """sims/opt13b_10clients/README.md names one node of 80 GB GPUs (one to eight) and says an A100 40 GB is too
    small for the model owner; the plan, from OPT-13B's config alone, must agree with it."""
    from fedot.run.launch import show_plan

    assert show_plan("sims/opt13b_10clients", gpus=gpus, gpu_gib=gib) is fits
    out = capsys.readouterr().out
    assert "gradient checkpointing" in out and "emulator 22 of 40 blocks" in out
    assert ("\nfits" in out) is fits and ("does NOT fit" in out) is not fits


def test_fedot_sim_refuses_a_run_that_does_not_fit_before_flower_starts(tiny_models, tmp_path, monkeypatch):
    from fedot.run import plan as plan_module
    from fedot.run.launch import SimError, prepare

    model = str(tiny_models["llama"])
    overrides = {"model": model, "bottom": 1, "top": 1, "emulator-blocks": 2, "run-dir": str(tmp_path / "run")}
    monkeypatch.setattr(plan_module, "host_memory", lambda: 2**20)  # a 1 MiB machine
    with pytest.raises(SimError, match="(?s)does NOT fit.*raise client-resources-num-cpus"):
        prepare("sims/quickstart", overrides)
    assert not (tmp_path / "run").exists()  # refused before the run dir is claimed
    monkeypatch.setattr(plan_module, "host_memory", lambda: 64 * GIB)
    prepare("sims/quickstart", overrides)
