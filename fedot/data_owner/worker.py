"""A data owner's round, and the cache a worker process keeps across the rounds and data owners it serves.

:class:`DataOwnerConfig` is everything a data owner reads from the run config: its task, its share of the data,
what and how it trains. Nothing of the model owner (model id, owner paths, caches) is in it, so a ClientApp that
parses only these keys cannot depend on the owner's side. :class:`WorkerCache` holds what is expensive to redo: a
Ray worker serves many data owners over many rounds, and loading the emulator or partitioning a task for each call
would dominate. The ClientApp owns one instance; tests make their own.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass

import torch

from ..emulator import to_local, to_original
from ..models import default_device, load_tokenizer
from ..precision import Precision
from ..settings import declarations, from_flat, group, setting
from ..tasks import data_dir as resolve_data_dir
from ..tasks import task_names
from ..tasks.tokenize import task_examples
from .faults import FaultConfig
from .partition import PartitionConfig, partition_indices
from .train import TrainConfig, train
from .tuning import TuningConfig, load_trainable_state, load_tunable, trainable_state


@dataclass
class DataOwnerConfig:
    task: str = setting("pydocs", "the task: its train split is the data owners' data, its test split scores the "
                        "five numbers", choices=task_names)
    seed: int = setting(0, "seed of everything random: partitioning, client sampling, local batches", ge=0)
    verbose: bool = setting(False, "progress bars of every training step and scored window, in the data owners' "
                            "and the owner's logs (`fedot sim --verbose`)")
    device: str = setting("", "the data owner's torch device: cuda (a GPU is required: a worker without one refuses "
                          "with the fix), cpu, or empty: cuda when available")
    data_dir: str = setting("", "offline data in FEDOT_DATA_DIR's layout for a simulation (`fedot sim` fills it in); "
                            "a SuperNode's node-config data-dir wins; empty: FEDOT_DATA_DIR, else the hub")
    faults: FaultConfig = group(FaultConfig, prefix="fault")
    partition: PartitionConfig = group(PartitionConfig)
    tuning: TuningConfig = group(TuningConfig)
    train: TrainConfig = group(TrainConfig)
    precision: Precision = group(Precision)

    def check(self) -> None:
        self.precision.check_training()


def data_owner_config(run_config) -> DataOwnerConfig:
    """The data owner's settings from a run config: its own keys only, whatever else the run config holds."""
    keys = {d.key for d in declarations(DataOwnerConfig)}
    return from_flat(DataOwnerConfig, {k: v for k, v in run_config.items() if k in keys})


class WorkerCache:
    def __init__(self, max_emulators: int = 3):
        self.emulators: OrderedDict = OrderedDict()  # (artifact id, tuning) -> (model, manifest, tokenizer)
        self.max_emulators = max_emulators  # tiers and re-aligned versions: the least recently used is let go
        self.partitions: dict = {}  # (data, task, scheme, partitions, seed) -> indices of every partition
        self.examples: dict = {}  # (... , partition id, max length) -> tokenised examples
        self.emulator_loads = 0
        self.configs: OrderedDict = OrderedDict()  # run id -> its DataOwnerConfig

    def config(self, run_id, run_config) -> DataOwnerConfig:
        """The data owner's settings of a run, parsed from its run config once (its own keys only, whatever else
        the run config holds)."""
        if run_id not in self.configs:
            self.configs[run_id] = data_owner_config(run_config)
            while len(self.configs) > 4:
                self.configs.popitem(last=False)
        return self.configs[run_id]

    def emulator(self, path: str, artifact_id: str, tuning: TuningConfig, device: str, dtype: torch.dtype):
        """The emulator prepared for tuning, loaded (and verified file by file) once per artifact, tuning and dtype;
        on a GPU only the one in use is kept (the memory plan counts one), on a CPU the last few."""
        key = (artifact_id, json.dumps(tuning.metadata(), sort_keys=True), str(dtype), device)
        if key not in self.emulators and str(device).startswith("cuda"):
            self.emulators.clear()  # release the previous one before the next is loaded onto the GPU
            torch.cuda.empty_cache()
        if key not in self.emulators:
            model, manifest = load_tunable(path, tuning, dtype, device, expected_id=artifact_id)
            self.emulators[key] = (model, manifest, load_tokenizer(path))
            self.emulator_loads += 1
            while len(self.emulators) > self.max_emulators:
                self.emulators.popitem(last=False)
        self.emulators.move_to_end(key)
        return self.emulators[key]

    def examples_of(self, cfg: DataOwnerConfig, tokenizer, num_partitions: int, partition_id: int, data_dir):
        """This data owner's training examples (its partition of the task's train split)."""
        split = (str(resolve_data_dir(data_dir)), cfg.task, cfg.partition.scheme, cfg.partition.alpha,
                 num_partitions, cfg.seed)
        if split not in self.partitions:  # all partitions at once: a worker serves many data owners
            self.partitions[split] = partition_indices(cfg.task, cfg.partition, num_partitions, cfg.seed,
                                                       root=data_dir)
        key = (*split, partition_id, cfg.train.max_length)
        if key not in self.examples:
            self.examples[key] = task_examples(cfg.task, tokenizer, cfg.train.max_length,
                                               indices=self.partitions[split][partition_id], root=data_dir)
        return self.examples[key]


