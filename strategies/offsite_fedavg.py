"""FedAvg over adapter tensors, hardened for offsite-tuning.

Every reply is checked (names, shapes, dtypes, finite values, example count)
and a bad one is dropped with its reason logged instead of poisoning the
average; a failed client does not stop the round while at least
``min_replies`` good replies arrive. Replies are averaged as they are read
(one running sum), so with a streaming grid the server never holds a round's
replies all at once. The round's learning rate follows a
schedule across rounds. Each round's bookkeeping goes to a ``RoundLog``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from logging import WARNING

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedot.federated import RoundLog, RunningAverage, reject_reason, state_bytes


class OffsiteFedAvg(FedAvg):
    def __init__(self, *, round_log: RoundLog, lr_for_round: Callable[[int], float], min_replies: int = 1,
                 fraction_train: float = 1.0, min_available_nodes: int = 1, emulator_bytes: int = 0):
        super().__init__(fraction_train=fraction_train, fraction_evaluate=0.0, min_train_nodes=1,
                         min_available_nodes=min_available_nodes)
        self.round_log = round_log
        self.lr_for_round = lr_for_round
        self.min_replies = min_replies
        self.emulator_bytes = emulator_bytes
        self._seen: set[int] = set()  # nodes that already hold the emulator
        self._sent: dict = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        config["lr"] = float(self.lr_for_round(server_round))
        messages = list(super().configure_train(server_round, arrays, config, grid))
        sampled = sorted(m.metadata.dst_node_id for m in messages)
        first_contact = [n for n in sampled if n not in self._seen]
        self._seen.update(sampled)
        self._sent = {"round": server_round, "lr": config["lr"], "sampled": sampled,
                      "emulator_bytes_down": self.emulator_bytes * len(first_contact),
                      "bytes_down_per_client": state_bytes(arrays.to_torch_state_dict()), "reference": arrays.to_torch_state_dict()}
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
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
               "rejected": rejected, "bytes_down": self._sent["bytes_down_per_client"] * len(self._sent["sampled"]),
               "emulator_bytes_down": self._sent["emulator_bytes_down"], "bytes_up": bytes_up, "num_examples": total,
               "client_steps": steps,
               "train_loss": sum(loss * n for loss, n in losses) / total if total else None,
               "emulator_loads_by_worker": emulator_loads}
        if average.count < self.min_replies:
            row["aggregated"] = False
            self.round_log.write(row)
            log(WARNING, "round %d: only %d valid replies (< min-replies %d); keeping the previous adapter",
                server_round, average.count, self.min_replies)
            return None, None
        row["aggregated"] = True
        self.pending_row = row
        metrics = MetricRecord({"train-loss": row["train_loss"], "num-examples": total, "accepted": len(accepted),
                                "rejected": len(rejected)})
        return ArrayRecord(average.result()), metrics

    def finish_round(self, evaluation: dict | None) -> None:
        """Called by the server's evaluate_fn so each round's row carries its evaluation."""
        row = getattr(self, "pending_row", None)
        if row is None:
            return
        self.round_log.write({**row, "evaluation": evaluation})
        self.pending_row = None
