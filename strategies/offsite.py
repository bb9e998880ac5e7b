"""The offsite-tuning strategy: Flower's aggregation rules over adapter tensors, every reply checked before it counts.

Sampling and the train messages come from Flower's FedAvg. Each reply is validated and bounded
(``fedot.aggregation.validate``: a bad, failed or hostile one is dropped with its reason; example weights are capped
and far updates rejected or clipped), bounded relative to the round's other replies by default
(``fedot.aggregation.influence``: one reply cannot dominate or blow up the round), then aggregated by the configured
rule (``fedot.aggregation.rules``: Flower's FedAvg, FedMedian, FedTrimmedAvg, Krum, MultiKrum, Bulyan, FedProx,
FedAdam or FedAvgM). With the relative bounds off, FedAvg and FedProx fold replies into a running sum as they arrive,
so with a streaming grid the server never holds a round's replies at once; otherwise the round's replies are held
until it ends. A round aggregates only with at least ``min_replies`` accepted replies and only if the result is
finite; otherwise the adapter stays as it was and the row says why. Sampled nodes that never replied within the round
timeout are logged as timed out. The strategy returns what happened as data (:class:`RoundOutcome`); the
ServerApp owns the run log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from logging import WARNING

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedot.aggregation.average import RunningAverage, declared_bytes, state_bytes
from fedot.aggregation.influence import bound
from fedot.aggregation.privacy import DPConfig, Privacy
from fedot.aggregation.rules import AggregationConfig
from fedot.aggregation.validate import RUNTIME, Rejected, check_reply, finite, injected_fault, reported
from fedot.reply_origin import destinations, reply_node

FED_OPT_STATE = ("m_t", "v_t")  # Flower's FedOpt moments (FedAdam), kept across rounds


@dataclass
class RoundOutcome:
    """A round as the strategy saw it: the new global adapter (None: keep the old one) and its log row."""

    arrays: ArrayRecord | None
    row: dict = field(default_factory=dict)


def _payload_bytes(msg) -> int:
    """Tensor bytes a reply carried (as ``bytes_down`` counts them), from its arrays' metadata; 0 if unreadable."""
    try:
        return declared_bytes(msg.content["arrays"])
    except Exception:
        return 0


def _count(metrics: dict, key: str) -> int:
    """A validated metric as a count (a list, which validation allows, counts as 0)."""
    value = metrics.get(key, 0.0)
    return int(value) if isinstance(value, float) else 0


