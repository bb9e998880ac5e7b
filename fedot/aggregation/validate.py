"""Why a client's reply cannot be aggregated, and how an accepted one is bounded: checked before it counts.

A federation spans organisations that do not trust each other, so every field of a reply is untrusted input. A reply
is rejected, with its reason logged in rounds.jsonl, unless it carries exactly one ArrayRecord ``arrays`` (the
adapter's tensor names, shapes and dtypes, checked on the wire metadata before any tensor is deserialised, all
finite) and one MetricRecord ``metrics`` and nothing else. The metrics fedot knows (:data:`KNOWN`) must each be a
finite scalar of their kind (a count a whole number >= 0, ``num-examples`` > 0); a list, or a value of the wrong kind,
is rejected with the reason; any other metric must be a finite number or a list of them. Whatever passes is bounded
for every aggregation rule: its example weight is capped absolutely (``max-example-weight``, else 1e6), and an
update farther than ``max-update-norm`` from the global adapter (L2 over all tensors) is rejected or scaled back
onto that sphere; the bounds relative to the round's other replies follow in :mod:`fedot.aggregation.influence`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

FAULT = "fault"  # the optional record a fault-injecting data owner adds to its reply
RUNTIME = "runtime"  # the optional record saying where the data owner trained (device, dtype)
OPTIONAL = (FAULT, RUNTIME)
DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float64: "float64"}


class Rejected(ValueError):
    """A reply that cannot be aggregated; the message is the reason logged."""


@dataclass
class Reply:
    node: int
    state: dict[str, torch.Tensor]
    weight: float  # capped num-examples
    metrics: dict = field(default_factory=dict)
    clipped: bool = False


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Rejected(f"metric {name!r} must be a finite number, got {type(value).__name__} {value!r:.60}")
    return float(value)


def _count(name: str, value: float) -> float:
    if value < 0 or value != int(value):
        raise Rejected(f"metric {name!r} is a count: a whole number >= 0, got {value!r}")
    return value


def _nonnegative(name: str, value: float) -> float:
    if value < 0:
        raise Rejected(f"metric {name!r} must be >= 0, got {value!r}")
    return value


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise Rejected(f"metric {name!r} must be a positive number, got {value!r}")
    return value


# the reply metrics fedot reads, each a finite scalar of its kind (fedot.data_owner.worker.local_round sends them)
KNOWN = {"num-examples": _positive, "train-steps": _count, "train-tokens": _count, "emulator-loads": _count,
         "worker-pid": _count, "examples-truncated": _count, "examples-skipped": _count,
         "train-loss": lambda n, v: v, "train-loss-last": lambda n, v: v, "train-seconds": _nonnegative}


def check_metrics(metrics) -> dict:
    from flwr.app import MetricRecord

    if not isinstance(metrics, MetricRecord):
        raise Rejected(f"'metrics' must be a MetricRecord, got {type(metrics).__name__}")
    out = {}
    for name, value in metrics.items():
        if name in KNOWN:
            if isinstance(value, list):
                raise Rejected(f"metric {name!r} must be a single number, got a list of {len(value)}")
            out[name] = KNOWN[name](name, _number(name, value))
        else:
            out[name] = [_number(name, v) for v in value] if isinstance(value, list) else _number(name, value)
    if "num-examples" not in out:
        raise Rejected("metrics lack 'num-examples'")
    return out


def check_arrays(arrays, reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapter in ``arrays`` if it has the global adapter's names, shapes and dtypes and is finite."""
    from flwr.app import ArrayRecord

    if not isinstance(arrays, ArrayRecord):
        raise Rejected(f"'arrays' must be an ArrayRecord, got {type(arrays).__name__}")
    missing, extra = sorted(set(reference) - set(arrays)), sorted(set(arrays) - set(reference))
    if missing or extra:
        raise Rejected(f"tensor names differ from the global adapter (missing {missing[:3]}, unexpected {extra[:3]})")
    state = {}
    for name, ref in reference.items():
        array = arrays[name]
        shape, dtype = tuple(getattr(array, "shape", ()) or ()), getattr(array, "dtype", None)
        if shape != tuple(ref.shape):  # before deserialising: an oversized array is never materialised
            raise Rejected(f"{name} has shape {shape}, expected {tuple(ref.shape)}")
        if dtype != DTYPES.get(ref.dtype, str(ref.dtype).removeprefix("torch.")):
            raise Rejected(f"{name} has dtype {dtype}, expected {ref.dtype}")
        try:
            t = torch.from_numpy(np.array(array.numpy(), copy=True))
        except Exception as e:  # corrupt payload bytes
            raise Rejected(f"{name} cannot be read: {type(e).__name__}: {e}") from None
        if tuple(t.shape) != tuple(ref.shape) or t.dtype != ref.dtype:
            raise Rejected(f"{name} decodes to {tuple(t.shape)} {t.dtype}, expected {tuple(ref.shape)} {ref.dtype}")
        if not torch.isfinite(t).all():
            raise Rejected(f"{name} contains NaN or Inf")
        state[name] = t
    return state


def update_norm(state: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float((state[k].double() - ref.double()).pow(2).sum()) for k, ref in reference.items()))


def check_reply(msg, reference: dict[str, torch.Tensor], cfg) -> Reply:
    """A reply Message as an aggregatable :class:`Reply` (``cfg``: an AggregationConfig), or :class:`Rejected`."""
    from flwr.app import ConfigRecord

    node = msg.metadata.src_node_id
    if msg.has_error():
        raise Rejected(f"client failed: {msg.error.reason}")
    content = msg.content
    names = set(content.keys())
    if not {"arrays", "metrics"} <= names <= {"arrays", "metrics", *OPTIONAL}:
        raise Rejected(f"reply must hold the records 'arrays' and 'metrics' (and optionally {list(OPTIONAL)}) and "
                       f"nothing else, got {sorted(names)}")
    for name in OPTIONAL:
        if name in names and not isinstance(content[name], ConfigRecord):
            raise Rejected(f"'{name}' must be a ConfigRecord, got {type(content[name]).__name__}")
    metrics = check_metrics(content["metrics"])
    state = check_arrays(content["arrays"], reference)
    clipped = False
    if cfg.max_update_norm:
        norm = update_norm(state, reference)
        if norm > cfg.max_update_norm:
            if cfg.update_norm_action == "reject":
                raise Rejected(f"update norm {norm:.4g} exceeds max-update-norm {cfg.max_update_norm:g}")
            scale = cfg.max_update_norm / norm
            state = {k: (ref + (state[k] - ref) * scale).to(ref.dtype) for k, ref in reference.items()}
            clipped = True
    return Reply(node, state, min(metrics["num-examples"], cfg.weight_cap), metrics, clipped)


def reported(msg, name: str) -> dict | None:
    """An optional ConfigRecord of a reply (``fault``: the fault it injected; ``runtime``: where it trained), read
    defensively: short text or numbers only."""
    from flwr.app import ConfigRecord

    try:
        record = msg.content[name] if not msg.has_error() and name in msg.content.keys() else None
    except Exception:  # a reply malformed beyond reading: its rejection says why
        return None
    if not isinstance(record, ConfigRecord):
        return None
    return {str(k)[:40]: v[:60] if isinstance(v, str) else v if isinstance(v, (int, float)) else repr(v)[:60]
            for k, v in list(record.items())[:8]}


def injected_fault(msg) -> dict | None:
    """The fault a data owner reports having injected (``fedot.data_owner.faults``)."""
    return reported(msg, FAULT)


def finite(state: dict[str, torch.Tensor]) -> bool:
    return all(torch.isfinite(t).all() for t in state.values())
