"""ServerApp = the model owner: builds the emulator, runs the rounds, evaluates plug-in, writes the results."""

from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp

from fedot.aggregation.schedule import lr_at
from fedot.owner import ModelOwner
from fedot.run.config import FederatedConfig
from fedot.run.log import RoundLog, run_dir
from fedot.run.report import federated_report
from strategies import OffsiteStrategy

from .rounds import run_rounds
from .streaming_grid import StreamingGrid

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = FederatedConfig.from_run_config(context.run_config)
    out = run_dir(cfg.run_dir)  # checked before the model is loaded
    owner = ModelOwner(cfg)
    strategy = OffsiteStrategy(lr_for_round=lambda r: lr_at(r, cfg.num_rounds, cfg.lr, cfg.lr_schedule),
                               min_replies=cfg.min_replies, fraction_train=cfg.fraction_train,
                               emulator_bytes=owner.emulator_bytes)
    log = RoundLog(out)
    train_config = {"emulator-path": str(owner.emulator_dir), "emulator-id": owner.manifest["id"]}
    final = run_rounds(strategy, StreamingGrid(grid), owner, log, cfg, ArrayRecord(owner.initial_adapter()),
                       train_config)
    federated_report(owner, final.to_torch_state_dict(), log.rows, out, log.elapsed())
