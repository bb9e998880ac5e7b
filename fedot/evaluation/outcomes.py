"""Per-example outcomes of an evaluation, and every metric recomputed from any subset of them.

A result's metric says how a model did on a split; the outcomes say how it did on each example, which is what a
paired comparison of two models on the same examples needs (:mod:`fedot.evaluation.paired`). They are stored
column-wise (one list per field, ``ids`` the example's index in the split):

- multiple choice: ``chosen`` (the answer with the highest log-likelihood) and one 0/1 column per metric, named by it
  (lm-eval's ``acc`` and ``acc_norm`` of that question; ``exact_match`` for WebQuestions);
- corpora: ``loglik`` (the document's summed log-likelihood over lm-eval's disjoint rolling windows), ``tokens``,
  ``words`` and ``bytes`` (the denominators of word and byte perplexity);
- generation: ``output`` (the generated text) and each metric's score per example (ROUGE-L, or 0/1 exact match).

:data:`METRICS` maps each metric name to its value on a resample of the examples (a ``(resamples, n)`` index array),
so a bootstrap and the reported number are the same arithmetic: word perplexity is ``exp(-sum loglik / sum words)``
over the chosen documents, exactly lm-eval's ``wikitext`` definition, not a mean of per-document perplexities.
Outcomes travel beside results as ``outcomes.json`` (a run's final five) and ``outcomes/r<round>.json`` (each
evaluated round of a federated run).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..files import write_json
from ..registry import Registry

METRICS: Registry = Registry("metric")
for _name, _help, _kinds in (("acc", "accuracy", ("multiple_choice",)),
                             ("acc_norm", "length-normalised accuracy", ("multiple_choice",)),
                             ("exact_match", "the answer is the gold one", ("multiple_choice", "generation")),
                             ("exact_match_strict", "the answer after '####' is the gold one", ("generation",)),
                             ("rougeL", "ROUGE-L F-measure against the reference", ("generation",))):
    METRICS.register(_name, lambda c, idx, m=_name: c[m][idx].mean(-1), help=_help, kinds=_kinds,
                     binary=_name != "rougeL")
METRICS.register("word_perplexity", lambda c, idx: np.exp(-c["loglik"][idx].sum(-1) / c["words"][idx].sum(-1)),
                 help="exp(-log-likelihood / words)", kinds=("perplexity",))
METRICS.register("byte_perplexity", lambda c, idx: np.exp(-c["loglik"][idx].sum(-1) / c["bytes"][idx].sum(-1)),
                 help="exp(-log-likelihood / bytes)", kinds=("perplexity",))
METRICS.register("bits_per_byte", lambda c, idx: -c["loglik"][idx].sum(-1) / c["bytes"][idx].sum(-1) / math.log(2),
                 help="-log2-likelihood / bytes", kinds=("perplexity",))


TEXT = ("kind", "ids", "output")  # fields that are not numbers


class OutcomesError(ValueError):
    pass


def columns(outcomes: dict) -> dict[str, np.ndarray]:
    """The outcome lists as float arrays (``ids`` and ``kind`` left out)."""
    return {k: np.asarray(v, dtype=np.float64) for k, v in outcomes.items() if k not in TEXT}


def size(outcomes: dict) -> int:
    return len(outcomes["ids"])


def metric_value(outcomes: dict, metric: str, idx=None) -> float | np.ndarray:
    """``metric`` over all examples (``idx`` None), or over each row of an index array."""
    entry = METRICS.entry(metric)
    if outcomes["kind"] not in entry.limit("kinds"):
        raise OutcomesError(f"metric {metric!r} is not computed from {outcomes['kind']} outcomes")
    if idx is None:
        idx = np.arange(size(outcomes))
    return entry.value(columns(outcomes), idx)


def first_examples(outcomes: dict[str, dict], n: int, metric: str) -> dict:
    """Each named evaluation's ``metric`` over the split's first ``n`` examples (ids below n: what scoring with
    limit n scores), with ``examples``, the number of them: a whole-split evaluation's point on a curve scored on
    those examples only."""
    out: dict = {}
    for name, o in outcomes.items():
        idx = np.flatnonzero(np.asarray(o["ids"]) < n)
        if not idx.size:
            raise OutcomesError(f"the {name} outcomes hold none of the split's first {n} examples")
        out[name], out["examples"] = float(metric_value(o, metric, idx)), int(idx.size)
    return out


def check_paired(a: dict, b: dict, names: tuple[str, str] = ("a", "b")) -> None:
    """Two outcomes can be compared example by example only if they scored the same examples of the same kind."""
    if a["kind"] != b["kind"]:
        raise OutcomesError(f"{names[0]} has {a['kind']} outcomes and {names[1]} {b['kind']}: not comparable")
    if list(a["ids"]) != list(b["ids"]):
        raise OutcomesError(f"{names[0]} and {names[1]} were scored on different examples ({size(a)} and "
                            f"{size(b)}); a paired test needs the same examples: evaluate both with the same split "
                            "and limit")


def concat(parts: list[dict]) -> dict:
    """Outcomes of several evaluations (e.g. seeds) as one, ids made distinct per part (pooled tests)."""
    if not parts:
        raise OutcomesError("no outcomes to pool")
    kinds = {p["kind"] for p in parts}
    if len(kinds) != 1:
        raise OutcomesError(f"cannot pool outcomes of different kinds: {sorted(kinds)}")
    out: dict = {"kind": parts[0]["kind"], "ids": [f"{i}:{x}" for i, p in enumerate(parts) for x in p["ids"]]}
    for key in parts[0]:
        if key not in ("kind", "ids"):
            out[key] = [v for p in parts for v in p[key]]
    return out


def split_result(result: dict) -> tuple[dict, dict | None]:
    """(the metrics, the outcomes) of an evaluation result."""
    metrics = {k: v for k, v in result.items() if k != "outcomes"}
    return metrics, result.get("outcomes")


def write_outcomes(path: str | Path, outcomes: dict[str, dict]) -> Path:
    """``{name: outcomes}`` as one compact JSON file (atomically)."""
    return write_json(path, outcomes, indent=None)


def read_outcomes(path: str | Path) -> dict[str, dict]:
    path = Path(path)
    if not path.exists():
        raise OutcomesError(f"{path} does not exist: the run was made by a fedot without per-example outcomes; "
                            "re-run it (finished evaluations are reused from the evaluation cache)")
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise OutcomesError(f"{path} is not valid JSON ({e}); delete it and re-run the evaluation") from e
    for name, o in data.items():
        if not isinstance(o, dict) or "kind" not in o or "ids" not in o:
            raise OutcomesError(f"{path}: {name!r} is not a per-example outcomes record")
    return data
