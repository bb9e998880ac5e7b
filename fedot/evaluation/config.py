"""When and on how much the model owner evaluates during a federated run.

A per-round curve of the whole test split costs one full evaluation per round (WikiText-2's 62 articles through the
full model and the emulator: ~15 min on 2 CPU cores), so ``eval-curve-limit`` scores the rounds before the last
on the split's first ``eval-curve-limit`` examples only. The last round is scored on everything (its five numbers),
and its score on those first examples is taken from its per-example outcomes, as is zero-shot's at round 0: the
curve is one set of examples from round 0 to the end (:func:`fedot.evaluation.outcomes.first_examples`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import SettingError, group, setting
from .generation import Decoding


@dataclass
class EvalConfig:
    every: int = setting(1, "rounds between evaluations of the aggregated adapter (the last round always is)", ge=1)
    split: str = setting("test", "the split the model owner scores: test for results; validation to choose settings "
                         "(learning rates) without looking at test data", choices=("validation", "test"))
    limit: int = setting(0, "examples scored (documents for corpora); 0: the whole split", ge=0)
    curve_limit: int = setting(0, "rounds before the last are scored on the split's first curve-limit examples "
                               "only (a cheaper per-round curve; the last round's score on them comes from its "
                               "per-example outcomes); 0: every evaluated round scores eval-limit", ge=0)
    decoding: Decoding = group(Decoding)
    cache: bool = setting(True, "reuse deterministic results (zero-shot scores, the FT baseline, plug-in scores) from "
                          "$FEDOT_CACHE/evaluations; each entry is verified, a corrupt one recomputed")

    @property
    def examples(self) -> int | None:
        return self.limit or None

    def check(self) -> None:
        if self.curve_limit and self.limit and self.curve_limit >= self.limit:
            raise SettingError(f"eval-curve-limit = {self.curve_limit} is not below eval-limit = {self.limit}, so "
                               "the curve would cost what the whole evaluation costs: lower eval-curve-limit (or "
                               "set it to 0 to score every evaluated round on eval-limit examples)")

    def due(self, server_round: int, num_rounds: int) -> bool:
        return server_round % self.every == 0 or server_round == num_rounds

    def curve_only(self, server_round: int, num_rounds: int) -> bool:
        """A due round scored on the curve's first examples only (every round before the last, with curve-limit)."""
        return bool(self.curve_limit) and server_round < num_rounds
