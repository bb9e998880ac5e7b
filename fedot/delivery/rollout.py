"""Getting every data owner the emulator it trains on, and keeping it current.

Before round 1 each node's tier is chosen from its node config (:func:`fedot.emulator.tiers.choose_tier`: ``tier``,
``memory-gb`` through the memory plan, or the run's policy for nodes that name neither) and each tier's artifact is
delivered to its nodes by the configured mode (nothing for a node that already holds it). With per-round alignment,
a node sampled for a round that holds an older version is first brought the current one (only the files it lacks).
Each delivery is a line of ``<run>/delivery.jsonl``; what a node's training Messages say about its emulator (id,
tier, where to find it, or why it has none) is :attr:`Rollout.node_configs`.

A delivery that fails for a node (its worker or SuperNode killed mid-transfer, a timeout) is not final: when the
node is next sampled it is delivered again before it trains, and since the node keeps what arrived (``incoming/``
of its store) and the ``status`` exchange reports it, only the rest is sent. A node that connects after the start
(a SuperNode restarted under a new node id) is given its tier and emulator the same way the first time it is sampled.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..emulator.tiers import choose_tier
from . import DeliveryConfig, message

DELIVERY_LOG = "delivery.jsonl"


class Rollout:
    def __init__(self, grid, tiers: list, cfg: DeliveryConfig, timeout: float | None, out: Path, progress):
        self.grid, self.tiers, self.cfg, self.timeout = grid, tiers, cfg, timeout
        self.out, self.progress = out, progress
        self.node_configs: dict[int, dict] = {}
        self.undelivered: dict[int, str] = {}  # node -> why its last delivery failed
        self.sent: dict[int, int] = {}  # node -> artifact bytes its first delivery sent, where the mode counts them
        self._policy: tuple = ("deepest", lambda: [])  # (unnamed, plans) of deliver(), reused for late nodes

    def _record(self, record: dict) -> None:
        with open(self.out / DELIVERY_LOG, "a") as f:
            f.write(json.dumps(record) + "\n")

    def tier_config(self, tier) -> dict:
        """What a training Message says about a tier's emulator."""
        mode = self.cfg.chosen
        return {"emulator-id": tier.manifest["id"], "emulator-tier": tier.blocks, "emulator-delivery": mode.name,
                **mode.train_config(self.cfg, tier.path, tier.manifest)}

    def deliver_tier(self, members: list[int], tier, drop: tuple[str, ...] = (), **extra) -> dict:
        """Bring ``members`` a tier's emulator by the configured mode; the record (with ``extra``) is logged."""
        mode = self.cfg.chosen
        record = {**mode.deliver(self.grid, members, tier.path, tier.manifest, self.cfg, self.timeout,
                                 self.progress.say, drop), **extra}
        self._record(record)
        counted = record.get("nodes", {})  # message delivery counts each node's bytes (0 for one that held it)
        for node in (n for n in members if str(n) in counted):
            self.sent.setdefault(node, counted[str(node)].get("bytes", 0))
        for node in members:  # a failure is remembered until a later delivery to the node succeeds
            reason = record.get("failed", {}).get(str(node))
            if reason:
                self.undelivered[node] = reason
            else:
                self.undelivered.pop(node, None)
        if "bytes_sent" in record:
            self.progress.phase(f"emulator delivered ({mode.name}): {record['bytes_sent'] / 2**20:,.1f} MiB sent in "
                                f"{record['seconds']:.1f} s, {len(record['failed'])} failed")
        return record

    def assign(self, nodes: list[int], unnamed: str, plans) -> tuple[dict[int, int], dict]:
        """Each node's tier (index into the tiers, -1: none fits) and the record of how it was chosen; ``plans()``
        gives each tier's planned data-owner memory (asked only when there are tiers)."""
        if len(self.tiers) == 1:
            return dict.fromkeys(nodes, 0), {}
        planned = plans()
        assignment, why = {}, {}
        for node, answer in message.ask_profiles(self.grid, nodes, self.timeout).items():
            try:
                if isinstance(answer, str):
                    raise ValueError(f"no profile ({answer})")
                assignment[node], why[str(node)] = choose_tier(answer, planned, unnamed)
            except ValueError as e:  # this node gets no emulator: its replies are rejected with the reason
                assignment[node], why[str(node)] = -1, str(e)
        counts = {t.blocks: sum(1 for i in assignment.values() if i == k) for k, t in enumerate(self.tiers)}
        none = sum(1 for i in assignment.values() if i < 0)
        self.progress.phase("emulator tiers (middle blocks: data owners): "
                            + ", ".join(f"{b}: {c}" for b, c in counts.items())
                            + (f"; {none} without a tier" if none else ""))
        return assignment, {"tier_of": {str(n): self.tiers[i].blocks if i >= 0 else None
                                        for n, i in assignment.items()},
                            "why": why, "planned_bytes": {str(t.blocks): p for t, p in zip(self.tiers, planned)}}

    def deliver(self, nodes: list[int], unnamed: str, plans) -> dict[int, dict]:
        """Bring each node its tier's emulator (nothing for nodes that hold it); returns the node configs."""
        self._policy = (unnamed, plans)
        assignment, tiers_record = self.assign(nodes, unnamed, plans)
        tier_configs = [self.tier_config(tier) for tier in self.tiers]
        for k, tier in enumerate(self.tiers):
            self.node_configs.update({n: tier_configs[k] for n, i in assignment.items() if i == k})
            members = [n for n in nodes if assignment[n] == k]
            if members:
                self.deliver_tier(members, tier, **({"tier_blocks": tier.blocks} if len(self.tiers) > 1 else {}))
        if tiers_record:
            self._record({"tiers": tiers_record})
        for node in (n for n in assignment if n not in self.node_configs):  # told why it has none
            why = tiers_record["why"][str(node)]
            self.node_configs[node] = {**tier_configs[-1], "emulator-tier": -1,
                                       "emulator-refused": f"no emulator tier fits it ({why})"}
        return self.node_configs

    def refresh(self, nodes: list[int], aligned: bool = False) -> dict:
        """Before a round: bring the round's data owners that never received their emulator (a failed delivery, or
        a node that joined after the start) what they lack, and with per-round alignment (``aligned``) those that
        hold an older version of the (deepest, re-aligned) emulator the current one, each only the files it lacks
        (it may then delete the older one); what the round row records: ``emulator_catch_up`` (late and retried
        nodes) and ``emulator_update`` (alignment), each only when something was sent."""
        summary, catch_up = {}, {}
        late = [n for n in nodes if n not in self.node_configs]
        if late:
            self.deliver(late, *self._policy)
            catch_up["joined"] = {"nodes": late, "failed": {str(n): self.undelivered[n] for n in late
                                                            if n in self.undelivered}}
        retry = [n for n in nodes if n in self.undelivered and n not in late]
        for tier in self.tiers:
            members = [n for n in retry if self.node_configs[n]["emulator-id"] == tier.manifest["id"]]
            if members:
                record = self.deliver_tier(members, tier, retry=True)
                catch_up.setdefault("retried", []).append(_summary(record, members))
        if catch_up:
            summary["emulator_catch_up"] = catch_up
        if aligned:
            tier = self.tiers[-1]
            current = tier.manifest["id"]
            stale = [n for n in nodes if self.node_configs[n]["emulator-id"] != current
                     and not self.node_configs[n].get("emulator-refused")]
            if stale:
                drop = tuple(sorted({self.node_configs[n]["emulator-id"] for n in stale}))
                record = self.deliver_tier(stale, tier, drop)
                self.node_configs.update(dict.fromkeys(stale, self.tier_config(tier)))
                summary["emulator_update"] = _summary(record, stale)
        return summary

    def emulator_bytes(self) -> dict[int, int]:
        """The artifact bytes each node was sent first (what rounds.jsonl counts on its first contact): what message
        delivery sent it (0 for a node that already held the emulator), else (url, path: the node fetches it
        itself, skipping what it holds) the artifact's size."""
        size = {t.manifest["id"]: t.bytes for t in self.tiers}
        return {n: 0 if c.get("emulator-refused") else self.sent.get(n, size[c["emulator-id"]])
                for n, c in self.node_configs.items()}


def _summary(record: dict, nodes: list[int]) -> dict:
    return {"artifact_id": record.get("artifact_id"), "nodes": len(nodes), "failed": record.get("failed", {}),
            **{k: record[k] for k in ("bytes_sent", "bytes_reused", "seconds") if k in record}}
