"""ScaleOT's Dynamic LayerReplace arithmetic (Yao et al. 2025, Eqs. 1-5 and 8-10), as pure functions.

Blocks are split into ``n_groups`` groups of adjacent blocks. Sampling keeps half
of each group (Eq. 2) by a draw p_i ~ U(0, sigmoid(s_i)) (Eq. 1); rewards are
e^{-L_j} minus their mean over the N_c candidates (Eq. 4); a candidate's kept
blocks move by r_j * sigma(s_i) * (1 - sigma(s_i)) (Eq. 5). Emulator creation
picks the adapter as the N_a/N_g highest-scoring blocks of each group (Eq. 8)
and replaces the alpha*n/N_g lowest-scoring non-adapter blocks of each group
with harmonizers (Eq. 10, read as "the least important", which is what the
paper's text and Fig. 1 describe).
"""

from __future__ import annotations

import math
import random


def groups(num_layers: int, n_groups: int) -> list[list[int]]:
    """``n_groups`` groups of adjacent block indices, sizes differing by at most one."""
    if not 1 <= n_groups <= num_layers:
        raise ValueError(f"N_g must be between 1 and the number of blocks ({num_layers}); got {n_groups}")
    bounds = [round(j * num_layers / n_groups) for j in range(n_groups + 1)]
    return [list(range(bounds[j], bounds[j + 1])) for j in range(n_groups)]


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def sample_kept(scores: list[float], grouping: list[list[int]], rng: random.Random) -> set[int]:
    """Eqs. 1-2: the blocks a LayerReplace candidate keeps (the rest become harmonizers)."""
    p = [rng.uniform(0, sigmoid(s)) for s in scores]
    kept = set()
    for g in grouping:
        ranked = sorted(g, key=lambda i: p[i], reverse=True)
        kept.update(ranked[: len(g) // 2])  # above the group's median probability
    return kept


def rewards(losses: list[float]) -> list[float]:
    """Eq. 4: r_j = e^{-L_j} - mean_t e^{-L_t}."""
    values = [math.exp(-loss) for loss in losses]
    mean = sum(values) / len(values)
    return [v - mean for v in values]


def update_scores(scores: list[float], kept_sets: list[set[int]], losses: list[float]) -> list[float]:
    """Eq. 5 for N_c candidates: each candidate's kept blocks move by r_j * sigma(s_i) * (1 - sigma(s_i))."""
    new = list(scores)
    for kept, r in zip(kept_sets, rewards(losses), strict=True):
        for i in kept:
            sig = sigmoid(scores[i])
            new[i] += r * sig * (1 - sig)
    return new


def check(n_adapter: int, n_groups: int, alpha: float) -> None:
    """The emulator-creation parameters any model size needs (group sizes are checked by ``select``)."""
    if not 0 <= alpha < 1:
        raise ValueError(f"alpha must be in [0, 1) (got {alpha})")
    if n_adapter < n_groups or n_adapter % n_groups:
        raise ValueError(f"N_a ({n_adapter}) must be a positive multiple of N_g ({n_groups}): "
                         "Eq. 8 takes N_a/N_g per group")


def select(scores: list[float], grouping: list[list[int]], n_adapter: int, alpha: float) -> dict[str, list[int]]:
    """Eqs. 8-10: adapter, plain emulator and harmonizer block indices for (N_a, alpha)."""
    n_groups, n = len(grouping), len(scores)
    check(n_adapter, n_groups, alpha)
    k = n_adapter // n_groups
    kappa = round(n * alpha / n_groups)
    adapter, harmonized = [], []
    for g in grouping:
        ranked = sorted(g, key=lambda i: (-scores[i], i))
        if k + kappa >= len(g):
            raise ValueError(f"a group of {len(g)} blocks cannot hold {k} adapter and {kappa} harmonizer blocks; "
                             "lower N_a or alpha, or use fewer groups")
        adapter += ranked[:k]
        harmonized += ranked[len(g) - kappa:] if kappa else []
    emulator = [i for i in range(n) if i not in set(adapter) | set(harmonized)]
    return {"adapter": sorted(adapter), "emulator": emulator, "harmonized": sorted(harmonized)}
