"""Per-example outcomes and the paired tests: hand-worked examples, scipy/statsmodels, and the scorers' own numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from fedot.evaluation import evaluate
from fedot.evaluation.intervals import intervals_of
from fedot.evaluation.outcomes import OutcomesError, concat, metric_value, read_outcomes, write_outcomes
from fedot.evaluation.paired import bootstrap_p, compare, mcnemar_exact, recovered_interval
from support import datafix


def choice(correct, ids=None):
    return {"kind": "multiple_choice", "ids": ids or list(range(len(correct))), "chosen": [0] * len(correct),
            "acc": list(correct), "acc_norm": list(correct)}


def corpus(loglik, words):
    n = len(loglik)
    return {"kind": "perplexity", "ids": list(range(n)), "loglik": list(loglik), "tokens": [10] * n,
            "words": list(words), "bytes": [5 * w for w in words]}


def test_mcnemar_exact_by_hand():
    # a right / b wrong on 1 question, the reverse on 7: n = 8 discordant, p = 2 * P(X <= 1) = 2 * 9 / 256
    a = [1] * 10 + [1] + [0] * 7
    b = [1] * 10 + [0] + [1] * 7
    out = mcnemar_exact(a, b)
    assert (out["a_only"], out["b_only"]) == (1, 7)
    assert out["p"] == pytest.approx(18 / 256)
    assert mcnemar_exact(a, a)["p"] == 1.0  # no discordant question: nothing to test
    assert mcnemar_exact([1, 0, 1], [0, 1, 0])["p"] == 1.0  # 2 vs 1: p capped at 1


@pytest.mark.parametrize("a_only,b_only", [(0, 6), (3, 12), (20, 31), (50, 50), (9, 1)])
def test_mcnemar_matches_scipy_and_statsmodels(a_only, b_only):
    scipy_stats = pytest.importorskip("scipy.stats")
    a = [1] * a_only + [0] * b_only + [1] * 30 + [0] * 5
    b = [0] * a_only + [1] * b_only + [1] * 30 + [0] * 5
    p = mcnemar_exact(a, b)["p"]
    assert p == pytest.approx(scipy_stats.binomtest(a_only, a_only + b_only, 0.5).pvalue, rel=1e-9)
    try:
        from statsmodels.stats.contingency_tables import mcnemar
    except ImportError:
        return
    table = [[35 - 5, a_only], [b_only, 5]]
    assert p == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-9)


def test_bootstrap_p_is_two_sided_and_never_zero():
    assert bootstrap_p(np.array([1.0, 2.0, 3.0, -1.0])) == 0.5
    assert bootstrap_p(np.ones(1000)) == pytest.approx(1 / 1000)
    assert bootstrap_p(np.zeros(10)) == 1.0


def test_metrics_from_outcomes_are_the_reported_arithmetic():
    o = corpus([-10.0, -30.0], [4, 6])
    assert metric_value(o, "word_perplexity") == pytest.approx(math.exp(40 / 10))  # not a mean of per-doc values
    assert metric_value(o, "byte_perplexity") == pytest.approx(math.exp(40 / 50))
    assert metric_value(o, "bits_per_byte") == pytest.approx(40 / 50 / math.log(2))
    assert metric_value(choice([1, 0, 1, 1]), "acc") == 0.75
    rows = np.array([[0, 0], [1, 1]])
    assert list(metric_value(o, "word_perplexity", rows)) == pytest.approx([math.exp(10 / 4), math.exp(30 / 6)])
    with pytest.raises(OutcomesError, match="not computed from"):
        metric_value(o, "acc")


def test_compare_identical_models_finds_nothing():
    o = corpus([-10.0, -30.0, -12.0, -8.0], [4, 6, 5, 3])
    out = compare(o, o, "word_perplexity", higher_is_better=False)
    assert out["difference"] == 0 and out["ci95"] == [0.0, 0.0] and out["p"] == 1.0 and not out["a_better"]
    assert not out["b_better"]


def test_compare_finds_a_consistently_better_model():
    rng = np.random.default_rng(1)
    words = rng.integers(50, 200, size=40).tolist()
    base = [-3.0 * w for w in words]
    better = [ll + 0.3 * w for ll, w in zip(base, words)]  # lower perplexity on every document
    out = compare(corpus(better, words), corpus(base, words), "word_perplexity", higher_is_better=False)
    assert out["difference"] < 0 and out["ci95"][1] < 0 and out["p"] < 0.01 and out["a_better"]
    assert not out["b_better"]
    worse = compare(corpus(base, words), corpus(better, words), "word_perplexity", higher_is_better=False)
    assert worse["b_better"] and not worse["a_better"]
    assert out["test"].startswith("paired bootstrap")
    a, b = choice([1] * 30 + [0] * 10), choice([0] * 12 + [1] * 18 + [0] * 10)
    mc = compare(a, b, "acc", higher_is_better=True)
    assert mc["test"] == "exact McNemar" and (mc["a_only"], mc["b_only"]) == (12, 0)
    assert mc["p"] == pytest.approx(2 / 2 ** 12) and mc["a_better"]
    assert mc["difference"] == pytest.approx(0.3)


def test_different_examples_are_refused():
    with pytest.raises(OutcomesError, match="different examples"):
        compare(choice([1, 0]), choice([1, 0, 1]), "acc", True)
    with pytest.raises(OutcomesError, match="not comparable"):
        compare(choice([1, 0]), corpus([-1.0, -2.0], [1, 1]), "acc", True)


def test_recovered_interval_brackets_the_share():
    zs = choice([0] * 60 + [1] * 40)
    ft = choice([1] * 40 + [0] * 20 + [1] * 40)  # +40 points
    plug = choice([1] * 20 + [0] * 40 + [1] * 40)  # +20 points: half the gain
    lo, hi = recovered_interval(zs, plug, ft, "acc")
    assert lo < 0.5 < hi and 0 < lo and hi <= 1.0


def test_pooled_seeds_and_the_outcomes_file(tmp_path):
    pooled = concat([choice([1, 0]), choice([0, 0])])
    assert pooled["ids"] == ["0:0", "0:1", "1:0", "1:1"] and pooled["acc"] == [1, 0, 0, 0]
    path = write_outcomes(tmp_path / "o.json", {"plugin": choice([1, 1])})
    assert read_outcomes(path)["plugin"]["acc"] == [1, 1]
    with pytest.raises(OutcomesError, match="re-run"):
        read_outcomes(tmp_path / "missing.json")


def test_scorers_store_outcomes_that_reproduce_their_metrics(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("FEDOT_DATA_DIR", str(datafix.write(tmp_path / "data")))
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"])
    tok = AutoTokenizer.from_pretrained(tiny_models["llama"])
    ppl = evaluate(model, tok, "wikitext2", "test")
    o = ppl["outcomes"]
    assert o["kind"] == "perplexity" and len(o["ids"]) == ppl["examples"] and sum(o["tokens"]) == ppl["tokens"]
    for m in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert metric_value(o, m) == pytest.approx(ppl[m], rel=1e-12)
    arc = evaluate(model, tok, "arc_easy", "test", limit=12)
    o = arc["outcomes"]
    assert o["ids"] == list(range(12)) and all(c in (0, 1, 2) for c in o["chosen"])
    assert metric_value(o, "acc") == pytest.approx(arc["acc"]) and metric_value(o, "acc_norm") == pytest.approx(
        arc["acc_norm"])
    # acc is 1 exactly where the highest-likelihood answer is the gold one (B, index 1, in the fixture)
    assert o["acc"] == [int(c == 1) for c in o["chosen"]]
    # the intervals recomputed from the outcomes are the scorer's own (Wilson for choices); corpora get a document
    # bootstrap of the perplexity itself, which brackets it
    assert intervals_of({"arc": o}, "acc")["arc"] == list(arc["acc_ci95"])
    low, high = intervals_of({"ppl": ppl["outcomes"]}, "word_perplexity")["ppl"]
    assert low <= ppl["word_perplexity"] <= high and low < high


def test_pooled_seeds_resample_questions_not_pairs():
    """Two seeds that answer alike are one seed's evidence, not twice it: the pooled test resamples each question with
    both its seeds, so duplicating a seed changes neither the interval nor p (a test over (seed, question) pairs
    would halve p's evidence threshold)."""
    from fedot.evaluation.paired import clusters_of

    rng = np.random.default_rng(3)
    a = choice(rng.integers(0, 2, size=60).tolist())
    b = choice([x if i % 5 else 1 - x for i, x in enumerate(a["acc"])])  # differ on every 5th question
    single = compare(a, b, "acc", True)
    pooled = compare(concat([a, a]), concat([b, b]), "acc", True)
    assert pooled["test"].startswith("paired bootstrap over examples, seeds pooled")
    assert pooled["difference"] == pytest.approx(single["difference"])
    assert pooled["ci95"] == pytest.approx(compare(a, b, "acc", True)["ci95"])
    assert pooled["p"] > mcnemar_exact(concat([a, a])["acc"], concat([b, b])["acc"])["p"]
    assert clusters_of(["0:0", "0:1", "1:0", "1:1"]).tolist() == [[0, 2], [1, 3]]
    assert clusters_of([0, 1, 2]) is None  # nothing pooled: the examples' own test (McNemar here)
    with pytest.raises(ValueError, match="same examples"):
        clusters_of(["0:0", "0:1", "1:0"])
