"""Task data paths, lm-eval parity of prompts and perplexity, hand-checked metrics, training examples."""

import json
import math
import os
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fedot.data_owner.partition import PartitionConfig, partition_indices
from fedot.evaluation.choice import lm_eval_choice
from fedot.evaluation.intervals import wilson_interval
from fedot.evaluation.perplexity import perplexity, rolling_loglikelihood, score_windows, windows
from fedot.evaluation.scoring import evaluate
from fedot.tasks import TASKS, DataNotFoundError, get_task
from fedot.tasks.tokenize import choice_examples, corpus_examples
from support import datafix

SHARED = Path(os.environ.get("FEDOT_DATA_DIR", Path(__file__).parents[2] / "shared" / "data"))
IDENTITY = {"piqa": "goal", "openbookqa": "question_stem", "arc_easy": "question", "sciq": "question",
            "webqs": "question", "hellaswag": "query", "pydocs": "id", "wikitext2": "page", "dolly": "id",
            "dolly_shepherd80": "id", "gsm8k": "id", "gsm8k_lmeval": "id"}


@pytest.fixture
def fixture_data(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))


@pytest.fixture
def tiny(tiny_models):
    path = tiny_models["llama"]
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("name", [n for n in TASKS.names() if n != "arc_challenge"])
def test_every_task_loads_disjoint_splits(name, fixture_data):
    task = get_task(name)
    splits = {s: task.docs(s) for s in ("train", "validation", "test")}
    assert all(splits.values())
    if name in ("wikitext2", "sciq", "webqs", "openbookqa", "arc_easy"):
        return  # train and test come from different published files
    key = IDENTITY[name]
    train, test = {str(d[key]) for d in splits["train"]}, {str(d[key]) for d in splits["test"]}
    assert not train & test


@pytest.mark.skipif(not (SHARED / "MANIFEST.md").exists(), reason="shared offline data not present")
@pytest.mark.parametrize("name,test_size", [("wikitext2", 62), ("piqa", None), ("openbookqa", 500), ("arc_easy", 2376),
                                            ("hellaswag", None), ("sciq", 1000), ("webqs", 2032), ("pydocs", None)])
def test_real_offline_data(name, test_size, monkeypatch):
    monkeypatch.setenv("FEDOT_DATA_DIR", str(SHARED))
    task = get_task(name)
    test, train = task.docs("test"), task.docs("train")
    if test_size:
        assert len(test) == test_size
    key = IDENTITY[name]
    if name in ("piqa", "hellaswag", "pydocs"):  # carved from one published split: must not overlap
        assert not {str(d[key]) for d in train} & {str(d[key]) for d in test}


def test_missing_data_names_path_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDOT_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match=r"arc_challenge/hf_format/test.json.*FEDOT_DATA_DIR"):
        get_task("arc_challenge").docs("test")
    monkeypatch.delenv("FEDOT_DATA_DIR")
    with pytest.raises(DataNotFoundError, match="FEDOT_DATA_DIR"):
        get_task("piqa").docs("test")


@pytest.mark.parametrize("name", ["piqa", "openbookqa", "arc_easy", "hellaswag", "sciq", "webqs"])
def test_prompts_match_lm_eval_rendering(name, fixture_data, tmp_path):
    """The same doc renders to the same prompt, choices and target in fedot and in lm-eval's ConfigurableTask."""
    import json

    from lm_eval.api.task import ConfigurableTask

    task = get_task(name)
    docs = task.docs("test")[:5]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    lm_task = ConfigurableTask(config=task.lm_eval_config(str(path)))
    for doc in lm_task.test_docs():
        assert lm_task.doc_to_text(doc) == task.prompt(doc)
        assert lm_task.doc_to_choice(doc) == task.choices(doc)
        assert lm_task.doc_to_target(doc) == task.target(doc)


def test_hellaswag_preprocessing_and_webqs_prefixes(fixture_data):
    doc = get_task("hellaswag").docs("test")[0]
    assert "[" not in doc["query"] and ". step" in doc["query"] and all("[" not in c for c in doc["choices"])
    doc = get_task("webqs").docs("test")[0]
    assert doc["choices"] == ["Lyon", "Paris"]  # "Paris, France" has the prefix "Paris", as lm-eval drops it


