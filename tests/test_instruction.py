"""Instruction tasks and generation-based evaluation on tiny models: masking, templates, truncation, decoding,
ROUGE-L and answer extraction by hand, partitions, and the five numbers end to end."""

from __future__ import annotations

import math

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from fedot.data_owner.partition import PartitionConfig, partition_indices
from fedot.evaluation import evaluate
from fedot.evaluation.generation import cut, generate
from fedot.evaluation.intervals import intervals_of
from fedot.evaluation.outcomes import metric_value
from fedot.evaluation.paired import compare
from fedot.tasks import get_task
from fedot.tasks.instruction import PLAIN, extract, gsm8k_match, normalise, rouge_l
from fedot.tasks.tokenize import instruction_examples
from support import datafix

CHAT = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant: {% endif %}")


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))


@pytest.fixture
def tiny(tiny_models):
    return (AutoModelForCausalLM.from_pretrained(tiny_models["llama"]),
            AutoTokenizer.from_pretrained(tiny_models["llama"]))


def test_loss_is_on_the_response_tokens_only(tiny):
    _, tok = tiny
    prompt, response = "### Instruction:\nname a colour\n\n### Response:\n", "blue"
    (ids, labels), = instruction_examples(tok, [(prompt, response)], 64)
    p = tok.encode(prompt, add_special_tokens=False)
    r = tok.encode(response, add_special_tokens=False) + [tok.eos_token_id]
    assert ids == p + r
    for i, (token, label) in enumerate(zip(ids, labels)):  # token by token
        assert label == (-100 if i < len(p) else token)
    assert tok.decode([t for t, y in zip(ids, labels) if y != -100]) == "blue" + tok.eos_token


def test_prompts_use_the_chat_template_or_the_plain_one(tiny):
    _, tok = tiny
    task, doc = get_task("dolly"), {"instruction": "Name a colour.", "context": "Sky.", "response": "Blue."}
    assert task.prompt(tok, doc) == PLAIN.format(instruction="Name a colour.", context="### Input:\nSky.\n\n")
    tok.chat_template = CHAT
    assert task.prompt(tok, doc) == "<s>user: Name a colour.\n\nSky.</s><s>assistant: "
    assert get_task("gsm8k_lmeval").prompt(tok, {"instruction": "1+1?"}) == "Question: 1+1?\nAnswer:"


def test_truncation_is_counted_never_silent(tiny):
    _, tok = tiny
    long_prompt, long_response = "word " * 200, "answer " * 200
    pairs = [("short prompt", "ok"), (long_prompt, "ok"), ("short", long_response), (long_prompt, long_response),
             ("a prompt", "")]
    examples = instruction_examples(tok, pairs, 32)
    assert examples.stats == {"examples": 5, "prompt_truncated": 2, "response_truncated": 2, "skipped": 1}
    assert len(examples) + examples.stats["skipped"] == len(pairs)
    assert all(len(ids) <= 32 and any(y != -100 for y in labels) for ids, labels in examples)
    assert sum(y != -100 for y in examples[3][1]) == 16  # the response keeps at least half of max-length


def test_batched_generation_equals_one_prompt_at_a_time(tiny):
    model, tok = tiny
    prompts = ["def f(x):", "The class", "import os\nimport sys\n", "for i in range(10):\n    print"]
    batched, _ = generate(model, tok, prompts, max_new_tokens=12, batch_size=4)
    alone = [generate(model, tok, [p], max_new_tokens=12, batch_size=1)[0][0] for p in prompts]
    assert batched == alone and all(batched)
    assert cut("12 Question: next", ("Question:", "</s>")) == "12 "


def test_generation_batches_hold_a_prompt_and_a_token_budget():
    from fedot.evaluation.generation import batches

    lengths = [10, 3000, 500, 500, 40, 40, 40]
    out = batches(lengths, batch_size=3, batch_tokens=1200)
    assert out == [[1], [2, 3], [4, 5, 6], [0]]  # longest first; 3000 alone; 3 x 500 > 1200; at most 3 per batch
    assert sorted(i for b in out for i in b) == list(range(len(lengths)))


