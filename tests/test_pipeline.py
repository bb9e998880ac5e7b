"""Single-site offsite-tuning end to end on a tiny model: five finite numbers and the run's files."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from fedot.evaluation import evaluate
from fedot.evaluation.outcomes import read_outcomes
from fedot.models import load_tokenizer
from fedot.plugin import plugged_model
from fedot.run.results import conditions, recovered
from fedot.run.single_site import OffsiteConfig, run
from fedot.settings import from_flat
from support import datafix

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("task,mode,lrs", [("pydocs", "full", [1e-3, 3e-3]), ("arc_easy", "lora", [3e-3])])
def test_pipeline_five_numbers(task, mode, lrs, tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    cfg = from_flat(OffsiteConfig, {"model": str(tiny_models["opt"]), "bottom": 1, "top": 1, "emulator-blocks": 2,
                                    "task": task, "tuning": mode, "steps": 3, "batch-size": 2, "max-length": 64,
                                    "eval-every": 2, "lr": lrs, "full-ft": True, "limit": 4, "val-limit": 4,
                                    "train-limit": 8})
    record = run(cfg, tmp_path / "run")
    assert set(record["numbers"]) == {"zero_shot", "emulator_zero_shot", "emulator_finetuned", "plugin",
                                      "full_finetuned"}
    assert all(math.isfinite(v) for v in record["numbers"].values())
    assert [s["lr"] for s in record["lr_sweep"]] == lrs and record["chosen_lr"] in lrs
    chosen = max(record["lr_sweep"], key=lambda s: s["best_validation"])  # the emulator's validation decides
    assert chosen["lr"] == record["chosen_lr"]
    if len(lrs) > 1:  # each rate's plug-in is on record, and the chosen one is the reported plug-in
        assert all(math.isfinite(s["plugin_test"]) for s in record["lr_sweep"])
        assert chosen["plugin_test"] == record["numbers"]["plugin"]
        # the saved adapter is the chosen rate's: plugged in from the file it scores the reported plug-in
        tok = load_tokenizer(tiny_models["opt"])
        rescored = evaluate(plugged_model(str(tiny_models["opt"]), tmp_path / "run/adapter.safetensors"), tok, task,
                            "test", 4)["primary"]
        assert rescored == pytest.approx(record["numbers"]["plugin"], rel=1e-4)
    saved = json.loads((tmp_path / "run/results.json").read_text())
    assert set(saved["conditions"]) == {"zero_shot < plug-in", "emulator fine-tuned < plug-in",
                                        "plug-in ≈ full fine-tuning"}
    md = (tmp_path / "run/results.md").read_text()
    assert "| OT Plug-in |" in md
    # the paired tests read the per-example outcomes saved beside the results
    outcomes = read_outcomes(tmp_path / "run/outcomes.json")
    assert set(outcomes) == set(record["numbers"])
    test = saved["paired"]["plug-in vs zero-shot"]
    assert test["value_b"] == pytest.approx(saved["numbers"]["zero_shot"]) and 0 < test["p"] <= 1
    assert test["test"] == ("exact McNemar" if task == "arc_easy" else "paired bootstrap over documents (2000 "
                                                                        "resamples)")
    assert "| plug-in vs zero-shot |" in md and ("recovered_ci95" in saved) == (saved["recovered"] is not None)
    assert ("**(chosen)**" in md) == (len(lrs) > 1) and all(f"| {lr:g}" in md for lr in lrs[1:])
    zs_row = next(line for line in md.splitlines() if line.startswith("| Full ZS |"))
    assert zs_row.endswith("% |") == (task == "arc_easy")  # accuracies carry their 95% Wilson interval
    n = saved["numbers"]
    gain = n["full_finetuned"] - n["zero_shot"]  # a 4-question tiny run may see no gain: then no share is claimed
    ft_better = gain > 0 if task == "arc_easy" else gain < 0
    assert saved["recovered"] == (pytest.approx((n["plugin"] - n["zero_shot"]) / gain) if ft_better else None)
    assert (tmp_path / "run/results.png").stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run/tensorboard")).Reload()  # report-to's default
    assert events.Scalars("final/plugin")[0].value == pytest.approx(saved["numbers"]["plugin"])
    assert any(t.endswith("/loss") and t.startswith(f"emulator lr={record['chosen_lr']:g}") for t in
               events.Tags()["scalars"])
    assert (tmp_path / "run/adapter.safetensors").exists()
    table = subprocess.run([sys.executable, str(ROOT / "scripts/choice_table.py"), str(tmp_path)], check=True,
                           capture_output=True, text=True).stdout  # the side-by-side summary of scripts/choice.sh
    assert f"| [{task}](run/results.md) ({saved['metric']}, " in table
    assert (tmp_path / "README.md").read_text() in table + "\n"


def test_recovered_share_of_the_gain_in_the_metrics_direction():
    assert recovered({"zero_shot": 0.50, "plugin": 0.52, "full_finetuned": 0.60}, True) == pytest.approx(0.2)
    assert recovered({"zero_shot": 30.0, "plugin": 28.0, "full_finetuned": 20.0}, False) == pytest.approx(0.2)
    assert recovered({"zero_shot": 0.20, "plugin": 0.21, "full_finetuned": 0.19}, True) is None  # FT gained nothing
    assert recovered({"zero_shot": 0.20, "plugin": 0.21}, True) is None


def test_conditions_direction():
    ppl = {"zero_shot": 20.0, "emulator_finetuned": 18.0, "plugin": 15.0, "full_finetuned": 14.0}
    assert conditions(ppl, higher_is_better=False) == {"zero_shot < plug-in": True,
                                                       "emulator fine-tuned < plug-in": True,
                                                       "plug-in ≈ full fine-tuning": True}
    acc = {"zero_shot": 0.3, "emulator_finetuned": 0.35, "plugin": 0.32}
    assert conditions(acc, higher_is_better=True) == {"zero_shot < plug-in": True,
                                                      "emulator fine-tuned < plug-in": False,
                                                      "plug-in ≈ full fine-tuning": None}


def test_missing_data_fails_before_model_loading(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDOT_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="piqa/valid.jsonl"):
        run(from_flat(OffsiteConfig, {"model": "does-not-matter/never-loaded", "task": "piqa"}), tmp_path / "run")


def test_compare_tables_runs_with_the_privacy_gap(tmp_path):
    import json

    from fedot.run.compare import compare

    def run(name, numbers, task="pydocs"):
        d = tmp_path / name
        d.mkdir()
        (d / "results.json").write_text(json.dumps({"task": task, "metric": "word_perplexity",
                                                    "higher_is_better": False,
                                                    "numbers": numbers, "emulator": {"method": name},
                                                    "wall_seconds": 3}))
        rows = [{"round": 1, "evaluation": {"plugin": numbers["plugin"]}, "bytes_down": 10},
                {"round": 2, "bytes_down": 10}]  # round 2 not evaluated (an evaluation schedule)
        (d / "rounds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return d

    a = run("uniform", {"zero_shot": 60.0, "emulator_zero_shot": 900.0, "emulator_finetuned": 80.0, "plugin": 58.0})
    b = run("scaleot", {"zero_shot": 60.0, "emulator_zero_shot": 500.0, "emulator_finetuned": 70.0, "plugin": 75.0})
    text = compare([a, b], tmp_path / "cmp")
    summary, per_round = text.split("## Per round")
    rows = {line.split(" | ")[0].strip("| "): line for line in summary.splitlines()
            if line.startswith("| ") and "---" not in line}
    gaps = {name: rows[name].split(" | ")[7] for name in ("uniform", "scaleot")}
    assert gaps == {"uniform": "22.00", "scaleot": "-5.00"}  # lower ppl is better
    assert "| scaleot | 1 | 75.00 | — |" in per_round and "alignment" not in per_round  # none of these re-aligns
    assert "| scaleot | 2 |" not in per_round  # a round nobody evaluated is not a row of dashes
    assert (tmp_path / "cmp" / "comparison.png").exists()
    with pytest.raises(ValueError, match="different tasks"):
        compare([a, run("other", {"zero_shot": 1.0, "emulator_finetuned": 1.0, "plugin": 1.0}, task="wikitext2")],
                tmp_path / "c2")


def test_compare_aggregates_seeds_into_mean_and_std(tmp_path):
    import json

    from fedot.run.compare import compare

    def run(name, plugin, seed, clients):
        d = tmp_path / name
        d.mkdir()
        numbers = {"zero_shot": 60.0, "emulator_finetuned": 80.0, "plugin": plugin}
        config = {"seed": seed, "num-clients": clients, "run-dir": str(d), "command": f"fedot sim {name}"}
        (d / "results.json").write_text(json.dumps({"task": "pydocs", "metric": "word_perplexity",
                                                    "higher_is_better": False, "numbers": numbers, "config": config,
                                                    "emulator": {"method": "uniform"}}))
        aligned = {"alignment": {"owner_seconds": 2.0 * (seed + 1), "emulator_id": f"e{seed}"}}
        rows = [{"round": 1, "evaluation": {"plugin": plugin}, **aligned},
                {"round": 2, "emulator_update": {"artifact_id": f"e{seed}", "bytes_sent": 2**20 * (seed + 1)}}]
        (d / "rounds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return d

    runs = [run("one-s0", 50.0, 0, 1), run("one-s1", 54.0, 1, 1), run("one-s2", 52.0, 2, 1), run("ten-s0", 45.0, 0, 10),
            run("one-s0-rerun", 51.0, 0, 1)]  # the same settings and seed again: not a fourth seed
    text = compare(runs, tmp_path / "cmp")
    summary, per_round = text.split("## Per round")
    rows = [line for line in summary.splitlines() if line.startswith("| one") or line.startswith("| ten")]
    assert len(rows) == 3 and rows[0].startswith("| one-s0 (n=3 seeds)") and rows[1].startswith("| ten-s0 |")
    assert rows[2].startswith("| one-s0-rerun |") and "51.00" in rows[2]
    assert "52.00 ± 2.00" in rows[0]  # mean and sample standard deviation of 50, 54, 52
    assert "mean ± sample standard deviation" in text
    # per round: plug-in, the owner's alignment seconds and the MiB that version cost the next round, over seeds
    assert "| one-s0 (n=3 seeds) | 1 | 52.00 ± 2.00 | — | 4.0 ± 2.0 | 2.0 ± 1.0 |" in per_round


def test_compare_tests_each_runs_tuned_models_against_the_first_runs_on_the_same_examples(tmp_path):
    import json

    from fedot.run.compare import compare

    def run(name, plugin, ft, ids=(0, 1, 2, 3)):
        d = tmp_path / name
        d.mkdir()
        numbers = {"zero_shot": 0.2, "plugin": sum(plugin) / 4, "full_finetuned": sum(ft) / 4}
        (d / "results.json").write_text(json.dumps({"task": "dolly", "metric": "rougeL", "higher_is_better": True,
                                                    "numbers": numbers, "emulator": {"method": "uniform"}}))

        def gen(scores):
            return {"kind": "generation", "ids": list(ids), "output": ["x"] * 4, "rougeL": scores}

        (d / "outcomes.json").write_text(json.dumps({"zero_shot": gen([0.2] * 4), "plugin": gen(plugin),
                                                     "full_finetuned": gen(ft)}))
        return d

    single = run("single", [0.1, 0.2, 0.3, 0.2], [0.5, 0.5, 0.5, 0.5])
    federated = run("federated", [0.2, 0.4, 0.6, 0.4], [0.5, 0.5, 0.5, 0.5])  # every record better: p at its floor
    other = run("other-split", [0.1] * 4, [0.1] * 4, ids=(4, 5, 6, 7))
    text = compare([single, federated, other], tmp_path / "cmp")
    section = text.split("## Paired against single (the same examples)")[1]
    assert "| federated | OT Plug-in | 0.4 | 0.2 | +0.2 | " in section
    assert "paired bootstrap over examples (2000 resamples) | 0.0005 |" in section  # no resample at or below zero
    assert "| federated | FT | the same evaluation (identical outcomes) |" in section
    assert not (tmp_path / "cmp" / "comparison.png").exists()  # single-site runs have no rounds: no empty figure
    assert "| other-split | OT Plug-in | not paired: " in section and "different examples" in section
    (record,) = json.loads((tmp_path / "cmp" / "paired.json").read_text())
    assert record["a"] == "federated plugin" and record["a_better"] and record["difference"] == pytest.approx(0.2)
    assert 0.1 <= record["ci95"][0] < 0.2 < record["ci95"][1] <= 0.3  # per-record differences 0.1, 0.2, 0.3, 0.2


def test_compare_gives_a_run_without_ft_the_recovered_share_against_the_first_runs_ft(tmp_path):
    import json

    from fedot.run.compare import compare

    def choices(correct, ids=None):
        ids = list(ids or range(len(correct)))
        return {"kind": "multiple_choice", "ids": ids, "chosen": [0] * len(ids), "acc": correct, "acc_norm": correct}

    zs = [1] * 5 + [0] * 5  # 50%

    def run(name, plugin, ft=None, zero_shot=zs, steps=20):
        d = tmp_path / name
        d.mkdir()
        outcomes = {"zero_shot": choices(zero_shot), "plugin": choices(plugin)}
        numbers = {"zero_shot": sum(zero_shot) / 10, "plugin": sum(plugin) / 10}
        if ft is not None:
            outcomes["full_finetuned"], numbers["full_finetuned"] = choices(ft), sum(ft) / 10
        (d / "results.json").write_text(json.dumps({"task": "arc_easy", "metric": "acc", "higher_is_better": True,
                                                    "numbers": numbers, "emulator": {"method": name},
                                                    "config": {"steps": steps, "batch-size": 8, "seed": 0}}))
        (d / "outcomes.json").write_text(json.dumps(outcomes))
        return d

    ceiling = run("lossless", [1] * 8 + [0] * 2, ft=[1] * 9 + [0])  # FT 90%
    borrower = run("mix", [1] * 7 + [0] * 3)  # plug-in 70%: (0.7 - 0.5) / (0.9 - 0.5) = 0.5
    other_model = run("other", [1] * 7 + [0] * 3, zero_shot=[0] * 5 + [1] * 5)
    longer = run("longer", [1] * 7 + [0] * 3, steps=80)  # FT trained 20 steps is not its reference
    text = compare([ceiling, borrower, other_model, longer], tmp_path / "cmp")
    section = text.split("## Recovered share against lossless's FT (runs trained without FT)")[1]
    assert "| mix | 50.0% | 70.0% | 90.0% | 0.5 | " in section
    assert "| other | not computed: its zero-shot outcomes differ" in section
    assert "| longer | not computed: another training budget ({'steps': 80, 'batch-size': 8} vs {'steps': 20, " \
           "'batch-size': 8})" in section
    (record,) = json.loads((tmp_path / "cmp" / "recovered.json").read_text())
    assert record["run"] == "mix" and record["ft_from"] == "lossless" and record["recovered"] == pytest.approx(0.5)
    low, high = record["ci95"]
    assert low < 0.5 < high <= 1.0  # plug-in never above FT on any question here: the share cannot exceed 1
