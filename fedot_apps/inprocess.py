"""An in-process Flower Grid: the real ServerApp, strategy and ClientApp, called one after another.

No SuperLink, no Ray: the tests use it to inspect every message, and
``bench/simulation`` uses it as the plain-loop baseline that prices Flower + Ray.
Like a SuperLink it takes pushed messages and hands back replies when pulled; each
pull runs the next queued ClientApp call, so replies arrive one at a time.
"""

from __future__ import annotations

from collections import deque

from flwr.app import Context, Error, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from .client_app import app as client_app
from .server_app import main as server_main


class InProcessGrid:
    """Delivers each message to a ClientApp call in this process; ``tamper`` can corrupt replies."""

    def __init__(self, num_nodes: int, run_config: dict, tamper=None, fail_nodes=()):
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
        self.nodes = list(range(101, 101 + num_nodes))
        self.run_config = run_config
        self.tamper = tamper
        self.fail_nodes = set(fail_nodes)
        self.sent: list[Message] = []
        self._queue: deque[Message] = deque()

    def get_node_ids(self):
        return list(self.nodes)

    def push_messages(self, messages):
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = msg.object_id  # as the SuperLink numbers them
            self.sent.append(msg)
            self._queue.append(msg)
            ids.append(msg.metadata.message_id)
        return ids

    def pull_messages(self, message_ids):
        wanted = set(message_ids)
        while self._queue:
            msg = self._queue.popleft()
            if msg.metadata.message_id in wanted:
                return [self._reply(msg)]
        return []

    def _reply(self, msg: Message) -> Message:
        node = msg.metadata.dst_node_id
        if node in self.fail_nodes:
            return Message(Error(code=1, reason="simulated crash"), reply_to=msg)
        context = Context(run_id=1, node_id=node, state=RecordDict(), run_config=self.run_config,
                          node_config={"partition-id": self.nodes.index(node), "num-partitions": len(self.nodes)})
        reply = client_app(msg, context)
        return self.tamper(node, reply) if self.tamper else reply


def run_in_process(run_config: dict, num_nodes: int, **grid_options) -> InProcessGrid:
    """Run a whole federated experiment in this process; returns the grid (with every message sent)."""
    grid = InProcessGrid(num_nodes, run_config, **grid_options)
    server_main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config))
    return grid
