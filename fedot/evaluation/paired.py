"""Paired comparisons of two models scored on the same examples: the test a reviewer expects, not two intervals.

Two accuracies measured on the same questions are correlated (most questions are answered alike by both), so
"outside each other's Wilson intervals" is both too strict and not a test. Instead:

- multiple choice: the **exact McNemar test** on the discordant questions (``a`` right and ``b`` wrong against the
  reverse; under the null each discordant question is a fair coin, so the two-sided p is the binomial tail,
  ``min(1, 2 P(X <= min(n01, n10)))`` with ``X ~ Bin(n01 + n10, 1/2)``: the same as statsmodels'
  ``mcnemar(exact=True)`` and scipy's ``binomtest``);
- corpora: the **paired bootstrap over documents**: resample documents with replacement, recompute both models'
  perplexity on the same resample (sum of log-likelihoods over sum of words, lm-eval's definition), and read the
  difference's 95% percentile interval and its two-sided bootstrap p (twice the share of resamples on the far side
  of zero).

Every comparison also carries the difference's 95% paired-bootstrap interval (choices too), and
:func:`recovered_interval` the interval of the share of the zero-shot -> FT gain that plug-in recovers, from one
shared resample of the three models' outcomes. Seeds pool by concatenation (:func:`fedot.evaluation.outcomes.concat`,
ids ``<seed part>:<example>``), and a pooled comparison resamples *examples*, each with all its seeds' outcomes
(a cluster bootstrap): the same question answered under two seeds is not two independent observations (the
zero-shot side is even identical), so neither McNemar nor a bootstrap over (seed, example) pairs would be valid
there; its p is the cluster bootstrap's.
"""

from __future__ import annotations

import math

import numpy as np

from ..registry import Registry
from .outcomes import METRICS, check_paired, metric_value, size

RESAMPLES = 2000
TESTS: Registry = Registry("paired test")


def mcnemar_exact(a_correct, b_correct) -> dict:
    """The exact (binomial) McNemar test of two classifiers' 0/1 outcomes on the same questions."""
    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n, k = a_only + b_only, min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n if n else 1.0
    return {"a_only": a_only, "b_only": b_only, "p": min(1.0, 2 * tail)}


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def clusters_of(ids) -> np.ndarray | None:
    """The positions of each example's outcomes in pooled ids (``<part>:<example>``), one row per example; None when
    every example occurs once (nothing was pooled). Every example must occur in every part."""
    groups: dict[str, list[int]] = {}
    for pos, i in enumerate(ids):
        groups.setdefault(str(i).split(":", 1)[-1], []).append(pos)
    sizes = {len(g) for g in groups.values()}
    if sizes == {1}:
        return None
    if len(sizes) != 1:
        raise ValueError(f"pooled outcomes hold their examples {sorted(sizes)} times: every seed must score the same "
                         "examples")
    return np.array(list(groups.values()))


