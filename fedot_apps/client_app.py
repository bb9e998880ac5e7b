"""ClientApp = a data owner: trains the adapter on its own partition through the emulator it was sent.

It reads only the data owner's run-config keys (``DataOwnerConfig``), its node config and what the owner's Messages
carry: the emulator arrives by ``query`` Messages (``message`` delivery) or is found by the training Message's
emulator id in the node's own store (``fedot.delivery``), never by an owner-side setting. The worker cache it keeps
across rounds belongs to this app object. Faults configured for research (``fault-*``) are injected here, decided
from (seed, round, node) and reported in the reply's ``fault`` record.
"""

import time

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedot.aggregation.privacy import client_mod
from fedot.aggregation.validate import RUNTIME
from fedot.data_owner.faults import InjectedDropout, apply_attack, plan
from fedot.data_owner.worker import WorkerCache, local_round
from fedot.delivery import NodeStore, locate, message, node_cache_root


def dp_clipping(msg: Message, context: Context, call_next) -> Message:
    """Flower's clipping mod (fixed or adaptive) when the owner's training Message asks for client-side DP."""
    mod = client_mod(msg.content["config"]) if msg.metadata.message_type == "train" else None
    return mod(msg, context, call_next) if mod else call_next(msg, context)


def client_app(cache: WorkerCache) -> ClientApp:
    app = ClientApp(mods=[dp_clipping])

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return message.handle(msg, NodeStore(node_cache_root(context.node_config)), context.node_config)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        cfg = cache.config(context.run_id, context.run_config)  # parsed once per run, in this worker
        config = msg.content["config"]
        server_round, node = int(config.get("server-round", 1)), context.node_id
        pid, n = int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])
        faults = plan(cfg.faults, cfg.seed, server_round, node, pid, n)
        if faults.get("dropout"):
            raise InjectedDropout(f"injected fault: dropout (fault-dropout {cfg.faults.dropout:g})")
        time.sleep(faults.get("delay_s", 0.0))
        reference = msg.content["arrays"].to_torch_state_dict()
        emulator = locate(config, context.node_config, progress=cfg.verbose)  # the verified artifact, or a reason
        state, metrics = local_round(
            cache, emulator, str(config["emulator-id"]), reference, cfg,
            partition_id=pid, num_partitions=n, lr=float(config["lr"]), server_round=server_round,
            data_dir=str(context.node_config.get("data-dir", "")) or cfg.data_dir or None,
            proximal_mu=float(config.get("proximal-mu", 0.0)))
        reply = {"metrics": metrics, RUNTIME: ConfigRecord(metrics.pop("runtime"))}  # device, dtype
        if "attack" in faults:
            state, metrics["num-examples"] = apply_attack(cfg.faults, state, reference, metrics["num-examples"],
                                                          cfg.seed, server_round, node)
        if faults:
            reply["fault"] = ConfigRecord({k: v if isinstance(v, str) else float(v) for k, v in faults.items()})
        records = {"arrays": ArrayRecord(state), "metrics": MetricRecord(reply.pop("metrics")), **reply}
        return Message(RecordDict(records), reply_to=msg)

    return app


app = client_app(WorkerCache())