class OffsiteStrategy(FedAvg):
    def __init__(self, *, lr_for_round: Callable[[int], float], min_replies: int = 1, fraction_train: float = 1.0,
                 min_available_nodes: int = 1, emulator_bytes: int | dict[int, int] = 0,
                 aggregation: AggregationConfig | None = None, dp: DPConfig | None = None, population: int = 1):
        super().__init__(fraction_train=fraction_train, fraction_evaluate=0.0, min_train_nodes=1,
                         min_available_nodes=min_available_nodes)
        self.lr_for_round = lr_for_round
        self.min_replies = min_replies
        self.emulator_bytes = emulator_bytes
        self.aggregation = aggregation or AggregationConfig()
        self.flower_rule = self.aggregation.build()
        dp = dp or DPConfig()
        self.privacy = Privacy(dp, population, fraction_train, min_available_nodes) if dp.on else None
        if self.privacy is not None:  # Flower's DP wrapper samples, clips, averages and adds noise
            self.flower_rule = self.privacy
        self.seen: set[int] = set()  # nodes that already hold the emulator
        self._sent: dict = {}
        self._pushed: list = []

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        config["lr"] = float(self.lr_for_round(server_round))
        for key, value in self.aggregation.client_config().items():
            config[key] = value
        configure = self.privacy.configure_train if self.privacy else super().configure_train
        messages = list(configure(server_round, arrays, config, grid))
        self.expect(server_round, arrays, sorted(m.metadata.dst_node_id for m in messages), config["lr"])
        self._pushed = [m.metadata for m in messages]  # their ids, set when the grid pushes them, name the node a
        # SuperLink-written error reply answers for (fedot.reply_origin)
        return messages

    def expect(self, server_round: int, arrays: ArrayRecord, sampled: list[int], lr: float) -> None:
        """What :meth:`aggregate_round` checks replies against: the round's global adapter and its sampled nodes
        (``configure_train`` calls it; a replay of kept replies calls it alone)."""
        first_contact = [n for n in sampled if n not in self.seen]
        self.seen.update(sampled)
        reference = arrays.to_torch_state_dict()
        current = None if self.privacy else self.aggregation.reference(arrays)
        if current is not None:  # FedOpt family, FedAvgM: the server optimiser's reference point
            self.flower_rule.current_arrays = current
        self._pushed = []
        self._sent = {"round": server_round, "lr": lr, "sampled": sampled, "reference": reference,
                      "emulator_bytes_down": sum(self.emulator_bytes.get(n, 0) if isinstance(self.emulator_bytes, dict)
                                                 else self.emulator_bytes for n in first_contact),
                      "bytes_down": state_bytes(reference) * len(sampled)}

    def _combine(self, server_round: int, held: list, average: RunningAverage | None):
        """The rule's aggregate of the accepted replies (None with the reason when it cannot be had)."""
        if average is not None:
            return average.result(), None
        messages, order = [], list(self._sent["reference"])  # the global adapter's order: DP clips by position
        for r in held:  # each reply's tensors are released as its Message is built: one copy of the round, not two
            arrays, r.state = ArrayRecord({k: r.state[k] for k in order}), {}
            metrics = self.privacy.reply_metrics(r.metrics) if self.privacy else {"num-examples": r.weight}
            messages.append(Message(RecordDict({"arrays": arrays, "metrics": MetricRecord(metrics)}),
                                    dst_node_id=0, message_type="train"))
        try:
            arrays, _ = self.flower_rule.aggregate_train(server_round, messages)
        except Exception as e:  # a rule's own precondition (e.g. Bulyan's n >= 4f + 3) or numerical failure
            return None, f"{self.aggregation.rule} could not aggregate: {type(e).__name__}: {e}"
        if arrays is None:
            if self.privacy:
                return None, (f"dp: {len(messages)} accepted replies of {self.privacy.sampled} sampled; a private "
                              "release needs every sampled data owner's update, so none was made this round")
            return None, f"{self.aggregation.rule} returned no aggregate"
        return arrays.to_torch_state_dict(), None

    def aggregate_round(self, server_round: int, replies: Iterable[Message]) -> RoundOutcome:
        """Validate, bound and aggregate the replies; the round's outcome and its log row."""
        reference = self._sent["reference"]
        average = RunningAverage() if self.aggregation.streaming and not self.privacy else None
        held, rejected, faults, runtime, influence = [], [], [], {}, []
        replied: set[int] = set()
        bytes_up = 0
        sent: dict[str, int] = {}
        for msg in replies:
            sent = sent or destinations(self._pushed)
            node = reply_node(msg, sent)
            replied.add(node)
            bytes_up += _payload_bytes(msg)
            where = reported(msg, RUNTIME)
            if where:
                runtime[str(node)] = where
            fault = injected_fault(msg)
            if fault or (msg.has_error() and "injected fault" in str(msg.error.reason)):
                faults.append({"node": node, **(fault or {"dropout": True})})
            try:
                reply = check_reply(msg, reference, self.aggregation)
                if self.privacy and all(torch.equal(reply.state[k], reference[k]) for k in reference):
                    raise Rejected("an all-zero update, which Flower 1.41's DP clipping cannot take (it divides by "
                                   "the update's norm)")
            except Rejected as e:
                rejected.append({"node": node, "reason": str(e)})
                continue
            except Exception as e:  # nothing a client sends may crash the server
                rejected.append({"node": node, "reason": f"unreadable reply: {type(e).__name__}: {e}"})
                continue
            if average is not None:  # folded in now; its tensors are released (only the metrics are kept)
                average.add(reply.state, reply.weight)
                reply.state = {}
            held.append(reply)
        if average is None and not self.privacy and self.aggregation.relative_bounds:  # DP clips every update itself
            a = self.aggregation
            held, influence, dropped = bound(held, reference, a.max_weight_ratio, a.max_norm_ratio,
                                             a.update_norm_action)
            rejected += dropped
        if average is None and not self.privacy and self.aggregation.rule_streams:  # the same mean, arrival order
            average = RunningAverage()
            for reply in held:
                average.add(reply.state, reply.weight)
        accepted = [r.node for r in held]
        clipped = [r.node for r in held if r.clipped]
        steps, tokens, truncated, skipped = (sum(_count(r.metrics, k) for r in held) for k in (
            "train-steps", "train-tokens", "examples-truncated", "examples-skipped"))
        losses = [(r.metrics.get("train-loss"), r.weight) for r in held]
        emulator_loads = {str(_count(r.metrics, "worker-pid") or r.node): _count(r.metrics, "emulator-loads")
                          for r in held}
        timed_out = sorted(n for n in self._sent["sampled"] if n not in replied)
        rejected += [{"node": n, "reason": "timed out (no reply within round-timeout-s)"} for n in timed_out]
        for r in rejected:
            log(WARNING, "round %d: dropped reply from node %s: %s", server_round, r["node"], r["reason"])
        total = sum(w for _, w in losses)
        known = [(loss, w) for loss, w in losses if isinstance(loss, float)]
        row = {"round": server_round, "lr": self._sent["lr"], "aggregation": self.aggregation.rule,
               "sampled": self._sent["sampled"], "accepted": accepted, "rejected": rejected,
               "timed_out": timed_out, "clipped": clipped, "faults": faults, "bytes_down": self._sent["bytes_down"],
               "emulator_bytes_down": self._sent["emulator_bytes_down"], "bytes_up": bytes_up, "num_examples": total,
               "client_steps": steps, "client_tokens": tokens, "examples_truncated": truncated,
               "examples_skipped": skipped,
               "train_loss": sum(lo * w for lo, w in known) / sum(w for _, w in known) if known else None,
               "train_loss_by_owner": {str(r.node): r.metrics["train-loss"] for r in held
                                       if isinstance(r.metrics.get("train-loss"), float)},
               "emulator_loads_by_worker": emulator_loads, "runtime": runtime, "influence": influence}
        if len(accepted) < self.min_replies:
            reason = f"only {len(accepted)} accepted replies (< min-replies {self.min_replies})"
        else:
            state, reason = self._combine(server_round, [] if average is not None else held, average)
            if state is not None and not finite(state):
                reason = "the aggregate is not finite"
        if self.privacy:
            row["dp"] = self.privacy.spent()
        if reason:
            log(WARNING, "round %d: %s; keeping the previous adapter", server_round, reason)
            return RoundOutcome(None, {**row, "aggregated": False, "not_aggregated_reason": reason})
        return RoundOutcome(ArrayRecord(state), {**row, "aggregated": True})

    def state(self) -> dict:
        """What a checkpoint keeps of the strategy: the nodes that hold the emulator, the DP accountant, and the rule's
        server-optimiser tensors (FedAdam's m_t, v_t; ``tensors``: name -> {key: array})."""
        tensors = {name: dict(getattr(self.flower_rule, name)) for name in FED_OPT_STATE
                   if getattr(self.flower_rule, name, None)}
        return {"seen": sorted(self.seen), "privacy": self.privacy.state() if self.privacy else None,
                "tensors": tensors}

    def load_state(self, state: dict) -> None:
        self.seen.update(state.get("seen", []))
        for name, arrays in state.get("tensors", {}).items():
            if arrays and hasattr(self.flower_rule, name):
                setattr(self.flower_rule, name, arrays)
        if state.get("privacy") and self.privacy:
            self.privacy.load_state(state["privacy"])

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Flower's interface (``Strategy.start`` works too): the outcome's arrays and a summary."""
        outcome = self.aggregate_round(server_round, replies)
        row = outcome.row
        summary = MetricRecord({"accepted": len(row["accepted"]), "rejected": len(row["rejected"]),
                                "num-examples": row["num_examples"]})
        return outcome.arrays, summary
