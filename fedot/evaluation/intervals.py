"""The 95% interval of one model's score on one split, computed the same way at evaluation time and afterwards.

An evaluation reports each metric with its interval (``<metric>_ci95``): the **Wilson score interval** for a
multiple-choice accuracy (``n`` independent questions), the **percentile bootstrap of the mean** over examples for a
generation metric (ROUGE-L, exact match), and for a corpus the **bootstrap over documents** of the perplexity itself
(lm-eval's ``exp(-sum loglik / sum words)`` recomputed per resample, not a mean of per-document perplexities).
:func:`intervals_of` gives the same intervals from stored per-example outcomes, so a run that kept only its outcomes
(a federated run's rounds) reports its five numbers with intervals too; every resample is seeded, so the interval
from outcomes equals the one the evaluator reported.
"""

from __future__ import annotations

import math

import numpy as np

from ..registry import Registry
from .outcomes import metric_value, size
from .paired import resample_indices

RESAMPLES = 2000
INTERVALS: Registry = Registry("outcomes kind")


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of an accuracy ``p`` measured on ``n`` questions."""
    if n == 0:
        return (0.0, 1.0)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(values, resamples: int = RESAMPLES, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of the mean of ``values``."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return [0.0, 0.0]
    means = v[resample_indices(len(v), resamples, seed)].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


@INTERVALS.register("multiple_choice", help="Wilson score interval of the accuracy")
def _choice(outcomes: dict, metric: str) -> list[float]:
    return list(wilson_interval(float(metric_value(outcomes, metric)), size(outcomes)))


@INTERVALS.register("generation", help="percentile bootstrap of the mean score over examples")
def _generation(outcomes: dict, metric: str) -> list[float]:
    return bootstrap_interval(outcomes[metric])


@INTERVALS.register("perplexity", help="bootstrap over documents of the perplexity itself")
def _corpus(outcomes: dict, metric: str) -> list[float]:
    values = metric_value(outcomes, metric, resample_indices(size(outcomes), RESAMPLES))
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def intervals_of(outcomes: dict[str, dict], metric: str) -> dict[str, list[float]]:
    """``{model: [low, high]}`` for every model's outcomes that have ``metric``."""
    return {name: INTERVALS[o["kind"]](o, metric) for name, o in outcomes.items() if size(o)}
