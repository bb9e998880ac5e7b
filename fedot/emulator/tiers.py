"""Emulator tiers: each data owner gets an emulator sized to its hardware, and one adapter is still aggregated.

Data owners differ: one has a small GPU, another eight large ones. With ``emulator-tiers`` (e.g. ``"6,12,18"``) the
model owner builds one emulator per tier, each keeping that many middle blocks (uniform layer-drop of the same
sandwich, or the chosen compression method at that size). Every tier has the same adapter blocks — the paper's
bottom and top blocks, trained through whichever middle the data owner holds — so the replies are the same tensors
and aggregate as with a single emulator. Each node says which tier it takes in its node config: ``tier`` (an index
into the list) or ``memory-gb`` (the memory it has for training: the owner takes the deepest tier whose memory plan,
:mod:`fedot.memory`, fits); a node that says neither gets what ``emulator-tier-unnamed`` says (the deepest tier, or
in a simulation, whose nodes have no node config of their own, tiers by partition in equal shares). The privacy
checks apply to every tier: none may be the lossless full model unless allowed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..registry import Registry
from ..settings import selector, setting

# what a node that names nothing gets: the deepest tier (a deployment's default), or, for simulations (whose nodes
# have no node config of their own), tiers by partition id in equal contiguous shares
TIER_POLICIES: Registry = Registry("tier policy")


@TIER_POLICIES.register("deepest", help="the deepest tier")
def _deepest(node_config: dict, tiers: int) -> tuple[int, str]:
    return tiers - 1, "no tier or memory-gb in its node config: the deepest tier"


@TIER_POLICIES.register("by-partition", help="tiers by partition id in equal shares (simulations)")
def _by_partition(node_config: dict, tiers: int) -> tuple[int, str]:
    pid, n = int(node_config.get("partition-id", 0)), max(int(node_config.get("num-partitions", 1)), 1)
    return min(pid * tiers // n, tiers - 1), f"partition {pid} of {n}: an equal share of the partitions per tier"


@dataclass
class TierConfig:
    tiers: str = setting("", "emulator tiers: middle blocks each tier keeps, comma-separated (e.g. '6,12,18'); a data "
                         "owner trains on the tier its node config names (tier = index, or memory-gb: the deepest "
                         "tier that fits); empty: one emulator (emulator-blocks) for every data owner")
    tier_unnamed: str = selector(TIER_POLICIES, "deepest", "emulator tiers: what a node whose node config names no "
                                 "tier or memory-gb gets")

    @property
    def levels(self) -> list[int]:
        """Kept middle blocks of each tier, shallowest first (empty: no tiers)."""
        try:
            levels = [int(t) for t in self.tiers.split(",") if t.strip()]
        except ValueError:
            raise ValueError(f"emulator-tiers must be comma-separated block counts, e.g. '6,12,18'; got "
                             f"{self.tiers!r}") from None
        return levels

    def check(self) -> None:
        levels = self.levels
        if any(k < 1 for k in levels) or len(set(levels)) != len(levels) or levels != sorted(levels):
            raise ValueError(f"emulator-tiers must be distinct block counts >= 1 in increasing order, e.g. "
                             f"'6,12,18'; got {self.tiers!r}")


@dataclass
class Tier:
    """One emulator the owner ships (the only one without ``emulator-tiers``)."""

    spec: object
    path: Path
    manifest: dict

    @property
    def blocks(self) -> int:
        return len(self.manifest["emulator_blocks"])

    @cached_property
    def bytes(self) -> int:
        from ..sizes import artifact_sizes

        return artifact_sizes(self.path)["artifact_file_bytes"]


def build_tiers(spec, levels: list[int], refuse_lossless) -> list[Tier]:
    """Every tier's emulator, built (or reused by content key) after every tier's split and privacy were checked;
    ``refuse_lossless(lossless)`` raises for an emulator that would be the full model."""
    from ..architectures import num_blocks
    from ..models import load_config

    specs = tier_specs(spec, levels)
    config = load_config(spec.preflight())
    for s in specs:
        s.split(num_blocks(config))
        refuse_lossless(s.lossless(config))
    tiers = [Tier(s, *s.build()) for s in specs]
    if len({tuple(t.manifest["adapter_blocks"]) for t in tiers}) > 1:
        raise ValueError("emulator tiers must share their adapter blocks (one adapter is aggregated); use a "
                         "sandwich method, whose adapter is the bottom and top blocks at every size")
    return tiers


def tier_plans(tiers: list[Tier], tuning, train, device: str, dtype=None) -> list[int]:
    """Each tier's planned peak memory for a data owner on ``device`` (bytes), from the config alone."""
    from ..architectures import num_blocks
    from ..memory import client_plan
    from ..models import load_config

    config = load_config(tiers[0].spec.preflight())
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    return [client_plan(config, t.spec.split(num_blocks(config))[0], tuning, train.batch_size, train.max_length,
                        kind, dtype=dtype, checkpointing=train.gradient_checkpointing).total for t in tiers]


def tier_specs(spec, levels: list[int]) -> list:
    """The emulator spec of each tier: the run's spec with its kept middle blocks (one spec when no tiers)."""
    if not levels:
        return [spec]
    out = []
    for k in levels:
        tier = copy.deepcopy(spec)
        tier.emulator_blocks = k
        out.append(tier)
    return out




def choose_tier(node_config: dict, plan_bytes: list[int], unnamed: str = "deepest") -> tuple[int, str]:
    """(tier index, why) for a node, from its node config and each tier's planned peak memory (bytes)."""
    deepest = len(plan_bytes) - 1
    if "tier" in node_config:
        tier = int(node_config["tier"])
        if not 0 <= tier <= deepest:
            raise ValueError(f"node config tier = {tier}, but this run has tiers 0..{deepest}")
        return tier, "node config tier"
    if "memory-gb" in node_config:
        memory = float(node_config["memory-gb"]) * 2**30
        fitting = [i for i, need in enumerate(plan_bytes) if need <= memory]
        if not fitting:
            raise ValueError(f"node config memory-gb = {node_config['memory-gb']} holds no tier (the smallest needs "
                             f"{min(plan_bytes) / 2**30:.1f} GiB)")
        return fitting[-1], f"memory-gb {float(node_config['memory-gb']):g}"
    return TIER_POLICIES[unnamed](node_config, len(plan_bytes))
