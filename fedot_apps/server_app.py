"""ServerApp = the model owner: builds the emulator, runs OffsiteFedAvg, evaluates plug-in every few rounds."""

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from fedot.federated import FederatedConfig, ModelOwner, RoundLog, lr_at
from fedot.report import federated_report, run_dir
from strategies import OffsiteFedAvg

from .streaming_grid import StreamingGrid

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    rc = context.run_config
    out = run_dir(rc)  # checked before the model is loaded
    cfg = FederatedConfig.from_run_config(rc)
    owner = ModelOwner(cfg)
    round_log = RoundLog(out)
    strategy = OffsiteFedAvg(round_log=round_log, min_replies=cfg.min_replies, fraction_train=cfg.fraction_train,
                             lr_for_round=lambda r: lr_at(r, cfg.num_rounds, cfg.lr, cfg.lr_schedule),
                             emulator_bytes=owner.emulator_bytes)
    evaluations = {}

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        due = server_round == 0 or server_round % cfg.eval_every == 0 or server_round == cfg.num_rounds
        result = owner.evaluate_round(server_round, arrays.to_torch_state_dict()) if due else None
        if server_round == 0:
            round_log.write({"round": 0, "evaluation": result, "emulator_bytes": owner.emulator_bytes})
        else:
            strategy.finish_round(result)
        if result:
            evaluations[server_round] = result
        return MetricRecord(result) if result else None

    train_config = ConfigRecord({"emulator-path": str(owner.emulator_dir), "emulator-sha256": owner.manifest["sha256"]})
    final = strategy.start(grid=StreamingGrid(grid), initial_arrays=ArrayRecord(owner.initial_adapter()),
                           num_rounds=cfg.num_rounds, train_config=train_config, evaluate_fn=evaluate)
    federated_report(owner, final.arrays.to_torch_state_dict(), evaluations, round_log, out, rc)
