"""The offsite-tuning strategy: Flower's FedAvg over adapter tensors, with each reply checked before it counts.

Every reply is validated (``fedot.aggregation.validate``) and a bad or failed one is dropped with its reason instead
of poisoning the average; a round aggregates only with at least ``min_replies`` good replies, otherwise the adapter
stays as it was. Replies are folded into a running sum as they arrive (with a streaming grid the server never holds a
round's replies at once). The strategy returns what happened as data (:class:`RoundOutcome`); the ServerApp owns the
run log. The clients' learning rate follows the schedule across rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from logging import WARNING

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedot.aggregation.average import RunningAverage, state_bytes
from fedot.aggregation.validate import reject_reason


@dataclass
class RoundOutcome:
    """A round as the strategy saw it: the new global adapter (None: keep the old one) and its log row."""

    arrays: ArrayRecord | None
    row: dict = field(default_factory=dict)


class OffsiteStrategy(FedAvg):
    def __init__(self, *, lr_for_round: Callable[[int], float], min_replies: int = 1, fraction_train: float = 1.0,
                 min_available_nodes: int = 1, emulator_bytes: int = 0):
        super().__init__(fraction_train=fraction_train, fraction_evaluate=0.0, min_train_nodes=1,
                         min_available_nodes=min_available_nodes)
        self.lr_for_round = lr_for_round
        self.min_replies = min_replies
        self.emulator_bytes = emulator_bytes
        self.seen: set[int] = set()  # nodes that already hold the emulator
        self._sent: dict = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        config["lr"] = float(self.lr_for_round(server_round))
        messages = list(super().configure_train(server_round, arrays, config, grid))
        sampled = sorted(m.metadata.dst_node_id for m in messages)
        first_contact = [n for n in sampled if n not in self.seen]
        self.seen.update(sampled)
        reference = arrays.to_torch_state_dict()
        self._sent = {"round": server_round, "lr": config["lr"], "sampled": sampled, "reference": reference,
                      "emulator_bytes_down": self.emulator_bytes * len(first_contact),
                      "bytes_down": state_bytes(reference) * len(sampled)}
        return messages

    def aggregate_round(self, server_round: int, replies: Iterable[Message]) -> RoundOutcome:
        """Validate and average the replies as they arrive; the round's outcome and its log row."""
        reference = self._sent["reference"]
        average = RunningAverage()
        accepted, rejected, losses, emulator_loads = [], [], [], {}
        bytes_up = steps = 0
        for msg in replies:
            node = msg.metadata.src_node_id
            if msg.has_error():
                rejected.append({"node": node, "reason": f"client failed: {msg.error.reason}"})
                continue
            try:
                state = msg.content[self.arrayrecord_key].to_torch_state_dict()
                metrics = msg.content["metrics"]
                num_examples = metrics[self.weighted_by_key]
            except (KeyError, TypeError, ValueError) as e:
                rejected.append({"node": node, "reason": f"malformed reply: {type(e).__name__}: {e}"})
                continue
            bytes_up += state_bytes(state)
            reason = reject_reason(state, reference, num_examples)
            if reason:
                rejected.append({"node": node, "reason": reason})
                continue
            accepted.append(node)
            steps += int(metrics.get("train-steps", 0))
            average.add(state, float(num_examples))
            losses.append((float(metrics.get("train-loss", float("nan"))), float(num_examples)))
            emulator_loads[str(metrics.get("worker-pid", node))] = int(metrics.get("emulator-loads", 0))
        for r in rejected:
            log(WARNING, "round %d: dropped reply from node %s: %s", server_round, r["node"], r["reason"])
        total = average.total
        row = {"round": server_round, "lr": self._sent["lr"], "sampled": self._sent["sampled"], "accepted": accepted,
               "rejected": rejected, "bytes_down": self._sent["bytes_down"],
               "emulator_bytes_down": self._sent["emulator_bytes_down"], "bytes_up": bytes_up, "num_examples": total,
               "client_steps": steps, "train_loss": sum(loss * n for loss, n in losses) / total if total else None,
               "emulator_loads_by_worker": emulator_loads}
        if average.count < self.min_replies:
            log(WARNING, "round %d: only %d valid replies (< min-replies %d); keeping the previous adapter",
                server_round, average.count, self.min_replies)
            return RoundOutcome(None, {**row, "aggregated": False})
        return RoundOutcome(ArrayRecord(average.result()), {**row, "aggregated": True})

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Flower's interface (``Strategy.start`` works too): the outcome's arrays and a summary."""
        outcome = self.aggregate_round(server_round, replies)
        row = outcome.row
        summary = MetricRecord({"accepted": len(row["accepted"]), "rejected": len(row["rejected"]),
                                "num-examples": row["num_examples"]})
        return outcome.arrays, summary
