"""The rounds of a federated run as the ServerApp drives them: the strategy decides, the owner evaluates, this logs.

The same steps as Flower's ``Strategy.start`` (configure_train -> send_and_receive -> aggregate -> evaluate), with
the ServerApp owning the log: each round's row (from the strategy's :class:`~strategies.RoundOutcome`) is written
with its evaluation as soon as the round ends.
"""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord

from fedot.run.log import RoundLog


def run_rounds(strategy, grid, owner, log: RoundLog, cfg, arrays: ArrayRecord, train_config: dict,
               timeout: float | None = None) -> ArrayRecord:
    """Round 0 (zero-shot numbers), then every round; returns the final global adapter."""
    log.write({"round": 0, "evaluation": owner.zero_shot(), "emulator_bytes": owner.emulator_bytes})
    for server_round in range(1, cfg.num_rounds + 1):
        messages = strategy.configure_train(server_round, arrays, ConfigRecord(dict(train_config)), grid)
        outcome = strategy.aggregate_round(server_round, grid.send_and_receive(messages, timeout=timeout))
        if outcome.arrays is not None:
            arrays = outcome.arrays
        due = cfg.evaluation.due(server_round, cfg.num_rounds)
        log.write({**outcome.row, "evaluation": owner.evaluate(arrays.to_torch_state_dict()) if due else None})
    return arrays
