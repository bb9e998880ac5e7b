"""The rounds of a federated run as the ServerApp drives them: the strategy decides, the owner evaluates, this logs.

The same steps as Flower's ``Strategy.start`` (configure_train -> send_and_receive -> aggregate -> evaluate), with
the ServerApp owning the log: each round's row (from the strategy's :class:`~strategies.RoundOutcome`) is written
with its evaluation as soon as the round ends, and a progress line says where the run is.

Before anything is loaded, :func:`await_data_owners` makes sure the federation has the data owners the experiment
declares: a plain ``flwr run`` simulates Flower's default of 2 SuperNodes whatever the sim says, and would otherwise
train the wrong number of data owners and report success.

With ``emulator-alignment`` the owner re-aligns the emulator after each round's evaluation; a data owner sampled for a
later round is first brought the current version (:func:`refresh`: only the files it lacks), and the round's row
records the alignment (owner seconds, distance before and after, changed bytes) and that delivery (bytes sent).
"""

from __future__ import annotations

import json
import time

from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from fedot.aggregation.privacy import BudgetExhausted
from fedot.delivery import message
from fedot.emulator.tiers import choose_tier
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


def run_rounds(strategy, grid, owner, log: RoundLog, cfg, arrays: ArrayRecord, node_configs: dict[int, dict],
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
            messages = strategy.configure_train(server_round, arrays, ConfigRecord({}), grid)
        except BudgetExhausted as e:
            progress.say(f"stopping before round {server_round}: {e}")
            break
        update = refresh(grid, [m.metadata.dst_node_id for m in messages], owner, cfg, node_configs, log.out, progress)
        for msg in messages:  # each node's own emulator (its tier's), in its own content (Flower shares one by all)
            config = ConfigRecord({**msg.content["config"], **node_configs[msg.metadata.dst_node_id]})
            msg.content = RecordDict({**msg.content, "config": config})
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
        extra = {"tiers": {str(m.metadata.dst_node_id): node_configs[m.metadata.dst_node_id]["emulator-tier"]
                           for m in messages}} if len(owner.tiers) > 1 else {}
        if update:
            extra["emulator_update"] = update
        progress.round_done(outcome.row, evaluation, zero["zero_shot"])
        if owner.aligner and server_round < cfg.num_rounds:
            extra["alignment"] = owner.align(arrays.to_torch_state_dict(), server_round, log.out)
            progress.phase(alignment_line(extra["alignment"]))
        log.write({**outcome.row, **extra, "evaluation": evaluation, **timing})  # the row first: a resume redoes it
        checkpoint.save(log.out, server_round, arrays.to_torch_state_dict(), strategy, owner.emulator_state())
        if owner.aligner:
            owner.prune_aligned(log.out)
    if not any(r.get("aggregated") for r in log.rows):
        reasons = sorted({r.get("not_aggregated_reason", "") for r in log.rows if r["round"] > 0})
        raise FederationError(f"no round aggregated ({'; '.join(reasons)}), so there is no tuned adapter to plug in "
                              f"and no result was written; see {log.path} for every rejected reply")
    return arrays


def assign_tiers(grid, nodes: list[int], owner, cfg, progress: Progress) -> tuple[dict[int, int], dict]:
    """Each node's emulator tier (index into ``owner.tiers``) and the record of how it was chosen."""
    if len(owner.tiers) == 1:
        return dict.fromkeys(nodes, 0), {}
    plans = owner.tier_plans()
    assignment, why = {}, {}
    for node, answer in message.ask_profiles(grid, nodes, cfg.round_timeout_s or None).items():
        try:
            if isinstance(answer, str):
                raise ValueError(f"no profile ({answer})")
            assignment[node], why[str(node)] = choose_tier(answer, plans, cfg.tiers.unnamed)
        except ValueError as e:  # this node gets no emulator: its replies are rejected with the reason
            assignment[node], why[str(node)] = -1, str(e)
    counts = {t.blocks: sum(1 for i in assignment.values() if i == k) for k, t in enumerate(owner.tiers)}
    progress.phase("emulator tiers (middle blocks: data owners): " + ", ".join(f"{b}: {c}" for b, c in counts.items())
                   + (f"; {sum(1 for i in assignment.values() if i < 0)} without a tier" if -1 in assignment.values()
                      else ""))
    return assignment, {"tier_of": {str(n): owner.tiers[i].blocks if i >= 0 else None for n, i in assignment.items()},
                        "why": why, "planned_bytes": {str(t.blocks): p for t, p in zip(owner.tiers, plans)}}


def alignment_line(record: dict) -> str:
    before, after = record["distance_before"]["objective"], record["distance_after"]["objective"]
    return (f"emulator re-aligned ({record['method']}, {record['steps']} steps, {record['owner_seconds']:.1f} s): "
            f"distance {before:.4g} -> {after:.4g}; {len(record['changed_files'])} changed files, "
            f"{record['changed_bytes'] / 2**20:,.1f} MiB")


def tier_config(tier, cfg) -> dict:
    """What a training Message says about a tier's emulator."""
    mode = cfg.delivery.chosen
    return {"emulator-id": tier.manifest["id"], "emulator-tier": tier.blocks, "emulator-delivery": mode.name,
            **mode.train_config(cfg.delivery, tier.path, tier.manifest)}


def deliver_tier(grid, members: list[int], tier, cfg, out, progress: Progress, drop: tuple[str, ...] = (),
                 **extra) -> dict:
    """Bring ``members`` a tier's emulator by the configured mode; the record (with ``extra``) goes to
    ``delivery.jsonl``."""
    mode = cfg.delivery.chosen
    record = {**mode.deliver(grid, members, tier.path, tier.manifest, cfg.delivery, cfg.round_timeout_s or None,
                             progress.say, drop), **extra}
    with open(out / DELIVERY, "a") as f:
        f.write(json.dumps(record) + "\n")
    if "bytes_sent" in record:
        progress.phase(f"emulator delivered ({mode.name}): {record['bytes_sent'] / 2**20:,.1f} MiB sent in "
                       f"{record['seconds']:.1f} s, {len(record['failed'])} failed")
    return record


def refresh(grid, nodes: list[int], owner, cfg, node_configs: dict[int, dict], out, progress: Progress) -> dict | None:
    """With alignment: bring the round's data owners that hold an older emulator version the current one (each only
    the files it lacks; it may then delete the older one). Returns the delivery's summary for the round's row."""
    if owner.aligner is None:
        return None
    tier, current = owner.tiers[-1], owner.manifest["id"]
    stale = [n for n in nodes if node_configs[n]["emulator-id"] != current and not node_configs[n].get(
        "emulator-refused")]
    if not stale:
        return None
    drop = tuple(sorted({node_configs[n]["emulator-id"] for n in stale}))
    record = deliver_tier(grid, stale, tier, cfg, out, progress, drop)
    node_configs.update(dict.fromkeys(stale, tier_config(tier, cfg)))
    return {"artifact_id": current, "nodes": len(stale), "failed": record.get("failed", {}),
            **{k: record[k] for k in ("bytes_sent", "bytes_reused", "seconds") if k in record}}


def deliver(grid, nodes: list[int], owner, cfg, out, progress: Progress) -> dict[int, dict]:
    """Bring each node its tier's emulator by the configured mode (nothing for nodes that hold it); the records go
    to ``delivery.jsonl``. Returns what each node's training Messages say about its emulator."""
    assignment, tiers_record = assign_tiers(grid, nodes, owner, cfg, progress)
    configs, tier_configs = {}, []
    for k, tier in enumerate(owner.tiers):
        tier_configs.append(tier_config(tier, cfg))
        configs.update({n: tier_configs[k] for n, i in assignment.items() if i == k})
        members = [n for n in nodes if assignment[n] == k]
        if members:
            deliver_tier(grid, members, tier, cfg, out, progress,
                         **({"tier_blocks": tier.blocks} if len(owner.tiers) > 1 else {}))
    if tiers_record:
        with open(out / DELIVERY, "a") as f:
            f.write(json.dumps({"tiers": tiers_record}) + "\n")
    for node in (n for n in assignment if n not in configs):  # told why it has none: its replies are rejected so
        configs[node] = {**tier_configs[-1], "emulator-tier": -1,
                         "emulator-refused": f"no emulator tier fits it ({tiers_record['why'][str(node)]})"}
    return configs


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
