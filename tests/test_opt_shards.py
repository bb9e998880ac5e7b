"""OPT-13B's real shapes from its config alone, and a small OPT in the hub's .bin-sharded layout end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from support.inprocess import InProcessGrid, run_config, run_server


def test_opt13b_layout_and_memory_plan_from_the_config_alone():
    from fedot.emulator.layout import artifact_layout
    from fedot.emulator.split import sandwich
    from fedot.memory import client_plan, config_for_plan
    from fedot.run.config import FederatedConfig

    config = config_for_plan("facebook/opt-13b")
    split = sandwich(40, 2, 2, 18)
    layout = artifact_layout(config, split)
    assert layout["dtype"] == "float16" and len(layout["dropped_blocks"]) == 18
    block = layout["parts"]["emulator block 2"]["bytes"]
    assert block == layout["parts"]["adapter block 39"]["bytes"]
    # each OPT block: q, k, v, out (4 x h^2 + 4h), fc1/fc2 (2 x 4h^2 + 4h + h), two layer norms (4h): 12h^2 + 13h
    assert block == 2 * (12 * 5120**2 + 13 * 5120)
    plan = client_plan(config, split, FederatedConfig().data_owner.tuning, 1, 8, "cuda")  # full adapter tuning
    adapter = sum(p["bytes"] for k, p in layout["parts"].items() if k.startswith("adapter"))
    # the data owner holds the fp16 artifact in bf16 (the same bytes) and its adapter blocks in fp32 (twice)
    assert plan.parts["weights"] == pytest.approx(layout["bytes"] + adapter, rel=0.001)


def test_a_bin_sharded_opt_builds_delivers_and_plugs_in(tiny_models, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fedot.emulator import read_manifest
    from fedot.emulator.layout import shards_read
    from fedot.emulator.split import sandwich
    from fedot.models import load_config

    sharded = tmp_path / "opt-sharded"
    model = AutoModelForCausalLM.from_pretrained(tiny_models["opt"])
    model.config.save_pretrained(sharded)
    AutoTokenizer.from_pretrained(tiny_models["opt"]).save_pretrained(sharded)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied, as the hub's
    groups = [[k for k in state if f"layers.{b}." in k] for b in range(6)]  # one shard per block, then the rest
    groups.append([k for k in state if ".layers." not in k])
    weight_map = {}
    for i, names in enumerate(groups, start=1):
        file = f"pytorch_model-{i:05d}-of-{len(groups):05d}.bin"
        torch.save({k: state[k] for k in names}, sharded / file)
        weight_map.update(dict.fromkeys(names, file))
    (sharded / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    shards = sorted(p.name for p in sharded.glob("pytorch_model-*.bin"))
    assert len(shards) > 3 and (sharded / "pytorch_model.bin.index.json").exists() and not list(
        sharded.glob("*.safetensors"))  # the hub's layout of facebook/opt-13b
    plan = shards_read(sharded, load_config(sharded), sandwich(6, 1, 1, 2))  # keeps blocks 0, 1, 4, 5
    assert plan["never_opened"] == [shards[2], shards[3]]  # the dropped blocks' shards are never opened
    assert set(plan["read"]) | set(plan["never_opened"]) == set(shards)
    from fedot import weights
    from fedot.emulator import build_emulator

    opened, real = [], weights.torch.load
    weights.torch.load = lambda f, *a, **k: (opened.append(Path(f).name), real(f, *a, **k))[1]
    try:
        build_emulator(str(sharded), tmp_path / "emu", bottom=1, top=1, emulator_blocks=2)
    finally:
        weights.torch.load = real
    assert opened and set(opened) <= set(plan["read"])  # the build opens the shards of kept blocks only
    rc = run_config(sharded, tmp_path / "run", **{"num-rounds": 1})  # message delivery, 2 data owners
    grid = InProcessGrid(2, rc)
    rows, results = run_server(rc, grid)
    assert rows[1]["aggregated"] and results["numbers"]["plugin"] > 0 and grid.queries  # delivered by message
    manifest = read_manifest(results["emulator"]["path"], verify=True)
    assert manifest["emulator_blocks"] == [1, 4] and torch.isfinite(torch.tensor(results["numbers"]["plugin"]))
