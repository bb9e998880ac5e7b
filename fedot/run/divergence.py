"""Divergence is an outcome, never a number: a round whose adapter breaks is rolled back and said so.

A round has diverged when its aggregated adapter evaluates to NaN or Inf (plug-in or through the emulator), or when
every reply of the round was rejected as non-finite (the global adapter sent makes the data owners' training blow
up). The owner then goes back to the last adapter that evaluated finite (the initial one at worst), marks the round
``diverged`` in rounds.jsonl with the reason and the round it rolled back to, and, per ``on-divergence``, carries on
from there (``rollback``) or stops (``stop``: the run writes its results from the last finite adapter, says
"diverged at round r" and exits non-zero). No table ever shows NaN as a plug-in: a number that is not finite is
reported as missing, with the reason (:func:`fedot.run.results.write`).
"""

from __future__ import annotations

import math
import re

NON_FINITE = re.compile(r"\bnan\b|\binf\b|NaN or Inf|not finite", re.IGNORECASE)
ACTIONS = ("rollback", "stop")


class Diverged(RuntimeError):
    def __init__(self, server_round: int, reason: str, adapter=None):
        super().__init__(f"diverged at round {server_round}: {reason}")
        self.round, self.reason, self.adapter = server_round, reason, adapter  # adapter: the last finite one


def finite_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def divergence(row: dict, evaluation: dict | None) -> str | None:
    """Why this round diverged, or None."""
    if evaluation is not None:
        bad = {k: evaluation.get(k) for k in ("plugin", "emulator_finetuned") if not finite_number(evaluation.get(k))}
        if bad:
            return "the aggregated adapter evaluates to " + ", ".join(f"{v} ({k})" for k, v in bad.items())
    reasons = [r["reason"] for r in row.get("rejected", []) if not r["reason"].startswith("timed out")]
    if not row.get("accepted") and reasons and all(NON_FINITE.search(r) for r in reasons):
        return f"every reply ({len(reasons)}) was non-finite: the global adapter sent makes training diverge"
    return None


class Guard:
    """The last adapter that evaluated finite, and what to do when a round diverges."""

    def __init__(self, action: str, good_round: int, good):
        if action not in ACTIONS:
            raise ValueError(f"on-divergence must be one of {ACTIONS}, got {action!r}")
        self.action, self.good_round, self.good = action, good_round, good

    def check(self, row: dict, evaluation: dict | None, arrays, server_round: int):
        """(the adapter to carry on with, the round's divergence record or None)."""
        reason = divergence(row, evaluation)
        if reason is None:
            if evaluation is not None:
                self.good_round, self.good = server_round, arrays
            return arrays, None
        record = {"reason": reason, "rolled_back_to": self.good_round, "action": self.action}
        if evaluation is not None:
            record["evaluation"] = {k: repr(v) for k, v in evaluation.items() if k in ("plugin", "emulator_finetuned")}
        return self.good, record
