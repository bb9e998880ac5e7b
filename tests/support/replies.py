"""Fake nodes and replies for driving the real strategy directly (test support)."""

import torch
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict

from fedot.aggregation.rules import AggregationConfig
from strategies import OffsiteStrategy

REF = {"w": torch.zeros(3, 2), "b": torch.zeros(2)}


class Nodes:
    """The least a FedAvg needs to sample nodes and address messages."""

    def __init__(self, n):
        self.nodes = list(range(1, n + 1))

    def get_node_ids(self):
        return self.nodes


def strategy_for(n, dp=None, rule="fedavg", **aggregation):
    """A real OffsiteStrategy that sampled ``n`` nodes for round 1 around ``REF``; returns it and its messages."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
    s = OffsiteStrategy(lr_for_round=lambda r: 1e-3, aggregation=AggregationConfig.of(rule, **aggregation), dp=dp,
                        population=n)
    messages = list(s.configure_train(1, ArrayRecord(REF), ConfigRecord({}), Nodes(n)))
    for i, m in enumerate(messages):
        m.metadata.__dict__["_message_id"] = f"m{i}"
    return s, messages


def honest(value, n=10):
    return {"w": torch.full((3, 2), float(value)), "b": torch.full((2,), float(value))}, n


def reply(to, content=None, error=None):
    if error:
        return Message(Error(code=1, reason=error), reply_to=to)
    return Message(content, reply_to=to)


def good(state, n, **metrics):
    return RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord({"num-examples": n, **metrics})})