def test_rouge_l_and_answer_extraction_by_hand():
    # LCS of "the cat on the mat" in "the cat sat on the mat" is 5 tokens: P = 5/5, R = 5/6, F = 10/11
    assert rouge_l("the cat on the mat", {"response": "the cat sat on the mat"})["rougeL"] == pytest.approx(10 / 11)
    assert rouge_l("", {"response": "anything"})["rougeL"] == 0.0
    assert extract("so 3 + 4 = 7 and the answer is $1,234.", strict=False) == "$1,234."
    assert normalise("$1,234.") == "1234" and normalise("a\n#### 1,234") == "1234"
    assert extract("#### 72 and 5", strict=True) == "72" and extract("no number", strict=False) == "[invalid]"
    doc = {"response": "Natalia sold 48/2 = 24 clips.\n#### 72"}
    assert gsm8k_match("She sold 72 clips.", doc) == {"exact_match": 1.0, "exact_match_strict": 0.0}
    assert gsm8k_match("48 + 24 = 72\n#### 72", doc) == {"exact_match": 1.0, "exact_match_strict": 1.0}
    assert gsm8k_match("It is 71", doc)["exact_match"] == 0.0


def test_dolly_splits_and_partitions(data):
    task = get_task("dolly")
    train, val, test = (task.docs(s) for s in ("train", "validation", "test"))
    assert (len(test), len(val), len(train)) == (500, 200, 100)  # the fixed held-out set, never trained on
    assert not {d["id"] for d in test} & {d["id"] for d in train + val}
    assert len(get_task("dolly_shepherd80").docs("test")) == 8
    natural = partition_indices("dolly", PartitionConfig.of("natural"), 10)
    assert [{train[i]["shard"] for i in p} for p in natural] == [{s} for s in range(10) if any(
        d["shard"] == s for d in train)]
    with pytest.raises(ValueError, match="num-clients is 4"):
        partition_indices("dolly", PartitionConfig.of("natural"), 4)
    skewed = partition_indices("dolly", PartitionConfig.of("dirichlet", alpha=0.5), 4)
    assert sorted(i for p in skewed for i in p) == list(range(len(train)))
    with pytest.raises(ValueError, match="a label to skew over"):
        partition_indices("gsm8k", PartitionConfig.of("dirichlet"), 4)
    assert len(get_task("gsm8k").docs("validation")) == 200 and len(get_task("gsm8k").docs("train")) == 60


def test_generation_scores_outcomes_and_paired_test(tiny, data):
    model, tok = tiny
    result = evaluate(model, tok, "dolly", "test", limit=6)
    o = result["outcomes"]
    assert o["kind"] == "generation" and len(o["output"]) == 6 and result["examples"] == 6
    assert metric_value(o, "rougeL") == pytest.approx(result["rougeL"])
    lo, hi = result["rougeL_ci95"]
    assert lo <= result["rougeL"] <= hi
    assert intervals_of({"zs": o}, "rougeL") == {"zs": [lo, hi]}  # the same interval from the stored outcomes
    assert compare(o, o, "rougeL", True)["p"] == 1.0
    gsm = evaluate(model, tok, "gsm8k", "test", limit=4)
    assert set(gsm["outcomes"]) >= {"exact_match", "exact_match_strict", "output"}
    assert compare(gsm["outcomes"], gsm["outcomes"], "exact_match", True)["test"] == "exact McNemar"


