"""The evaluation cache, `fedot eval`, and what a federated run prints and refuses about its data owners."""

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from fedot.cli import main
from fedot.evaluation import EvalCache
from support import datafix
from support.inprocess import InProcessGrid, run_config, run_server


@pytest.fixture
def tiny(tiny_models):
    path = tiny_models["llama"]
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_cache_reuses_reports_and_recomputes_corrupt_entries(tiny, tmp_path):
    model, tok = tiny
    said = []
    cache = EvalCache(tmp_path / "evals", report=said.append)
    first = cache.evaluate("zs", model, tok, "model-a", "pydocs", limit=2)
    files = list((tmp_path / "evals").glob("*.json"))
    assert len(files) == 1 and not said
    assert cache.evaluate("zs", model, tok, "model-a", "pydocs", limit=2) == first
    assert said == [f"reused from the evaluation cache: zs ({files[0].stem[:12]})"]
    # another model identity, or other documents, is another entry
    cache.evaluate("zs", model, tok, "model-b", "pydocs", limit=2)
    cache.evaluate("zs", model, tok, "model-a", "pydocs", limit=3)
    assert len(list((tmp_path / "evals").glob("*.json"))) == 3
    # a tampered entry is never trusted: recomputed, reported, rewritten
    entry = json.loads(files[0].read_text())
    entry["result"]["primary"] = 1.0
    files[0].write_text(json.dumps(entry))
    said.clear()
    again = cache.evaluate("zs", model, tok, "model-a", "pydocs", limit=2)
    assert again == first and "corrupt" in said[0]
    files[0].write_text("{not json")
    assert cache.evaluate("zs", model, tok, "model-a", "pydocs", limit=2) == first
    assert json.loads(files[0].read_text())["result"] == first


def test_disabled_cache_always_computes(tiny, tmp_path):
    model, tok = tiny
    cache = EvalCache(tmp_path / "evals", enabled=False)
    cache.evaluate("zs", model, tok, "m", "pydocs", limit=1)
    assert not (tmp_path / "evals").exists()


