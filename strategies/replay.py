"""A round's kept replies aggregated again under another rule: rules compared on identical updates.

A run with ``keep-replies = true`` wrote every reply it received (:mod:`fedot.run.replies`). :func:`replay_round`
builds the strategy a run with other aggregation settings would have had, gives it the round's global adapter and
sampled nodes, and hands it the same replies: validation, the relative bounds and the rule all run as in a real
round, and the outcome is the adapter and round row that strategy makes. Replaying the run's own settings gives the
run's own adapter (tested), so a difference between two replays is the rules' alone, on the same updates: a paired
comparison (``bench/rules.py`` evaluates each on the same test documents).

Refused, with the reason: settings that change what the data owners were told to do (``aggregation.client_config``,
e.g. FedProx's proximal term: the replies would have been different), and differential privacy (a replay would be a
second noisy release of the same updates and spend budget the run never accounted). A server-optimiser rule
(FedAdam) starts from fresh moments; in round 1 that is what the run had too.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict

from fedot.run.config import FederatedConfig
from fedot.run.log import read_rows
from fedot.run.replies import read_round
from fedot.settings import SettingError

from .offsite import OffsiteStrategy, RoundOutcome


@contextmanager
def acting_as_owner():
    """Flower 1.41 builds a Message only inside a task (``TaskIdentity``: run, node and task ids); outside one, a
    replay acts as a ServerApp while it builds them and leaves the identity as it found it."""
    from flwr.supercore.task_identity import TaskIdentity

    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    if saved[0] is None:
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
    try:
        yield
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


def as_message(record: dict) -> Message:
    """A kept reply as the Message the strategy received (an unreadable one as an empty reply: rejected again)."""
    asked = Message(RecordDict(), dst_node_id=int(record["node"]), message_type="train")
    if "error" in record:
        return Message(Error(code=int(record["error"]["code"]), reason=record["error"]["reason"]), reply_to=asked)
    content = {name: ArrayRecord(tensors) for name, tensors in record.get("arrays", {}).items()}
    content.update({name: MetricRecord(values) for name, values in record.get("metrics", {}).items()})
    content.update({name: ConfigRecord(values) for name, values in record.get("configs", {}).items()})
    return Message(RecordDict(content), reply_to=asked)


def run_settings(run_dir: str | Path, overrides: dict | None = None) -> tuple[FederatedConfig, FederatedConfig]:
    """(the run's settings, the replay's: the run's with ``overrides``, flat keys), refused where a replay cannot
    stand for a run."""
    saved = json.loads((Path(run_dir) / "run_config.json").read_text())
    run, replay = (FederatedConfig.from_run_config({**saved, **extra}) for extra in ({}, overrides or {}))
    if run.dp.on or replay.dp.on:
        raise SettingError("a replay of differentially private replies would be a second noisy release of the same "
                           "updates (budget the run never accounted): replay a run without dp, with dp = 'none'")
    told, would_tell = run.aggregation.client_config(), replay.aggregation.client_config()
    if told != would_tell:
        raise SettingError(f"the data owners trained with {told or 'no rule settings'}; the replayed settings would "
                           f"have told them {would_tell}, so these replies are not what that run would have "
                           "received: replay rules that ask nothing of the data owners, or run the sim")
    return run, replay


def replay_round(run_dir: str | Path, server_round: int = 1, overrides: dict | None = None) -> RoundOutcome:
    """The round ``server_round`` of the run in ``run_dir`` as the strategy of ``overrides`` (flat settings, e.g.
    ``{"aggregation": "median"}``) would have aggregated the replies it kept."""
    _, cfg = run_settings(run_dir, overrides)
    reference, records = read_round(run_dir, server_round)
    row = next((r for r in read_rows(Path(run_dir)) if r.get("round") == server_round), None)
    if row is None:
        raise FileNotFoundError(f"{run_dir}/rounds.jsonl has no round {server_round}: it did not finish; replay a "
                                "finished round")
    strategy = OffsiteStrategy(lr_for_round=lambda r: row["lr"], min_replies=cfg.min_replies,
                               fraction_train=cfg.fraction_train, aggregation=cfg.aggregation,
                               population=cfg.num_clients)
    with acting_as_owner():
        strategy.expect(server_round, ArrayRecord(reference), list(row["sampled"]), row["lr"])
        return strategy.aggregate_round(server_round, [as_message(r) for r in records])