def test_rolling_loglikelihood_matches_lm_eval(tiny):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    model, tok = tiny
    texts = [d["page"][:1500] for d in get_task("pydocs").docs("test")[:3]]
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=1, max_length=48)
    reqs = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i) for i, t in enumerate(texts)]
    expected = lm.loglikelihood_rolling(reqs, disable_tqdm=True)
    assert len(tok.encode(texts[0])) > 3 * 48  # several windows
    for text, want in zip(texts, expected):
        assert rolling_loglikelihood(model, tok, text, 48) == pytest.approx(want, rel=1e-5)


def test_batched_and_unbatched_window_scores_agree(tiny):
    """Padding many windows of different lengths into one batch changes nothing but the speed."""
    model, tok = tiny
    texts = [d["page"][:n] for d, n in zip(get_task("pydocs").docs("test"), (20, 45, 90, 120, 900, 2000))]
    wins = [w for text in texts for w in windows(tok, text, 40)]
    assert len({len(ids) for ids, _ in wins}) >= 3  # windows of several lengths share batches
    one_by_one = score_windows(model, wins, batch_tokens=0)
    batched = score_windows(model, wins, batch_tokens=40 * 16)
    assert batched == pytest.approx(one_by_one, rel=1e-5)


def test_perplexity_metrics_by_hand(monkeypatch, tiny):
    import fedot.evaluation.perplexity as ppl

    model, tok = tiny
    docs = [{"id": "a", "page": "one two  three"}, {"id": "b", "page": "four\nfive é"}]
    monkeypatch.setattr(ppl, "score_windows", lambda model, wins, *a: [-5.0] * len(wins))
    monkeypatch.setattr(ppl, "windows", lambda tok, text, n: [([1], [2]), ([1], [3])])  # two windows a document
    m = perplexity(model, tok, docs, lambda d: d["page"], 2048)
    words, nbytes = 3 + 3, 14 + 12  # re.split(r"\s+") counts; "é" is two bytes
    assert m["word_perplexity"] == pytest.approx(math.exp(20 / words))
    assert m["byte_perplexity"] == pytest.approx(math.exp(20 / nbytes))
    assert m["bits_per_byte"] == pytest.approx(20 / nbytes / math.log(2))


def test_wilson_interval():
    low, high = wilson_interval(0.5, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    assert wilson_interval(1.0, 10)[1] == 1.0 and wilson_interval(0.0, 10)[0] == 0.0


def test_lm_eval_accuracy_matches_hand_scoring(fixture_data, tiny):
    """acc / acc_norm from lm-eval equal an argmax over our own log-likelihoods of each choice."""
    model, tok = tiny
    task = get_task("arc_easy")
    docs = task.docs("test")[:12]
    acc = acc_norm = 0
    for doc in docs:
        ctx = tok.encode(task.prompt(doc), add_special_tokens=False)
        lls = []
        for choice in task.choices(doc):
            cont = tok.encode(" " + choice, add_special_tokens=False)
            ids = torch.tensor([ctx + cont])
            with torch.no_grad():
                logp = model(ids).logits[0, :-1].log_softmax(-1)
            lls.append(sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont)))
        acc += int(max(range(len(lls)), key=lls.__getitem__) == task.target(doc))
        norm = [ll / len(" " + c) for ll, c in zip(lls, task.choices(doc))]
        acc_norm += int(max(range(len(norm)), key=norm.__getitem__) == task.target(doc))
    got = lm_eval_choice(model, tok, task, docs, max_length=128, batch_size=4)
    assert got["acc"] == pytest.approx(acc / 12) and got["acc_norm"] == pytest.approx(acc_norm / 12)


def test_webqs_exact_match_is_bounded(fixture_data, tiny):
    out = evaluate(*tiny, "webqs", "test", limit=4)
    assert 0.0 <= out["exact_match"] <= 1.0 and out["primary"] == out["exact_match"]


