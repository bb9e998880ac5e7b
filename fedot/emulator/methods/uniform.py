"""Uniform layer-drop (offsite-tuning Algorithm 1): the kept middle blocks are copied unchanged.

With ``share`` a dropped middle block is not gone: the nearest kept middle block is repeated in its place (CRaSh's
"sharing", applied to Algorithm 1's choice of kept blocks), so the emulator keeps the full model's depth while it
stores and ships only the kept blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...settings import setting
from ..split import Split
from . import METHODS, Method


def nearest_kept(middle: list[int], kept: list[int]) -> dict[int, int]:
    """Each dropped middle block -> the kept middle block nearest to it (on a tie the later one, as CRaSh's code)."""
    return {i: min(kept, key=lambda k: (abs(k - i), -k)) for i in middle if i not in kept}


@dataclass
class UniformSettings:
    share: bool = setting(False, "uniform: repeat the nearest kept middle block in place of each dropped one (the "
                          "emulator keeps its depth, ships the same bytes)")


@METHODS.register("uniform", help="kept middle blocks copied unchanged (Algorithm 1 layer-drop only); with share, "
                  "each dropped block is stood in for by the nearest kept one", settings=UniformSettings)
class Uniform(Method):
    def params(self) -> dict:
        """Plain layer-drop records nothing (so its artifacts keep the identity they had before sharing existed)."""
        return {"share": True} if self.settings.share else {}

    def write_extra(self, folder: Path, config, split: Split, replaced: list[int]) -> dict:
        if not self.settings.share:
            return {}
        shared = nearest_kept(list(split.middle), list(split.emulator))
        return {"shared_blocks": {str(i): k for i, k in sorted(shared.items())}} if shared else {}
