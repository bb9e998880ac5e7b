"""Fault injection for robustness research: dropouts, stragglers and Byzantine data owners, reproducibly.

Every decision is a function of (seed, round, node) or (seed, partition), never of global random state, so a run
replays exactly and the owner's log can be checked against the plan. Byzantine data owners are a fixed set: the first
round(fault-byzantine x num-partitions) partitions of a seeded permutation (the same clients misbehave every round,
as a compromised organisation would). Each attack transforms an honest update (Baruch et al. 2019; Fang et al. 2020
describe the families): ``scale`` multiplies the update's delta from the global adapter by ``fault-strength``,
``sign-flip`` reverses it (times ``fault-strength``), ``gaussian`` replaces it with noise of standard deviation
``fault-strength`` x the delta's, ``nan`` poisons one tensor, ``examples-inflation`` claims ``fault-strength`` x 1e6
as many examples. An injected fault is reported in the reply's ``fault`` ConfigRecord (a dropout in its error reason)
so that rounds.jsonl records every one.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..registry import Registry
from ..settings import selector, setting

ATTACKS: Registry[Callable] = Registry("attack")


@ATTACKS.register("scale", help="the update's delta from the global adapter times fault-strength")
def _scale(state, reference, num_examples, strength, gen):
    return {k: ref + (state[k] - ref) * strength for k, ref in reference.items()}, num_examples


@ATTACKS.register("sign-flip", help="the delta reversed, times fault-strength")
def _sign_flip(state, reference, num_examples, strength, gen):
    return {k: ref - (state[k] - ref) * strength for k, ref in reference.items()}, num_examples


@ATTACKS.register("gaussian", help="noise of fault-strength times the delta's standard deviation")
def _gaussian(state, reference, num_examples, strength, gen):
    out = {}
    for k, ref in reference.items():
        std = float((state[k] - ref).float().std()) if state[k].numel() > 1 else 0.0
        noise = torch.randn(ref.shape, generator=gen) * (strength * (std or 1e-3))
        out[k] = (ref.float() + noise).to(ref.dtype)
    return out, num_examples


@ATTACKS.register("nan", help="one tensor of NaN")
def _nan(state, reference, num_examples, strength, gen):
    first = next(iter(reference))
    return {**state, first: torch.full_like(state[first], float("nan"))}, num_examples


@ATTACKS.register("examples-inflation", help="claims fault-strength x 1e6 times its examples")
def _inflate(state, reference, num_examples, strength, gen):
    return state, num_examples * strength * 1e6


@dataclass
class FaultConfig:
    dropout: float = setting(0.0, "probability that a data owner fails a round (its reply is an error)", ge=0, le=1)
    straggler_s: float = setting(0.0, "extra delay before a data owner replies, drawn uniformly in [0, this] each "
                                 "round; pair it with round-timeout-s", ge=0)
    byzantine: float = setting(0.0, "fraction of data owners that are malicious every round", ge=0, le=1)
    attack: str = selector(ATTACKS, "scale", "what a malicious data owner sends")
    strength: float = setting(10.0, "attack strength (scale factor, noise multiple, inflation x 1e6)", gt=0)


def _rng(*parts) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big"))


def malicious_partitions(cfg: FaultConfig, seed: int, num_partitions: int) -> set[int]:
    order = list(range(num_partitions))
    _rng("byzantine", seed).shuffle(order)
    return set(order[:round(cfg.byzantine * num_partitions)])


class InjectedDropout(RuntimeError):
    pass


def plan(cfg: FaultConfig, seed: int, server_round: int, node_id: int, partition_id: int,
         num_partitions: int) -> dict:
    """The faults this data owner injects this round: ``dropout``, ``delay_s``, ``attack`` (absent: none)."""
    rng = _rng("round", seed, server_round, node_id)
    out = {}
    if cfg.dropout and rng.random() < cfg.dropout:
        out["dropout"] = True
    if cfg.straggler_s:
        out["delay_s"] = rng.uniform(0, cfg.straggler_s)
    if cfg.byzantine and partition_id in malicious_partitions(cfg, seed, num_partitions):
        out["attack"] = cfg.attack
    return out


def apply_attack(cfg: FaultConfig, state: dict, reference: dict, num_examples: float, seed: int,
                 server_round: int, node_id: int) -> tuple[dict, float]:
    gen = torch.Generator().manual_seed(_rng("attack", seed, server_round, node_id).getrandbits(63))
    return ATTACKS[cfg.attack](state, reference, num_examples, cfg.strength, gen)
