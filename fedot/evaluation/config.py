"""When and on how much the model owner evaluates during a federated run."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import group, setting
from .generation import Decoding


@dataclass
class EvalConfig:
    every: int = setting(1, "rounds between evaluations of the aggregated adapter (the last round always is)", ge=1)
    split: str = setting("test", "the split the model owner scores: test for results; validation to choose settings "
                         "(learning rates) without looking at test data", choices=("validation", "test"))
    limit: int = setting(0, "examples scored (documents for corpora); 0: the whole split", ge=0)
    decoding: Decoding = group(Decoding)
    cache: bool = setting(True, "reuse deterministic results (zero-shot scores, the FT baseline) from "
                          "$FEDOT_CACHE/evaluations; each entry is verified, a corrupt one recomputed")

    @property
    def examples(self) -> int | None:
        return self.limit or None

    def due(self, server_round: int, num_rounds: int) -> bool:
        return server_round % self.every == 0 or server_round == num_rounds
