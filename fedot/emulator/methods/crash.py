"""CRaSh (Zhang et al., EMNLP 2023): Clustering, Removing and Sharing blocks, training-free.

The full model's middle blocks are clustered by how alike their representations are: each block's output, mean-pooled
over the tokens of every sequence of the owner's text, gives a (sequences x hidden) matrix, and linear CKA compares
two of them. Clustering is CRaSh's adjacent agglomeration (``utils/main.py``, ``layer_iter_cluster``): start with one
cluster per block and repeatedly merge the two neighbouring clusters whose boundary blocks (the left one's last, the
right one's first) have the highest CKA, until ``emulator-blocks`` clusters remain. *Removing*: each cluster keeps its
centre block (``cluster[len // 2]``, as CRaSh does). *Sharing* (``share``, CRaSh's ``repeat`` strategy): the centre
also stands in for the cluster's other blocks, so the emulator keeps the full model's depth while it stores and ships
only the kept blocks (:mod:`fedot.emulator.stand_ins`). The adapter is the paper's sandwich (bottom and top blocks).
It costs one forward pass of the full model over ``samples`` sequences; nothing is trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ...architectures import num_blocks
from ...corpora import OwnerText, parse_mixture, text_corpora
from ...settings import setting
from ..split import Split, sandwich
from . import METHODS, Method


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear centred kernel alignment of two (samples x features) representations (Kornblith et al. 2019):
    ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), in float64."""
    x, y = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    cross = (y.T @ x).pow(2).sum()
    return float(cross / ((x.T @ x).pow(2).sum().sqrt() * (y.T @ y).pow(2).sum().sqrt()))


def cluster_adjacent(similarity, blocks: list[int], k: int) -> list[list[int]]:
    """CRaSh's adjacent agglomeration of ``blocks`` into ``k`` contiguous clusters: merge the neighbouring pair whose
    boundary blocks are most alike (``similarity(a, b)``) until ``k`` remain (the leftmost pair on a tie)."""
    clusters = [[b] for b in blocks]
    while len(clusters) > k:
        scores = [similarity(clusters[i][-1], clusters[i + 1][0]) for i in range(len(clusters) - 1)]
        i = max(range(len(scores)), key=lambda j: (scores[j], -j))
        clusters[i:i + 2] = [clusters[i] + clusters[i + 1]]
    return clusters


def centres(clusters: list[list[int]]) -> list[int]:
    return [c[len(c) // 2] for c in clusters]


@dataclass
class CrashSettings:
    corpus: str = setting("gutenberg", "crash: the owner's text the blocks' representations are compared on (a corpus "
                          "or a weighted mixture; its validation split)")
    samples: int = setting(64, "crash: sequences whose mean-pooled block outputs are compared (linear CKA)", ge=4)
    max_length: int = setting(128, "crash: tokens per sequence", ge=2)
    share: bool = setting(True, "crash: each kept block also stands in for the other blocks of its cluster (the "
                          "emulator keeps its depth); false: they are removed")

    def check(self) -> None:
        parse_mixture(self.corpus, text_corpora(), "emulator-crash-corpus")


@METHODS.register("crash", help="middle blocks clustered by representation similarity (CKA), one kept per cluster and "
                  "shared in its place (CRaSh, training-free)", settings=CrashSettings)
class Crash(Method):
    clusters: list[list[int]] | None = None

    def split(self, n: int) -> tuple[Split, list[int]]:
        """Before the clusters exist (pre-flight), the sandwich of the same size: the counts are what can fail."""
        plan = sandwich(n, self.spec.bottom, self.spec.top, self.spec.emulator_blocks)
        if self.clusters is None:
            return plan, []
        return Split(n, plan.adapter, tuple(centres(self.clusters))).validate(), []

    def prepare(self, model_dir: Path, config, cache: Path) -> dict:
        from ...models import default_device, load_model, load_tokenizer

        n = num_blocks(config)
        plan = sandwich(n, self.spec.bottom, self.spec.top, self.spec.emulator_blocks)
        tokenizer = load_tokenizer(model_dir)
        text = OwnerText(self.settings.corpus, tokenizer, self.settings.max_length, self.spec.data_dir,
                         allowed=text_corpora())
        model = load_model(model_dir, device=default_device()).eval()
        reps = block_representations(model, text.held_out(self.settings.samples))
        similarity = {(a, a + 1): linear_cka(reps[a], reps[a + 1]) for a in plan.middle[:-1]}
        self.clusters = cluster_adjacent(lambda a, b: similarity[(a, b)], list(plan.middle), len(plan.emulator))
        return {"clusters": self.clusters, "adjacent_cka": {f"{a}-{b}": s for (a, b), s in similarity.items()}}

    def write_extra(self, folder: Path, config, split: Split, replaced: list[int]) -> dict:
        if not self.settings.share:
            return {}
        shared = {b: c[len(c) // 2] for c in self.clusters for b in c if b != c[len(c) // 2]}
        return {"shared_blocks": {str(b): k for b, k in sorted(shared.items())}} if shared else {}

    def params(self) -> dict:
        return asdict(self.settings)


@torch.no_grad()
def block_representations(model, sequences: list[list[int]], batch: int = 8) -> dict[int, torch.Tensor]:
    """Each block's output, mean-pooled over every sequence's tokens: block index -> (sequences x hidden)."""
    device = next(model.parameters()).device
    pooled: dict[int, list[torch.Tensor]] = {}
    for i in range(0, len(sequences), batch):
        ids = torch.tensor(sequences[i:i + batch], device=device)
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
        for block, h in enumerate(hidden[1:]):  # hidden_states[0] is the embedding output
            pooled.setdefault(block, []).append(h.float().mean(1).cpu())
    return {block: torch.cat(parts) for block, parts in pooled.items()}