def worker_device(wanted: str) -> str:
    """The device this worker trains on: ``wanted`` if it has it; a GPU the sim asks for and the worker lacks is an
    error naming the cause (a plain ``flwr run`` does not give simulated data owners the sim's GPU resources)."""
    if not wanted:
        return default_device()
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("this data owner must train on a GPU (device = 'cuda') but its worker has none: a plain "
                           "`flwr run` ignores the sim's [tool.fedot.federation] resources; run it with `fedot sim`, "
                           "or pass them: flwr run SIM --federation-config \"num-supernodes=N "
                           "client-resources-num-gpus=G client-resources-num-cpus=C\"")
    return wanted


def round_seed(seed: int, server_round: int, partition_id: int) -> int:
    """A data owner's seed for one round: distinct per (seed, round, partition), so a client draws new batches every
    round and no two (seed, partition) pairs share a stream (``seed + partition`` did: (0, 1) == (1, 0))."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{server_round}/{partition_id}".encode()).digest()[:4], "big")


def local_round(cache: WorkerCache, emulator_path: str, artifact_id: str, global_state: dict[str, torch.Tensor],
                cfg: DataOwnerConfig, *, partition_id: int, num_partitions: int, lr: float, server_round: int = 1,
                data_dir=None, device: str | None = None, proximal_mu: float = 0.0) -> tuple[dict, dict]:
    """One round on one data owner: apply the global adapter, train locally, return (adapter, metrics)."""
    device = device or worker_device(cfg.device)
    cfg.precision.check_training(device)
    dtype = cfg.precision.torch_dtype(device)
    model, manifest, tokenizer = cache.emulator(emulator_path, artifact_id, cfg.tuning, device, dtype)
    load_trainable_state(model, global_state, to_local=to_local(manifest))
    num_partitions, partition_id = cfg.partition.owned(num_partitions, partition_id)  # a data-shard it is given
    examples = cache.examples_of(cfg, tokenizer, num_partitions, partition_id, data_dir)
    record = train(model, examples, cfg.train, lr=lr, seed=round_seed(cfg.seed, server_round, partition_id),
                   desc=f"client {partition_id}", progress=cfg.verbose, proximal_mu=proximal_mu)
    losses = [h["loss"] for h in record.history if "loss" in h]
    metrics = {"num-examples": len(examples), "train-steps": record.steps, "train-loss": sum(losses) / len(losses),
               "train-loss-last": losses[-1], "train-tokens": record.tokens, "train-seconds": record.seconds,
               "emulator-loads": cache.emulator_loads, "worker-pid": os.getpid()}
    stats = getattr(examples, "stats", {})  # instruction examples: what fitting max-length cut (never silently)
    if stats:
        metrics["examples-truncated"] = stats["prompt_truncated"] + stats["response_truncated"]
        metrics["examples-skipped"] = stats["skipped"]
    metrics["runtime"] = {"device": str(device), "dtype": str(dtype).removeprefix("torch.")}
    return trainable_state(model, to_original(manifest)), metrics
