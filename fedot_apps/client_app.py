"""ClientApp = a data owner: trains the adapter on its own partition through the cached emulator."""

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedot.federated import FederatedConfig, client_train

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    cfg = FederatedConfig.from_run_config(context.run_config)
    config = msg.content["config"]
    state, metrics = client_train(
        str(config["emulator-path"]), str(config["emulator-sha256"]), msg.content["arrays"].to_torch_state_dict(), cfg,
        partition_id=int(context.node_config["partition-id"]), num_partitions=int(context.node_config["num-partitions"]),
        lr=float(config["lr"]),
    )
    return Message(RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord(metrics)}), reply_to=msg)