def test_five_numbers_on_dolly_single_site(tiny_models, data, tmp_path):
    from fedot.run.single_site import OffsiteConfig, run
    from fedot.settings import from_flat

    cfg = from_flat(OffsiteConfig, {"model": str(tiny_models["llama"]), "bottom": 1, "top": 1, "emulator-blocks": 2,
                                    "task": "dolly", "tuning": "lora", "steps": 2, "batch-size": 2,
                                    "max-length": 48, "lr": [1e-3], "full-ft": True, "limit": 4, "val-limit": 4,
                                    "train-limit": 20})
    record = run(cfg, tmp_path / "run")
    assert record["metric"] == "rougeL" and all(math.isfinite(v) for v in record["numbers"].values())
    assert record["train_examples"]["count"] + record["train_examples"]["skipped"] == 20
    assert record["paired"]["plug-in vs zero-shot"]["n"] == 4


def test_ten_shepherd_data_owners_federated_in_process(tiny_models, data, tmp_path):
    """The dolly_10clients layout on a tiny model: natural partitioning, each data owner on its own shard, the
    truncation counts in every round's row, the five numbers in ROUGE-L with paired tests over the same answers."""
    from support.inprocess import outputs, run_config, run_in_process

    rc = run_config(tiny_models["llama"], tmp_path / "run", task="dolly", partitioning="natural",
                    **{"num-clients": 10, "num-rounds": 1, "steps": 1, "max-length": 48, "eval-limit": 3,
                       "eval-max-new-tokens": 8, "full-ft": False})
    run_in_process(rc, 10)
    rows, results = outputs(rc)
    assert len(rows[1]["accepted"]) == 10 and rows[1]["aggregated"]
    assert rows[1]["examples_truncated"] > 0 and rows[1]["examples_skipped"] == 0  # 48 tokens cut most records
    assert results["metric"] == "rougeL" and math.isfinite(results["numbers"]["plugin"])
    assert results["paired"]["plug-in vs zero-shot"]["n"] == 3
    # each number with its interval from the outcomes (a federated run keeps no evaluator details), in the table too
    assert set(results["intervals"]) == {"zero_shot", "emulator_zero_shot", "emulator_finetuned", "plugin"}
    low, high = results["intervals"]["plugin"]
    assert low <= results["numbers"]["plugin"] <= high
    table = (tmp_path / "run" / "results.md").read_text()
    assert f"| OT Plug-in | {100 * results['numbers']['plugin']:.1f}% | {100 * low:.1f}%–{100 * high:.1f}% |" in table
    # a run written before intervals existed gets them from `fedot render`, its numbers and versions unchanged
    import json

    from fedot.cli import main

    older = {k: v for k, v in results.items() if k != "intervals"}
    (tmp_path / "run" / "results.json").write_text(json.dumps({**older, "versions": {"torch": "0.0-then"}}))
    assert main(["render", str(tmp_path / "run")]) == 0
    rendered = json.loads((tmp_path / "run" / "results.json").read_text())
    assert rendered["intervals"] == results["intervals"] and rendered["numbers"] == results["numbers"]
    assert rendered["versions"] == {"torch": "0.0-then"} and rendered["paired"] == results["paired"]
    assert main(["render", str(tmp_path / "nothing")]) == 2  # not a finished run: an error naming results.json


def test_study_comparisons_work_on_generated_answers():
    """The study's per-seed and pooled paired tests take ROUGE-L and exact-match outcomes as they take others."""
    from fedot.run.study.summary import comparison

    def run(seed, scores, arm="federated"):
        o = {"kind": "generation", "ids": list(range(len(scores))), "output": ["x"] * len(scores), "rougeL": scores}
        zero = {**o, "rougeL": [0.1] * len(scores)}
        return {"seed": seed, "arm": arm, "outcomes": {"plugin": o, "zero_shot": zero}}

    fed = [run(0, [0.5, 0.4, 0.6, 0.5]), run(1, [0.6, 0.5, 0.5, 0.4])]
    out = comparison(fed, fed, ("federated", "zero-shot"), [0, 1], "rougeL", True, 500, b_name="zero_shot")
    assert out["pooled"]["n"] == 8 and out["pooled"]["difference"] == pytest.approx(0.5 - 0.1)
    assert out["pooled"]["test"].startswith("paired bootstrap") and out["per_seed"]["1"]["n"] == 4