def test_training_examples(tiny):
    _, tok = tiny
    ex = choice_examples(tok, [("Question: q\nAnswer:", " yes")], max_length=64)
    ids, labels = ex[0]
    n_ans = len(tok.encode(" yes", add_special_tokens=False))
    assert labels[-n_ans:] == ids[-n_ans:] and set(labels[:-n_ans]) == {-100}
    long = choice_examples(tok, [("word " * 200, " yes")], max_length=16)[0]
    assert len(long[0]) == 16 and long[1][-n_ans:] == long[0][-n_ans:]
    blocks = corpus_examples(tok, ["a b c " * 50, "d e f " * 50], max_length=32)
    assert all(len(b[0]) <= 32 for b in blocks) and sum(len(b[0]) for b in blocks) > 100
    assert tok.eos_token_id in [t for b in blocks for t in b[0]]


def test_partition_pairs_render_only_their_documents(fixture_data, monkeypatch):
    import jinja2

    task = get_task("arc_easy")
    task.__dict__.pop("templates", None)
    compiled = []
    real = jinja2.Template.__new__
    monkeypatch.setattr(jinja2.Template, "__new__", lambda cls, *a, **k: (compiled.append(a[0]), real(cls, *a, **k))[1])
    pairs = task.train_pairs("train")
    assert task.train_pairs("train", [2, 0]) == [pairs[2], pairs[0]]
    assert len(compiled) == 3  # text, choices, target: compiled once, not once per document


@pytest.mark.parametrize("task,scheme", [("pydocs", "document"), ("pydocs", "iid"), ("arc_easy", "dirichlet"),
                                         ("piqa", "iid")])
def test_partitions_cover_train_once_and_are_deterministic(task, scheme, fixture_data):
    cfg = PartitionConfig.of(scheme, **({"alpha": 0.3} if scheme == "dirichlet" else {}))
    parts = partition_indices(task, cfg, 4, seed=3)
    flat = sorted(i for p in parts for i in p)
    assert flat == list(range(len(get_task(task).docs("train"))))
    assert parts == partition_indices(task, cfg, 4, seed=3)
    assert all(parts)


def test_partition_rejects_unworkable_schemes():
    with pytest.raises(ValueError, match="does not apply to pydocs"):
        partition_indices("pydocs", PartitionConfig("dirichlet"), 2)
    with pytest.raises(ValueError, match="does not apply to piqa"):
        partition_indices("piqa", PartitionConfig("document"), 2)
    with pytest.raises(ValueError, match="fewer than"):
        partition_indices("pydocs", PartitionConfig("document"), 500)


@pytest.mark.parametrize("task,row", [
    ("piqa", lambda split, i: {"goal": f"{split} goal {i}", "sol1": "a", "sol2": "b", "label": i % 2}),
    ("hellaswag", lambda split, i: {"activity_label": "x", "ctx_a": f"{split} {i}", "ctx_b": "c",
                                    "ctx": f"{split} ctx {i}", "endings": ["e1", "e2", "e3", "e4"], "label": "1"}),
])
def test_hub_splits_never_evaluate_on_training_data(task, row, monkeypatch):
    """Without FEDOT_DATA_DIR PIQA and HellaSwag come from the hub, whose test splits have no labels: test must be the
    hub's validation split, train and validation disjoint parts of the hub's train split (offline, a fake hub)."""
    from fedot.tasks import choice, get_task

    calls = []

    def fake_hub(path, name, split):
        calls.append(split)
        return [row(split, i) for i in range(200)]

    monkeypatch.delenv("FEDOT_DATA_DIR", raising=False)
    monkeypatch.setattr(choice, "from_hub", fake_hub)
    t = get_task(task)
    parts = {s: [json.dumps(d, sort_keys=True) for d in t.docs(s)] for s in ("train", "validation", "test")}
    text = {s: " ".join(v) for s, v in parts.items()}
    assert "validation" in text["test"] and "train" not in text["test"]
    assert "validation" not in text["train"] + text["validation"]
    assert not set(parts["train"]) & set(parts["validation"]) and parts["validation"] and parts["train"]
    assert len(parts["train"]) + len(parts["validation"]) == 200
