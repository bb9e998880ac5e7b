"""Server cost of each aggregation rule: time and peak memory to aggregate one round of adapter replies.

The replies are the SmolLM2-135M quickstart adapter's real tensor names and shapes (blocks 0, 1, 28, 29) with random
values, built as Flower Messages and fed to ``strategies.OffsiteStrategy`` exactly as a round's replies arrive; every
rule runs in its own process (which never loads the model; the shapes are found once beforehand) so its peak RSS
is its own. FedAvg and FedProx stream (one reply held at a time:
the generator below builds each reply only when the strategy pulls it); the robust rules must hold every reply.

    .venv/bin/python bench/robustness.py [--clients 10 100] [--tuning full lora]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fedot.models import DEFAULT_MODEL


def adapter_shapes(tuning: str) -> dict:
    import torch

    from fedot.data_owner.tuning import TuningConfig, prepare, trainable_state
    from fedot.emulator import adapter_local, to_original
    from fedot.models import load_model, resolve

    model = load_model(resolve(DEFAULT_MODEL), torch.float32, "cpu")
    manifest = {"num_blocks": 30, "adapter_blocks": [0, 1, 28, 29], "emulator_blocks": list(range(2, 28))}
    model = prepare(model, adapter_local(manifest), TuningConfig.of(tuning))
    shapes = {k: tuple(v.shape) for k, v in trainable_state(model, to_original(manifest)).items()}
    del model
    return shapes


def one(rule: str, clients: int, tuning: str, shapes_file: str) -> dict:
    import torch
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from fedot.aggregation.rules import AggregationConfig
    from strategies import OffsiteStrategy

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
    shapes = {k: tuple(v) for k, v in json.loads(Path(shapes_file).read_text()).items()}
    reference = {k: torch.zeros(s) for k, s in shapes.items()}

    class Nodes:
        def get_node_ids(self):
            return list(range(1, clients + 1))

    f = max(1, (clients - 3) // 4) if rule == "bulyan" else 1
    cfg = AggregationConfig.of(rule, **({"malicious": f} if rule in ("krum", "multikrum", "bulyan") else {}))
    strategy = OffsiteStrategy(lr_for_round=lambda r: 1e-4, aggregation=cfg)
    sent = list(strategy.configure_train(1, ArrayRecord(reference), ConfigRecord({}), Nodes()))
    for i, m in enumerate(sent):
        m.metadata.__dict__["_message_id"] = f"m{i}"
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def replies():
        gen = torch.Generator().manual_seed(0)
        for m in sent:
            state = {k: torch.randn(s, generator=gen) * 1e-3 for k, s in shapes.items()}
            yield Message(RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord({"num-examples": 10})}),
                          reply_to=m)

    t = time.perf_counter()
    outcome = strategy.aggregate_round(1, replies())
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert outcome.row["aggregated"], outcome.row
    return {"rule": rule, "clients": clients, "tuning": tuning, "streaming": strategy.rule.streaming,
            "adapter_mib": sum(torch.Size(s).numel() * 4 for s in shapes.values()) / 2**20,
            "seconds": seconds, "peak_rss_mib": peak / 1024, "growth_mib": (peak - base) / 1024}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    p.add_argument("--tuning", nargs="+", default=["full", "lora"])
    p.add_argument("--rules", nargs="+", default=None)
    p.add_argument("--one", nargs=4, metavar=("RULE", "CLIENTS", "TUNING", "SHAPES"), help=argparse.SUPPRESS)
    p.add_argument("--out", default="bench/results/robustness.json")
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.one[2], args.one[3])))
        return
    from fedot.aggregation.rules import RULES

    rows = []
    print(f"{'rule':<14}{'tuning':<7}{'clients':>8}{'adapter MiB':>13}{'seconds':>10}{'RSS growth MiB':>16}  streaming")
    for tuning in args.tuning:
        shapes = Path(tempfile.mkdtemp()) / "shapes.json"  # the real adapter's shapes, found once per tuning
        shapes.write_text(json.dumps(adapter_shapes(tuning)))
        for clients in args.clients:
            for rule in args.rules or sorted(RULES.names()):
                out = subprocess.run([sys.executable, __file__, "--one", rule, str(clients), tuning, str(shapes)],
                                     capture_output=True, text=True)
                if out.returncode:
                    print(f"{rule:<14}{tuning:<7}{clients:>8}  failed: {out.stderr.strip().splitlines()[-1]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(r)
                print(f"{rule:<14}{tuning:<7}{clients:>8}{r['adapter_mib']:>13.2f}{r['seconds']:>10.2f}"
                      f"{r['growth_mib']:>16.0f}  {r['streaming']}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": "python " + " ".join(sys.argv), "rows": rows}, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
