"""ClientApp = a data owner: trains the adapter on its own partition through the emulator it was sent.

It reads only the data owner's run-config keys (``DataOwnerConfig``) and its node config; the worker cache it keeps
across rounds belongs to this app object.
"""

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedot.data_owner.worker import DataOwnerConfig, WorkerCache, local_round
from fedot.settings import declarations, from_flat


def data_owner_config(run_config) -> DataOwnerConfig:
    """The data owner's settings from a run config: its own keys only, whatever else the run config holds."""
    keys = {d.key for d in declarations(DataOwnerConfig)}
    return from_flat(DataOwnerConfig, {k: v for k, v in run_config.items() if k in keys})


def client_app(cache: WorkerCache) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        cfg = data_owner_config(context.run_config)
        config = msg.content["config"]
        state, metrics = local_round(
            cache, str(config["emulator-path"]), str(config["emulator-id"]),
            msg.content["arrays"].to_torch_state_dict(),
            cfg, partition_id=int(context.node_config["partition-id"]),
            num_partitions=int(context.node_config["num-partitions"]), lr=float(config["lr"]),
            data_dir=str(context.node_config.get("data-dir", "")) or cfg.data_dir or None)
        return Message(RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord(metrics)}), reply_to=msg)

    return app


app = client_app(WorkerCache())
