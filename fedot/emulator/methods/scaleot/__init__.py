"""ScaleOT (Yao et al. 2025): importance-aware emulators with harmonizers and Selective Rank Compression.

``policy`` holds the paper's arithmetic (Eqs. 1-5, 8-10), ``harmonizer`` the module that replaces a block,
``importance`` the Dynamic LayerReplace training that produces scores and harmonizers once per model. The method
below cuts an emulator from them for (N_a, alpha); SRC (beta, ``emulator-src-ratio``) defaults to the paper's 0.8.
Its adapter is the N_a most important blocks, not a sandwich.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ....architectures import num_blocks
from ....settings import group, setting
from ...artifact import blocks
from ...split import Split, SplitError
from .. import METHODS, Method
from .harmonizer import HARMONIZERS, Harmonizer, insert_harmonizers, load_harmonizers, save_harmonizers
from .importance import (
    LayerReplaceConfig,
    importance_for,
    learn_importance,
    plot_importance,
    read_importance,
    save_importance,
)
from .policy import check, groups, rewards, sample_kept, select, sigmoid, update_scores


@dataclass
class ScaleOTSettings:
    n_adapter: int = setting(4, "scaleot: N_a adapter blocks chosen by importance (a multiple of N_g, Eq. 8)", ge=1)
    alpha: float = setting(0.25, "scaleot: fraction of all blocks replaced by harmonizers (Eq. 10)", ge=0, lt=1)
    importance: str = setting("", "scaleot: directory written by `fedot emulator importance`; empty: learn once, cache")
    replace: LayerReplaceConfig = group(LayerReplaceConfig, prefix="replace")

    def check(self) -> None:
        if not self.importance:  # stored scores bring their own groups, checked in split()
            check(self.n_adapter, self.replace.n_groups, self.alpha)


@METHODS.register("scaleot", help="importance-chosen adapter, harmonizers for the least important blocks, SRC on "
                  "attention (ScaleOT)", settings=ScaleOTSettings)
class ScaleOT(Method):
    sandwich = False
    default_src_ratio = 0.8

    record: dict | None = None
    importance_dir: Path | None = None

    def split(self, n: int) -> tuple[Split, list[int]]:
        """Eqs. 8-10 on the learned scores; before they exist (pre-flight), on equal scores, which fails exactly
        when the real selection would (N_a, alpha and group sizes do not depend on the scores)."""
        record = self.record
        if record is None and self.settings.importance:
            record = read_importance(self.settings.importance, n)
        if record is None:
            record = {"scores": [0.0] * n, "groups": groups(n, self.settings.replace.n_groups)}
        chosen = select(record["scores"], record["groups"], self.settings.n_adapter, self.settings.alpha)
        return Split(n, tuple(chosen["adapter"]), tuple(chosen["emulator"])).validate(), chosen["harmonized"]

    def prepare(self, model_dir: Path, config, cache: Path) -> dict:
        path = Path(self.settings.importance) if self.settings.importance else importance_for(
            model_dir, self.spec.model, self.settings.replace, cache, self.spec.data_dir)
        self.record, self.importance_dir = read_importance(path, num_blocks(config)), path
        return {"n_groups": len(self.record["groups"]), "importance_dir": str(path),
                "importance_scores": self.record["scores"], "layer_replace": self.record["config"]}

    def write_extra(self, folder: Path, config, split: Split, replaced: list[int]) -> dict:
        """The harmonizers of the ``replaced`` blocks, from the importance directory, in ``harmonizers.safetensors``."""
        if not replaced:
            return {}
        wrong = sorted(set(replaced) - set(split.middle) | set(replaced) & set(split.emulator))
        if wrong:
            raise SplitError(f"harmonizers for blocks {wrong} would replace adapter or kept emulator blocks")
        save_harmonizers(folder / HARMONIZERS, load_harmonizers(self.importance_dir / HARMONIZERS, config, replaced))
        return {"harmonized_blocks": sorted(replaced)}

    @classmethod
    def on_load(cls, model, path: Path, manifest: dict) -> None:
        """Insert the harmonizers where ``harmonized_blocks`` says (plain transformers loads the stored blocks)."""
        if manifest.get("harmonized_blocks"):
            harmonizers = load_harmonizers(path / HARMONIZERS, model.config, manifest["harmonized_blocks"])
            insert_harmonizers(model, harmonizers, blocks(manifest))

    def params(self) -> dict:
        return {"n_adapter": self.settings.n_adapter, "alpha": self.settings.alpha}


__all__ = ["HARMONIZERS", "Harmonizer", "LayerReplaceConfig", "ScaleOTSettings", "groups", "importance_for",
           "insert_harmonizers", "learn_importance", "load_harmonizers", "plot_importance", "read_importance",
           "rewards", "sample_kept", "save_importance", "select", "sigmoid", "update_scores"]