def cluster_resample_indices(clusters: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """Resamples of whole examples (rows of :func:`clusters_of`), flattened to the pooled positions they hold."""
    draws = np.random.default_rng(seed).integers(0, len(clusters), size=(resamples, len(clusters)))
    return clusters[draws].reshape(resamples, -1)


def _indices(ids, resamples: int, seed: int) -> tuple[np.ndarray, bool]:
    """(resample indices, whether they are clustered) for outcomes with these ids."""
    clusters = clusters_of(ids)
    if clusters is None:
        return resample_indices(len(ids), resamples, seed), False
    return cluster_resample_indices(clusters, resamples, seed), True


def bootstrap_p(differences: np.ndarray) -> float:
    """Two-sided bootstrap p of ``difference == 0``: twice the share of resamples at or beyond zero on the far side
    (at least one resample's worth, never exactly 0)."""
    below, above = float((differences <= 0).mean()), float((differences >= 0).mean())
    return min(1.0, max(2 * min(below, above), 1 / len(differences)))


def _interval(values: np.ndarray) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


@TESTS.register("multiple_choice", help="exact McNemar on the discordant questions")
def _choice_test(a: dict, b: dict, metric: str, differences: np.ndarray) -> dict:
    return {"test": "exact McNemar", **mcnemar_exact(a[metric], b[metric])}


@TESTS.register("perplexity", help="paired bootstrap over documents")
def _corpus_test(a: dict, b: dict, metric: str, differences: np.ndarray) -> dict:
    return {"test": f"paired bootstrap over documents ({len(differences)} resamples)", "p": bootstrap_p(differences)}


@TESTS.register("generation", help="exact McNemar for exact match, paired bootstrap over examples for ROUGE-L")
def _generation_test(a: dict, b: dict, metric: str, differences: np.ndarray) -> dict:
    if METRICS.entry(metric).limit("binary"):
        return _choice_test(a, b, metric, differences)
    return {"test": f"paired bootstrap over examples ({len(differences)} resamples)", "p": bootstrap_p(differences)}


def compare(a: dict, b: dict | list[dict], metric: str, higher_is_better: bool, names: tuple[str, str] = ("a", "b"),
            resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """``a`` against ``b`` on ``metric``: both values, ``difference = a - b``, its 95% paired-bootstrap interval,
    the kind's paired test and its p, and whether ``a`` is better at p < 0.05.

    ``b`` may be several models' outcomes (e.g. each data owner tuned alone): it is then their mean metric, on the
    same resample, and the test is the paired bootstrap (McNemar needs one 0/1 outcome per question)."""
    group = b if isinstance(b, list) else [b]
    if not group:
        raise ValueError(f"nothing to compare {names[0]} with: {names[1]} has no outcomes")
    for g in group:
        check_paired(a, g, names)
    idx, clustered = _indices(a["ids"], resamples, seed)
    mean_b = np.mean([metric_value(g, metric, idx) for g in group], axis=0)
    differences = metric_value(a, metric, idx) - mean_b
    va, vb = float(metric_value(a, metric)), float(np.mean([metric_value(g, metric) for g in group]))
    out = {"a": names[0], "b": names[1], "metric": metric, "value_a": va, "value_b": vb, "difference": va - vb,
           "ci95": _interval(differences), "n": size(a)}
    if len(group) == 1 and not clustered:
        out.update(TESTS[a["kind"]](a, group[0], metric, differences))
    else:  # several models' mean, or seeds pooled: McNemar does not apply, the bootstrap does
        of = f", mean of {len(group)}" if len(group) > 1 else ""
        pooled = ", seeds pooled within each" if clustered else ""
        out.update({"test": f"paired bootstrap over examples{of}{pooled} ({len(differences)} resamples)",
                    "p": bootstrap_p(differences)})
    direction = (va > vb) if higher_is_better else (va < vb)
    out["a_better"] = bool(direction and out["p"] < 0.05)
    out["b_better"] = bool(va != vb and not direction and out["p"] < 0.05)  # "not above" may be "clearly below"
    return out


def recovered_interval(zero_shot: dict, plugin: dict, finetuned: dict, metric: str, resamples: int = RESAMPLES,
                       seed: int = 0) -> list[float] | None:
    """95% interval of (plug-in - ZS) / (FT - ZS) from one shared resample of the examples; None when the three
    were not scored on the same examples. Resamples where FT gains nothing are dropped (the share is undefined)."""
    check_paired(zero_shot, plugin, ("zero-shot", "plug-in"))
    check_paired(zero_shot, finetuned, ("zero-shot", "FT"))
    idx = _indices(zero_shot["ids"], resamples, seed)[0]
    zs, plug, ft = (metric_value(o, metric, idx) for o in (zero_shot, plugin, finetuned))
    gain = ft - zs
    keep = np.abs(gain) > 1e-12
    if keep.sum() < resamples // 2:
        return None
    return _interval((plug - zs)[keep] / gain[keep])


def pairs_of(outcomes: dict[str, dict], metric: str, higher_is_better: bool) -> dict[str, dict]:
    """The paired tests a run's five numbers call for: plug-in vs zero-shot (condition 1), vs the tuned emulator
    (the owner's edge) and vs FT (how far from the ceiling), each where both sides have outcomes."""
    wanted = {"plug-in vs zero-shot": ("plugin", "zero_shot"),
              "plug-in vs OT emulator": ("plugin", "emulator_finetuned"),
              "plug-in vs FT": ("plugin", "full_finetuned")}
    return {label: compare(outcomes[a], outcomes[b], metric, higher_is_better, (a, b))
            for label, (a, b) in wanted.items() if a in outcomes and b in outcomes}
