"""The rounds of a federated run as the ServerApp drives them: the strategy decides, the owner evaluates, this logs.

The same steps as Flower's ``Strategy.start`` (configure_train -> send_and_receive -> aggregate -> evaluate), with
the ServerApp owning the log: each round's row (from the strategy's :class:`~strategies.RoundOutcome`) is written
with its evaluation as soon as the round ends, and a progress line says where the run is.

Before anything is loaded, :func:`await_data_owners` makes sure the federation has the data owners the experiment
declares: a plain ``flwr run`` simulates Flower's default of 2 SuperNodes whatever the sim says, and would otherwise
train the wrong number of data owners and report success.
"""

from __future__ import annotations

import json
import time

from flwr.app import ArrayRecord, ConfigRecord

from fedot.aggregation.privacy import BudgetExhausted
from fedot.run import checkpoint
from fedot.run.log import ROUNDS, RoundLog, read_rows
from fedot.run.progress import Progress

DELIVERY = "delivery.jsonl"


class FederationError(RuntimeError):
    pass


def sim_folder(grid) -> str:
    """The sim folder of this app, from its Flower project name (``fedot-smollm2-1client`` -> smollm2_1client)."""
    fab_id = getattr(getattr(grid, "run", None), "fab_id", "") or ""
    name = fab_id.rsplit("/", 1)[-1].removeprefix("fedot-").replace("-", "_")
    return f"sims/{name}" if name else "sims/<experiment>"


def await_data_owners(grid, num_clients: int, wait_s: float, poll_s: float = 1.0) -> list[int]:
    """The SuperNodes of the federation once there are exactly ``num_clients``; else a clear stop."""
    deadline = time.monotonic() + wait_s
    while True:
        nodes = list(grid.get_node_ids())
        if len(nodes) == num_clients:
            return nodes
        if len(nodes) > num_clients or time.monotonic() >= deadline:
            sim = sim_folder(grid)
            raise FederationError(
                f"this experiment declares num-clients = {num_clients} data owners but the federation has "
                f"{len(nodes)} SuperNodes, so it would train the wrong number of data owners. Run it with "
                f"`fedot sim {sim}`, or with plain Flower: `flwr run {sim} --federation-config "
                f"\"num-supernodes={num_clients}\"` (a deployment needs {num_clients} SuperNodes connected, or a "
                "larger wait-for-clients-s)")
        time.sleep(poll_s)


def run_rounds(strategy, grid, owner, log: RoundLog, cfg, arrays: ArrayRecord, train_config: dict,
               progress: Progress, start_round: int = 1) -> ArrayRecord:
    """Round 0 (zero-shot numbers, unless the log has them), then rounds ``start_round``..num-rounds, each logged
    and checkpointed as it ends; returns the final global adapter."""
    zero = log.rows[0]["evaluation"] if log.rows and log.rows[0]["round"] == 0 else None
    if zero is None:
        t = time.perf_counter()
        zero = owner.zero_shot()
        log.write({"round": 0, "evaluation": zero, "emulator_bytes": owner.emulator_bytes,
                   "eval_seconds": time.perf_counter() - t})
    progress.phase(f"zero-shot: full model {zero['zero_shot']:,.4g}, emulator {zero['emulator_zero_shot']:,.4g} "
                   f"({progress.metric})")
    for server_round in range(start_round, cfg.num_rounds + 1):
        t = time.perf_counter()
        try:
            messages = strategy.configure_train(server_round, arrays, ConfigRecord(dict(train_config)), grid)
        except BudgetExhausted as e:
            progress.say(f"stopping before round {server_round}: {e}")
            break
        replies = grid.send_and_receive(messages, timeout=cfg.round_timeout_s or None)
        outcome = strategy.aggregate_round(server_round, replies)
        if outcome.arrays is not None:
            arrays = outcome.arrays
        timing = {"train_seconds": time.perf_counter() - t}
        evaluation = None
        if cfg.evaluation.due(server_round, cfg.num_rounds):
            t = time.perf_counter()
            evaluation = owner.evaluate(arrays.to_torch_state_dict())
            timing["eval_seconds"] = time.perf_counter() - t
        log.write({**outcome.row, "evaluation": evaluation, **timing})  # the row first: a resume redoes the round
        checkpoint.save(log.out, server_round, arrays.to_torch_state_dict(), strategy)
        progress.round_done(outcome.row, evaluation, zero["zero_shot"])
    if not any(r.get("aggregated") for r in log.rows):
        reasons = sorted({r.get("not_aggregated_reason", "") for r in log.rows if r["round"] > 0})
        raise FederationError(f"no round aggregated ({'; '.join(reasons)}), so there is no tuned adapter to plug in "
                              f"and no result was written; see {log.path} for every rejected reply")
    return arrays


def deliver(grid, nodes: list[int], owner, cfg, out, progress: Progress) -> dict:
    """Bring the emulator to every data owner by the configured mode (nothing for nodes that hold it); the record
    is appended to ``delivery.jsonl``. Returns what every training Message says about the emulator."""
    mode = cfg.delivery.chosen
    config = {"emulator-id": owner.manifest["id"], "emulator-delivery": mode.name,
              **mode.train_config(cfg.delivery, owner.emulator_dir, owner.manifest)}
    record = mode.deliver(grid, nodes, owner.emulator_dir, owner.manifest, cfg.delivery,
                          cfg.round_timeout_s or None, progress.say)
    with open(out / DELIVERY, "a") as f:
        f.write(json.dumps(record) + "\n")
    if "bytes_sent" in record:
        progress.phase(f"emulator delivered ({mode.name}): {record['bytes_sent'] / 2**20:,.0f} MiB sent in "
                       f"{record['seconds']:.1f} s, {len(record['failed'])} failed")
    return config


def open_run(out, cfg) -> tuple[RoundLog, checkpoint.Checkpoint | None]:
    """The run log to continue: empty for a new run (refusing a run dir that already holds one), or, with
    ``resume``, the rows up to the last checkpoint."""
    done = [p.name for p in (out / ROUNDS, out / checkpoint.DIR, out / "results.json") if p.exists()]
    if not cfg.resume:
        if done:
            raise FederationError(f"run dir {out} already holds a run ({', '.join(done)}); continue it with "
                                  f"`fedot sim ... --resume {out}`, or replace it with --overwrite")
        return RoundLog(out), None
    ck = checkpoint.load(out)
    last = ck.round if ck else 0
    return RoundLog(out, [r for r in read_rows(out) if r["round"] <= last]), ck
