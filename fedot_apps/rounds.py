"""The rounds of a federated run as the ServerApp drives them: the strategy decides, the owner evaluates, this logs.

The same steps as Flower's ``Strategy.start`` (configure_train -> send_and_receive -> aggregate -> evaluate), with
the ServerApp owning the log: each round's row (from the strategy's :class:`~strategies.RoundOutcome`) is written
with its evaluation as soon as the round ends, a checkpoint follows, and a progress line says where the run is.
Before a round's Messages go out, a sampled data owner that lacks its emulator (a failed delivery, a node that joined
later) is brought it; with ``emulator-alignment`` the owner re-aligns the emulator after each round's evaluation and
a data owner sampled for a later round is first brought the current version
(:meth:`fedot.delivery.rollout.Rollout.refresh`).
"""

from __future__ import annotations

import time

from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from fedot.aggregation.privacy import BudgetExhausted
from fedot.run import checkpoint
from fedot.run.config import FederatedConfig
from fedot.run.divergence import Diverged, Guard
from fedot.run.log import RoundLog
from fedot.run.model_owner import ModelOwner
from fedot.run.progress import Progress, alignment_line
from fedot.run.replies import keeping

from .federation import FederationError


def run_rounds(strategy, grid, owner: ModelOwner, log: RoundLog, cfg: FederatedConfig, arrays: ArrayRecord, rollout,
               progress: Progress, start_round: int = 1) -> ArrayRecord:
    """Round 0 (zero-shot numbers, unless the log has them), then rounds ``start_round``..num-rounds, each logged
    and checkpointed as it ends; returns the final global adapter."""
    zero = log.rows[0]["evaluation"] if log.rows and log.rows[0]["round"] == 0 else None
    if zero is None:
        t = time.perf_counter()
        zero = owner.zero_shot()
        outcomes = zero.pop("outcomes")
        log.write({"round": 0, "evaluation": zero, "emulator_bytes": owner.emulator_bytes,
                   "eval_seconds": time.perf_counter() - t}, outcomes)
    progress.phase(f"zero-shot: full model {zero['zero_shot']:,.4g}, emulator {zero['emulator_zero_shot']:,.4g} "
                   f"({progress.metric})")
    guard = Guard(cfg.on_divergence, start_round - 1, arrays)  # the last adapter known to evaluate finite
    for server_round in range(start_round, cfg.num_rounds + 1):
        t = time.perf_counter()
        try:
            messages = strategy.configure_train(server_round, arrays, ConfigRecord({}), grid)
        except BudgetExhausted as e:
            progress.say(f"stopping before round {server_round}: {e}")
            break
        delivered = rollout.refresh([m.metadata.dst_node_id for m in messages], aligned=bool(owner.aligner))
        node_configs = rollout.node_configs
        for msg in messages:  # each node's own emulator (its tier's), in its own content (Flower shares one by all)
            config = ConfigRecord({**msg.content["config"], **node_configs[msg.metadata.dst_node_id]})
            msg.content = RecordDict({**msg.content, "config": config})
        replies = grid.send_and_receive(messages, timeout=cfg.round_timeout_s or None)
        if cfg.keep_replies:  # written as they stream past, before the strategy sees them
            replies = keeping(replies, log.out, server_round, arrays.to_torch_state_dict(), messages)
        outcome = strategy.aggregate_round(server_round, replies)
        if outcome.arrays is not None:
            arrays = outcome.arrays
        timing = {"train_seconds": time.perf_counter() - t}
        evaluation = outcomes = None
        if cfg.evaluation.due(server_round, cfg.num_rounds):
            t = time.perf_counter()
            evaluation = owner.evaluate(arrays.to_torch_state_dict(),
                                        cfg.evaluation.curve_only(server_round, cfg.num_rounds))
            outcomes = evaluation.pop("outcomes")
            timing["eval_seconds"] = time.perf_counter() - t
        arrays, diverged = guard.check(outcome.row, evaluation, arrays, server_round)
        if diverged:
            evaluation = outcomes = None
            progress.say(f"round {server_round} diverged: {diverged['reason']}; back to the adapter of round "
                         f"{diverged['rolled_back_to']} ({diverged['action']})")
        extra = {"tiers": {str(m.metadata.dst_node_id): node_configs[m.metadata.dst_node_id]["emulator-tier"]
                           for m in messages}} if len(owner.tiers) > 1 else {}
        extra.update(delivered)
        if diverged:
            extra["diverged"] = diverged
        progress.round_done(outcome.row, evaluation, zero)
        if owner.aligner and server_round < cfg.num_rounds and not diverged:
            extra["alignment"] = owner.align(arrays.to_torch_state_dict(), server_round, log.out)
            progress.phase(alignment_line(extra["alignment"]))
        log.write({**outcome.row, **extra, "evaluation": evaluation, **timing}, outcomes)  # before the checkpoint
        checkpoint.save(log.out, server_round, arrays.to_torch_state_dict(), strategy.state(),
                        strategy.lr_for_round(server_round), owner.emulator_state())
        if owner.aligner:
            owner.prune_aligned(log.out)
        if diverged and cfg.on_divergence == "stop":
            raise Diverged(server_round, diverged["reason"], arrays)
    if not any(r.get("aggregated") for r in log.rows):
        reasons = sorted({r.get("not_aggregated_reason", "") for r in log.rows if r["round"] > 0})
        raise FederationError(f"no round aggregated ({'; '.join(reasons)}), so there is no tuned adapter to plug in "
                              f"and no result was written; see {log.path} for every rejected reply")
    return arrays
