"""The apps in one process: an in-process Flower Grid calling the real ServerApp, strategy and ClientApp in turn.

No SuperLink, no Ray: the tests use it to inspect every message, and ``bench/simulation`` uses it as the plain-loop
baseline that prices Flower + Ray. Like a SuperLink it takes pushed messages and hands back replies when pulled;
each pull runs the next queued ClientApp call, so replies arrive one at a time. It sets Flower's task identity the
way a SuperLink process would (a process-wide setting of Flower's), so it is for tests and benchmarks, never for a
run next to a real SuperLink in the same process.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

from flwr.app import Context, Error, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from fedot.data_owner.worker import WorkerCache

from .client_app import client_app
from .server_app import main as server_main


class InProcessGrid:
    """Delivers each message to a ClientApp call in this process; ``tamper`` can corrupt replies.

    All simulated data owners share one worker, with its own :class:`WorkerCache` (``cache``). ``client_keys``
    limits the run config the data owners see to those keys; ``node_config`` adds to a node's node config.
    """

    def __init__(self, num_nodes: int, run_config: dict, tamper=None, fail_nodes=(), cache: WorkerCache | None = None,
                 client_keys=None, node_config=None):
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
        self.cache = cache or WorkerCache()
        self.client_app = client_app(self.cache)
        self.nodes = list(range(101, 101 + num_nodes))
        self.run_config = run_config
        self.tamper = tamper
        self.fail_nodes = set(fail_nodes)
        self.client_keys = client_keys
        self.node_config = node_config or {}
        self.sent: list[Message] = []  # training Messages
        self.queries: list[Message] = []  # emulator delivery Messages
        self._queue: deque[Message] = deque()

    def get_node_ids(self):
        return list(self.nodes)

    def push_messages(self, messages):
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = msg.object_id  # as the SuperLink numbers them
            (self.queries if msg.metadata.message_type == "query" else self.sent).append(msg)
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
        run_config = {k: v for k, v in self.run_config.items() if self.client_keys is None or k in self.client_keys}
        node_config = {"partition-id": self.nodes.index(node), "num-partitions": len(self.nodes),
                       **self.node_config.get(node, {})}
        context = Context(run_id=1, node_id=node, state=RecordDict(), run_config=run_config, node_config=node_config)
        try:
            reply = self.client_app(msg, context)
        except Exception as e:  # as Flower's runtime does: a raising ClientApp becomes an error reply
            return Message(Error(code=1, reason=f"{type(e)}:<'{e}'>"), reply_to=msg)
        return self.tamper(node, reply) if self.tamper and msg.metadata.message_type == "train" else reply


def run_server(rc: dict, grid: InProcessGrid) -> tuple[list[dict], dict]:
    """Run the real ServerApp on ``grid``; returns (rounds.jsonl rows, results.json)."""
    rc.setdefault("num-clients", len(grid.nodes))
    grid.run_config = rc
    server_main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=rc))
    return outputs(rc)


def outputs(rc: dict) -> tuple[list[dict], dict]:
    out = Path(rc["run-dir"])
    rows = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    return rows, json.loads((out / "results.json").read_text())


def run_in_process(rc: dict, num_nodes: int, **grid_options) -> InProcessGrid:
    """Run a whole federated experiment in this process; returns the grid (with every message sent)."""
    grid = InProcessGrid(num_nodes, rc, **grid_options)
    run_server(rc, grid)
    return grid