def test_fedot_eval_full_model_adapter_and_emulator(tiny_models, tmp_path, capsys, monkeypatch):
    from fedot.data_owner.tuning import TuningConfig, prepare, trainable_state
    from fedot.plugin import save_adapter

    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    model = str(tiny_models["opt"])
    assert main(["eval", "--model", model, "--task", "arc_easy", "--limit", "6", "--json",
                 str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    assert "acc" in out and "95% interval" in out
    result = json.loads((tmp_path / "a.json").read_text())
    assert result["examples"] == 6 and len(result["metrics"]["acc_ci95"]) == 2
    tuned = prepare(AutoModelForCausalLM.from_pretrained(model), [0, 5], TuningConfig.of("lora"))
    save_adapter(tmp_path / "ad.safetensors", trainable_state(tuned), {**TuningConfig.of("lora").metadata(),
                                                                       "adapter_blocks": [0, 5]})
    assert main(["eval", "--model", model, "--adapter", str(tmp_path / "ad.safetensors"), "--task", "pydocs",
                 "--limit", "2"]) == 0
    assert "word_perplexity" in capsys.readouterr().out
    assert main(["emulator", "build", "--model", model, "--bottom", "1", "--top", "1", "--emulator-blocks", "2",
                 "--out", str(tmp_path / "emu")]) == 0
    capsys.readouterr()
    assert main(["eval", "--model", str(tmp_path / "emu"), "--task", "pydocs", "--limit", "2"]) == 0
    assert main(["eval", "--model", str(tmp_path / "emu"), "--adapter", str(tmp_path / "ad.safetensors")]) == 2
    assert "emulator artifact" in capsys.readouterr().err
    assert main(["eval", "--model", model, "--adapter", str(tmp_path / "none.safetensors")]) == 2


def test_fedot_eval_paired_with_an_earlier_result(tiny_models, tmp_path, capsys, monkeypatch):
    from fedot.evaluation.paired import mcnemar_exact

    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    a, b = str(tiny_models["opt"]), str(tiny_models["gpt2"])
    common = ["--task", "arc_easy", "--limit", "6", "--no-eval-cache"]
    assert main(["eval", "--model", a, *common, "--json", str(tmp_path / "a.json")]) == 0
    assert main(["eval", "--model", b, *common, "--paired-with", str(tmp_path / "a.json"),
                 "--json", str(tmp_path / "b.json")]) == 0
    shown = capsys.readouterr().out
    assert "exact McNemar" in shown and "(neither better at p < 0.05; n = 6)" in shown  # 6 questions decide nothing
    ra, rb = (json.loads((tmp_path / f"{x}.json").read_text()) for x in "ab")
    paired = rb["paired"]
    expected = mcnemar_exact(rb["metrics"]["outcomes"]["acc"], ra["metrics"]["outcomes"]["acc"])
    assert (paired["p"], paired["a_only"], paired["b_only"]) == (expected["p"], expected["a_only"], expected["b_only"])
    assert paired["difference"] == pytest.approx(rb["metrics"]["acc"] - ra["metrics"]["acc"])
    # not comparable: another task, other examples, no such file; each refused before scoring
    assert main(["eval", "--model", b, "--task", "pydocs", "--limit", "1", "--paired-with",
                 str(tmp_path / "a.json")]) == 2
    assert "same examples" in capsys.readouterr().err
    assert main(["eval", "--model", b, "--task", "arc_easy", "--limit", "4", "--no-eval-cache", "--paired-with",
                 str(tmp_path / "a.json")]) == 2
    assert "same --limit" in capsys.readouterr().err
    assert main(["eval", "--model", b, *common, "--paired-with", str(tmp_path / "none.json")]) == 2
    assert "fedot eval ... --json" in capsys.readouterr().err


def test_a_run_with_the_wrong_number_of_data_owners_stops_with_the_command(tiny_models, tmp_path):
    from fedot_apps.federation import FederationError

    rc = run_config(tiny_models["opt"], tmp_path / "run", **{"num-clients": 4, "wait-for-clients-s": 0.0})
    with pytest.raises(FederationError, match=r"num-clients = 4 .* has 2 SuperNodes.*fedot sim sims/.*"
                                              r"--federation-config \"num-supernodes=4\""):
        run_server(rc, InProcessGrid(2, rc))
    assert not (tmp_path / "run").exists()  # stopped before anything was loaded or written


def test_progress_lines_and_zero_shot_reused_by_a_second_run(tiny_models, tmp_path, capsys):
    import re

    rc = run_config(tiny_models["opt"], tmp_path / "one", **{"num-rounds": 2})
    rows, _ = run_server(rc, InProcessGrid(2, rc))
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("fedot | round 1/2:"))
    m = re.search(r"2 accepted, 0 rejected, train loss ([\d.]+) \| plug-in ([\d,.]+) \(zero-shot ([\d,.]+)\), OT "
                  r"emulator ([\d,.]+) \| (\d+)s \| elapsed \d+s, ~(\d+)s left", line)
    assert m, line
    evaluation = rows[1]["evaluation"]  # the line says what rounds.jsonl says
    assert float(m[1]) == pytest.approx(rows[1]["train_loss"], abs=5e-4)
    assert [float(m[i].replace(",", "")) for i in (2, 3, 4)] == pytest.approx(
        [evaluation["plugin"], rows[0]["evaluation"]["zero_shot"], evaluation["emulator_finetuned"]], abs=5e-3)
    assert m[6] == m[5]  # one round left, estimated at the mean duration of the rounds so far (one)
    assert "fedot | zero-shot: full model" in out and "reused" not in out
    rc = run_config(tiny_models["opt"], tmp_path / "two", **{"num-rounds": 1})
    run_server(rc, InProcessGrid(2, rc))
    out = capsys.readouterr().out
    assert "reused from the evaluation cache: full model zero-shot" in out
    assert "reused from the evaluation cache: emulator zero-shot" in out


def test_a_per_round_curve_on_the_first_examples_and_the_five_numbers_on_all(tiny_models, tmp_path, capsys):
    """eval-curve-limit: the rounds before the last score the first examples only; the last round scores all of them
    (the five numbers) and its curve point on the first ones, like zero-shot's, comes from the outcomes."""
    from fedot.evaluation.outcomes import first_examples
    from fedot.evaluation.scoring import evaluate
    from fedot.run.report import numbers_of

    rc = run_config(tiny_models["llama"], tmp_path / "run", **{"num-rounds": 3, "eval-limit": 4,
                                                               "eval-curve-limit": 2, "task": "pydocs"})
    rows, _ = run_server(rc, InProcessGrid(2, rc))
    out = capsys.readouterr().out
    zero, r1, r2, last = (r["evaluation"] for r in rows)
    assert r1["curve_examples"] == r2["curve_examples"] == 2 and "curve" not in r1
    assert "curve_examples" not in last and last["curve"]["examples"] == zero["curve"]["examples"] == 2
    assert "on the first 2 examples" in next(x for x in out.splitlines() if x.startswith("fedot | round 1/3:"))
    assert "on the first" not in next(x for x in out.splitlines() if x.startswith("fedot | round 3/3:"))
    numbers = numbers_of(rows)
    assert numbers["plugin"] == last["plugin"] and numbers["zero_shot"] == zero["zero_shot"]
    assert "<th>OT plug-in (first 2 examples)</th>" in (tmp_path / "run/report.html").read_text()
    from fedot.evaluation.five import fmt
    from fedot.run.compare import compare

    text = compare([tmp_path / "run"], tmp_path / "compare")
    assert "shown on their curve's first 2 examples in every round" in text
    assert f"| {fmt(last['curve']['plugin'], 'word_perplexity')} |" in text.split("## Per round")[1]  # round 3: curve
    assert "plugin" not in numbers_of(rows[:3])  # a round scored for the curve only is never a result
    # the outcomes' first examples are what scoring with that limit scores: zero-shot's curve point, recomputed
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"]).eval()
    tok = AutoTokenizer.from_pretrained(tiny_models["llama"])
    full, first = evaluate(model, tok, "pydocs", limit=4), evaluate(model, tok, "pydocs", limit=2)
    assert zero["curve"]["zero_shot"] == pytest.approx(first["primary"], rel=1e-4)
    assert first_examples({"m": full["outcomes"]}, 2, "word_perplexity")["m"] == pytest.approx(first["primary"])
    assert full["primary"] != pytest.approx(first["primary"])  # the first two are not the whole split


@pytest.mark.parametrize("limits", [(4, 4), (4, 6)])
def test_a_curve_as_large_as_the_evaluation_is_refused(limits):
    from fedot.run.config import FederatedConfig
    from fedot.settings import SettingError

    with pytest.raises(SettingError, match="eval-curve-limit = .* is not below eval-limit"):
        FederatedConfig.from_run_config({"eval-limit": limits[0], "eval-curve-limit": limits[1]})


def test_plug_in_scores_are_cached_by_adapter_and_a_lossless_emulator_is_scored_as_the_full_model(tiny_models,
                                                                                                   tmp_path):
    """A plug-in score is keyed by the adapter's content; through a lossless emulator, zero-shot and the OT emulator
    are the full model's scores (reused, not recomputed) and equal what scoring the emulator itself gives."""
    import torch

    from fedot.data_owner.tuning import TuningConfig, load_trainable_state, prepare, trainable_state
    from fedot.emulator import adapter_local, build_emulator, read_manifest, to_local, to_original
    from fedot.evaluation.scoring import evaluate
    from fedot.model_owner.evaluator import Evaluator, is_full_model
    from fedot.weights import state_hash

    path = tiny_models["llama"]
    tok = AutoTokenizer.from_pretrained(path)
    said = []

    def evaluator(manifest):
        return Evaluator(AutoModelForCausalLM.from_pretrained(path).eval(), "tiny-llama", tok,
                         {"mode": "full", "adapter_blocks": manifest["adapter_blocks"]}, "pydocs", limit=3,
                         cache=EvalCache(tmp_path / "evals", report=said.append))

    def emulator(out, **kw):
        manifest = read_manifest(build_emulator(str(path), tmp_path / out, bottom=1, top=1, **kw))
        model = prepare(AutoModelForCausalLM.from_pretrained(tmp_path / out), adapter_local(manifest), TuningConfig())
        return model.eval(), manifest

    emu, manifest = emulator("lossless")
    assert is_full_model(manifest) and not is_full_model({**manifest, "aligned": {"round": 1}})
    owner = evaluator(manifest)
    zero = owner.zero_shot()
    assert owner.emulator_zero_shot(emu, manifest) == zero and len(said) == 1
    assert said[0].startswith("reused from the evaluation cache: full model zero-shot")
    adapter = {k: v + 0.05 * torch.randn_like(v) for k, v in trainable_state(emu, to_original(manifest)).items()}
    said.clear()
    through = owner.through(emu, manifest, adapter)
    assert not said and owner.plugin(adapter) == through  # scored once, then reused
    assert said[0].startswith("reused from the evaluation cache: OT plug-in")
    assert through["primary"] != zero["primary"]
    load_trainable_state(emu, adapter, to_local=to_local(manifest))  # what the shortcut stands for, computed
    assert evaluate(emu, tok, "pydocs", "test", 3)["primary"] == pytest.approx(through["primary"], rel=1e-5)
    # another adapter is another entry; the same tensors under other plug-in settings hash differently
    assert state_hash(adapter) == state_hash({k: v.clone() for k, v in reversed(adapter.items())})
    assert state_hash(adapter) != state_hash(adapter, {"mode": "lora"})
    said.clear()
    other = {k: v + 0.05 for k, v in adapter.items()}
    assert owner.plugin(other)["primary"] != through["primary"] and not said
    # a lossy emulator is scored as itself
    lossy, lossy_manifest = emulator("lossy", emulator_blocks=2)
    owner = evaluator(lossy_manifest)
    said.clear()
    assert owner.emulator_zero_shot(lossy, lossy_manifest)["primary"] != zero["primary"] and not said
    assert owner.through(lossy, lossy_manifest, adapter)["primary"] != through["primary"]
    assert owner.plugin(adapter) == through and said[-1].startswith("reused from the evaluation cache: OT plug-in")
