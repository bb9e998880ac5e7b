"""ServerApp = the model owner: builds the emulator, runs the rounds, evaluates plug-in, writes the results."""

import random

from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp

from fedot.aggregation.schedule import lr_at
from fedot.delivery.rollout import Rollout
from fedot.files import write_json
from fedot.run import checkpoint
from fedot.run.config import FederatedConfig
from fedot.run.divergence import Diverged
from fedot.run.log import open_run, run_dir
from fedot.run.model_owner import ModelOwner
from fedot.run.progress import Progress
from fedot.run.report import federated_report
from fedot.run.tracking import Tracking
from fedot.settings import to_flat
from fedot.tasks import get_task
from strategies import OffsiteStrategy

from .federation import await_data_owners, sim_folder
from .ray_workers import replace_dead_actors
from .rounds import run_rounds
from .streaming_grid import StreamingGrid

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = FederatedConfig.from_run_config(context.run_config)
    replace_dead_actors()  # a simulation's worker killed mid-round is replaced, not reused
    nodes = await_data_owners(grid, cfg.num_clients, cfg.wait_for_clients_s)  # before anything is loaded
    out = run_dir(cfg.run_dir, f"{sim_folder(grid).removeprefix('sims/')}-{context.run_id}")
    log, resumed = open_run(out, cfg.resume)  # before the model loads: a run dir in use is refused at once
    write_json(out / "run_config.json", to_flat(cfg))
    progress = Progress(cfg.num_rounds, get_task(cfg.data_owner.task).primary)
    log.tracker = Tracking(cfg.tracking, out, out.name, to_flat(cfg), report=progress.say)
    progress.say(f"{cfg.num_clients} data owners, {cfg.num_rounds} rounds; outputs in {out}")
    owner = ModelOwner(cfg, report=progress.say)
    progress.phase(f"emulator ready ({cfg.emulator.method}, {len(owner.manifest['emulator_blocks'])} of "
                   f"{owner.manifest['num_blocks'] - len(owner.manifest['adapter_blocks'])} middle blocks, "
                   f"{owner.emulator_bytes / 2**20:,.0f} MiB), full model loaded")
    strategy = OffsiteStrategy(lr_for_round=lambda r: lr_at(r, cfg.num_rounds, cfg.lr, cfg.lr_schedule),
                               min_replies=cfg.min_replies, fraction_train=cfg.fraction_train,
                               aggregation=cfg.aggregation, dp=cfg.dp, population=cfg.num_clients)
    adapter = owner.initial_adapter()
    random.seed(f"client-sampling:{cfg.data_owner.seed}")  # Flower's FedAvg samples with Python's global generator
    if resumed is not None:
        checkpoint.restore(strategy, resumed)
        adapter = resumed.adapter
        progress.say(f"resuming after round {resumed.round} of {cfg.num_rounds} (checkpoint in {out})")
    owner.start_alignment(out, resumed.emulator if resumed else None)
    grid = StreamingGrid(grid)
    rollout = Rollout(grid, owner.tiers, cfg.delivery, cfg.round_timeout_s or None, out, progress)
    rollout.deliver(nodes, cfg.tiers.tier_unnamed, owner.tier_plans)
    strategy.emulator_bytes = rollout.emulator_bytes()
    try:
        final = run_rounds(strategy, grid, owner, log, cfg, ArrayRecord(adapter), rollout, progress,
                           start_round=resumed.round + 1 if resumed else 1)
    except Diverged as e:  # results of the last finite adapter, saying where it diverged; then a failed run
        log.tracker.finish(federated_report(owner, e.adapter.to_torch_state_dict(), log.rows, out, log.elapsed(),
                                            log.outcomes(), diverged={"round": e.round, "reason": e.reason}))
        raise
    record = federated_report(owner, final.to_torch_state_dict(), log.rows, out, log.elapsed(), log.outcomes())
    log.tracker.finish(record)
    if record.get("not_finite"):
        raise RuntimeError(f"the final evaluation is not finite ({record['not_finite']}); see {out / 'results.md'}")
    if "full_finetuned" in record["numbers"]:
        progress.phase(f"FT baseline: {record['numbers']['full_finetuned']:,.4g}")
    progress.say(f"done in {log.elapsed():.0f} s; results in {out}")
