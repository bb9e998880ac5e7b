"""Bounded influence by default: one reply cannot dominate or blow up a round, whatever rule aggregates it.

The threat this default covers is one (or a few) data owners sending a finite, well-formed reply that is wildly
out of scale with the round: an update multiplied by 1e30, or a claim of 1e300 training examples. Each becomes a
bounded nudge instead of a takeover, relative to the *other* replies of the same round:

- **example weight**: at most ``max-weight-ratio`` (k_w) times the round's lower median of the accepted replies'
  counts (the lower median: with two replies it is the smaller one, so a liar never sets its own bound);
- **update norm** (L2 distance from the global adapter): with at least three accepted replies, at most
  ``max-norm-ratio`` (k_n) times their lower-median norm; beyond it the update is rejected or scaled back onto that
  sphere (``update-norm-action``).

The defaults (k_w = k_n = 10) leave honest runs untouched: fedot's committed partitions hold at most 4.6 times the
lower-median count (ARC-Easy, Dirichlet 0.1, 10 owners), and honest updates with equal local steps differ in norm by
small factors; both ratios are recorded per reply in rounds.jsonl (``influence``) so a run shows how close it came.
What this does not cover: a coordinated group (a median of liars is a liar), a small but adversarially directed
update (sign flips of honest size), or data poisoning; those need a robust rule (median, trimmed mean, Krum, Bulyan)
or differential privacy. With the bounds on, a streaming rule holds the round's replies until it ends (the bounds
need all of them); set both ratios to 0 to fold replies in as they arrive.

Updates that barely move the adapter (a data owner with nothing to train on, or a do-nothing attacker) are left out
of the lower median: below :data:`NEGLIGIBLE_RELATIVE` times the global adapter's norm (and always below
:data:`NEGLIGIBLE_ABSOLUTE`) they carry no scale, and with half or more of them in a round the median would be about
zero and every honest update would look like an outlier (hypothesis found that case). They are still aggregated,
and are never rejected by the bound, being smaller than it; the bound needs three updates that moved.
"""

from __future__ import annotations

import math
import statistics

import torch

from .validate import Rejected, Reply, update_norm

NEGLIGIBLE_RELATIVE = 1e-6  # of the global adapter's norm: an update below this did not move it
NEGLIGIBLE_ABSOLUTE = 1e-12  # an update below this norm moved nothing, whatever the adapter (e.g. all zeros)


def bound(replies: list[Reply], reference: dict[str, torch.Tensor], weight_ratio: float, norm_ratio: float,
          action: str) -> tuple[list[Reply], list[dict], list[dict]]:
    """(the replies as aggregated, one record per reply for rounds.jsonl, the rejections)."""
    norms = [update_norm(r.state, reference) for r in replies]
    records = [{"node": r.node, "weight_claimed": r.weight, "norm": n} for r, n in zip(replies, norms)]
    if not replies:
        return [], records, []
    floor = max(NEGLIGIBLE_RELATIVE * math.sqrt(sum(float(t.double().pow(2).sum()) for t in reference.values())),
                NEGLIGIBLE_ABSOLUTE)
    moved = [n for n in norms if n > floor]
    counts, mid_norm = statistics.median_low([r.weight for r in replies]), statistics.median_low(moved or [0.0])
    norm_known = len(moved) >= 3
    norm_cap = norm_ratio * mid_norm if norm_ratio and norm_known else None
    kept, rejected = [], []
    for r, n, rec in zip(replies, norms, records):
        rec["weight_ratio"] = r.weight / counts
        rec["norm_ratio"] = n / mid_norm if norm_known else None
        if weight_ratio and r.weight > weight_ratio * counts:
            r.weight = weight_ratio * counts
            rec["weight_capped"] = True
        if norm_cap is not None and n > norm_cap:
            if action == "reject":
                rec["rejected"] = True
                rejected.append({"node": r.node, "reason": str(Rejected(
                    f"update norm {n:.4g} is more than max-norm-ratio {norm_ratio:g} x the round's lower-median norm "
                    f"{mid_norm:.4g}"))})
                continue
            scale = norm_cap / n
            r.state = {k: (ref + (r.state[k] - ref) * scale).to(ref.dtype) for k, ref in reference.items()}
            r.clipped, rec["norm_clipped"] = True, True
        rec["weight"] = r.weight
        kept.append(r)
    return kept, records, rejected
