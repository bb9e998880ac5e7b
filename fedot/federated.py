"""Federated offsite-tuning without Flower: the model owner's and data owners' roles, and aggregation.

The Flower layer (``strategies/``, ``fedot_apps/``) only moves messages; every
decision about adapters lives here so it can be tested and reused in-process.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .emulator import DistillConfig, EmulatorSpec, LayerReplaceConfig, adapter_local, read_manifest, to_local, to_original
from .evaluate import evaluate
from .models import default_device, default_dtype, load_model, load_tokenizer
from .plugin import adapter_parameters, plug_in, save_adapter
from .results import gap
from .sizes import artifact_sizes
from .tasks import DATA_ENV, get_task
from .train import TrainConfig, task_examples, train
from .tuning import TuningConfig, load_trainable_state, prepare, trainable_state


# --- aggregation -----------------------------------------------------------------------------

def reject_reason(update: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], num_examples) -> str | None:
    """Why a client's update cannot be averaged, or None if it can."""
    if not isinstance(num_examples, (int, float)) or not num_examples > 0 or not math.isfinite(num_examples):
        return f"num-examples must be a positive number, got {num_examples!r}"
    missing, extra = sorted(set(reference) - set(update)), sorted(set(update) - set(reference))
    if missing or extra:
        return f"tensor names differ from the global adapter (missing {missing[:3]}, unexpected {extra[:3]})"
    for name, ref in reference.items():
        t = update[name]
        if tuple(t.shape) != tuple(ref.shape):
            return f"{name} has shape {tuple(t.shape)}, expected {tuple(ref.shape)}"
        if t.dtype != ref.dtype:
            return f"{name} has dtype {t.dtype}, expected {ref.dtype}"
        if not torch.isfinite(t).all():
            return f"{name} contains NaN or Inf"
    return None


class RunningAverage:
    """FedAvg accumulated one update at a time, in float32.

    The server holds one running sum instead of every reply, so its memory does not
    grow with the number of clients in a round.
    """

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.total = 0.0
        self.count = 0

    def add(self, update: dict[str, torch.Tensor], num_examples: float) -> None:
        for k, t in update.items():
            weighted = t.float() * float(num_examples)
            if k in self.sums:
                self.sums[k] += weighted
            else:
                self.sums[k] = weighted
        self.total += float(num_examples)
        self.count += 1

    def result(self) -> dict[str, torch.Tensor]:
        if not self.count:
            raise ValueError("no updates to average")
        return {k: v / self.total for k, v in self.sums.items()}


def weighted_average(updates: list[tuple[dict[str, torch.Tensor], float]]) -> dict[str, torch.Tensor]:
    """FedAvg: example-weighted mean of each tensor, accumulated in float32."""
    acc = RunningAverage()
    for update, n in updates:
        acc.add(update, n)
    return acc.result()


def state_bytes(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def lr_at(round_: int, num_rounds: int, lr: float, schedule: str = "constant", final_ratio: float = 0.1) -> float:
    """Client learning rate for a round: constant, or cosine-decayed across rounds to ``final_ratio * lr``."""
    if schedule == "constant" or num_rounds <= 1:
        return lr
    if schedule != "cosine":
        raise ValueError(f"unknown lr schedule {schedule!r}; choose constant or cosine")
    progress = (round_ - 1) / (num_rounds - 1)
    return lr * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


# --- the run's settings ----------------------------------------------------------------------

@dataclass
class FederatedConfig:
    emulator: EmulatorSpec = field(default_factory=EmulatorSpec)
    task: str = "pydocs"
    num_rounds: int = 3
    fraction_train: float = 1.0
    min_replies: int = 1
    partitioning: str = "document"
    dirichlet_alpha: float = 0.5
    local_steps: int = 10
    local_epochs: float = 0.0  # > 0: passes over the client's data instead of local_steps
    lr: float = 1e-4
    lr_schedule: str = "constant"
    eval_every: int = 1
    eval_limit: int | None = None
    full_ft: bool = False
    full_ft_steps: int = 0  # 0: the same number of optimizer steps all clients took together
    seed: int = 0
    tuning: TuningConfig = field(default_factory=TuningConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_run_config(cls, rc: dict) -> "FederatedConfig":
        """Build from a Flower run config (``[tool.flwr.app.config]`` keys with hyphens).

        A non-empty ``data-dir`` becomes ``FEDOT_DATA_DIR`` in this process: simulation
        workers inherit the SuperLink's environment, not the environment of ``flwr run``.
        """
        g = lambda k, d=None: rc.get(k, d)  # noqa: E731
        if str(g("data-dir", "")):
            os.environ[DATA_ENV] = str(Path(str(g("data-dir"))).expanduser().resolve())
        layers = int(g("emulator-layers", -1))
        cfg = cls(
            emulator=EmulatorSpec(model=str(g("model", EmulatorSpec.model)), bottom=int(g("bottom", 2)), top=int(g("top", 2)),
                                  emulator_layers=None if layers < 0 else layers, method=str(g("emulator-method", "uniform")),
                                  sparsity=float(g("emulator-sparsity", 0.5)), bits=int(g("emulator-bits", 4)),
                                  src_ratio=None if float(g("emulator-src-ratio", -1)) < 0 else float(g("emulator-src-ratio")),
                                  distill=DistillConfig(corpus=str(g("emulator-distill-corpus", "wikitext2")),
                                                        steps=int(g("emulator-distill-steps", 200)),
                                                        lr=float(g("emulator-distill-lr", 1e-4))),
                                  n_adapter=int(g("emulator-n-adapter", 4)), alpha=float(g("emulator-alpha", 0.25)),
                                  importance=str(g("emulator-importance", "")),
                                  layer_replace=LayerReplaceConfig(corpus=str(g("emulator-layer-replace-corpus", "wikitext2")),
                                                                   steps=int(g("emulator-layer-replace-steps", 300)),
                                                                   lr=float(g("emulator-layer-replace-lr", 1e-3)))),
            task=str(g("task", cls.task)),
            num_rounds=int(g("num-rounds", 3)), fraction_train=float(g("fraction-train", 1.0)),
            min_replies=int(g("min-replies", 1)), partitioning=str(g("partitioning", "document")),
            dirichlet_alpha=float(g("dirichlet-alpha", 0.5)), local_steps=int(g("local-steps", 10)),
            local_epochs=float(g("local-epochs", 0.0)), lr=float(g("lr", 1e-4)),
            lr_schedule=str(g("lr-schedule", "constant")), eval_every=int(g("eval-every", 1)),
            eval_limit=(int(g("eval-limit", 0)) or None), full_ft=bool(g("full-ft", False)),
            full_ft_steps=int(g("full-ft-steps", 0)), seed=int(g("seed", 0)),
            tuning=TuningConfig(mode=str(g("tuning", "full")), lora_rank=int(g("lora-rank", 4)),
                                lora_alpha=(float(g("lora-alpha", 0)) or None), lora_dropout=float(g("lora-dropout", 0.0)),
                                lora_targets=(str(g("lora-targets", "")) or None)),
            train=TrainConfig(lr=float(g("lr", 1e-4)), batch_size=int(g("batch-size", 4)), max_length=int(g("max-length", 256)),
                              grad_accum=int(g("grad-accum", 1)), warmup_ratio=float(g("warmup-ratio", 0.0)),
                              max_steps=int(g("local-steps", 10)), seed=int(g("seed", 0))),
        )
        cfg.check()
        return cfg

    def check(self) -> None:
        from .partition import check as check_partitioning

        if self.num_rounds < 1 or self.local_steps < 1 or self.eval_every < 1 or self.local_epochs < 0:
            raise ValueError("num-rounds, local-steps and eval-every must all be >= 1, local-epochs >= 0")
        if not 0 < self.fraction_train <= 1:
            raise ValueError(f"fraction-train must be in (0, 1] (got {self.fraction_train})")
        if self.min_replies < 1:
            raise ValueError(f"min-replies must be >= 1 (got {self.min_replies})")
        lr_at(1, self.num_rounds, self.lr, self.lr_schedule)
        check_partitioning(self.task, self.partitioning, 1)


# --- the data owner --------------------------------------------------------------------------

_WORKER: dict = {"emulators": {}, "partitions": {}, "examples": {}, "emulator_loads": 0}


def client_emulator(path: str, sha256: str, tuning: TuningConfig, device: str):
    """The emulator for this worker process, loaded once per (artifact hash, tuning) and reused across rounds."""
    key = (sha256, json.dumps(tuning.describe(), sort_keys=True))
    if key not in _WORKER["emulators"]:
        manifest = read_manifest(path, verify=True)
        if manifest["sha256"] != sha256:
            raise ValueError(f"emulator at {path} has sha256 {manifest['sha256'][:12]}…, server sent {sha256[:12]}…")
        model = prepare(load_model(path, default_dtype(device), device), adapter_local(manifest), tuning)
        _WORKER["emulators"][key] = (model, manifest, load_tokenizer(path))
        _WORKER["emulator_loads"] += 1
    return _WORKER["emulators"][key]


def client_examples(task_name: str, tokenizer, scheme: str, num_partitions: int, partition_id: int,
                    seed: int, alpha: float, max_length: int):
    """This data owner's training examples (its partition of the task's train split)."""
    from .partition import partition_indices

    split = (os.environ.get(DATA_ENV), task_name, scheme, num_partitions, seed, alpha)
    if split not in _WORKER["partitions"]:  # all partitions at once: a worker serves many data owners
        _WORKER["partitions"][split] = partition_indices(task_name, scheme, num_partitions, seed, alpha)
    key = (*split, partition_id, max_length)
    if key not in _WORKER["examples"]:
        indices = _WORKER["partitions"][split][partition_id]
        _WORKER["examples"][key] = task_examples(task_name, tokenizer, max_length, indices=indices)
    return _WORKER["examples"][key]


def client_train(emulator_path: str, sha256: str, global_state: dict[str, torch.Tensor], cfg: FederatedConfig,
                 partition_id: int, num_partitions: int, lr: float, device: str | None = None) -> tuple[dict, dict]:
    """One round on one data owner: apply the global adapter, train locally, return (adapter, metrics)."""
    device = device or default_device()
    model, manifest, tokenizer = client_emulator(emulator_path, sha256, cfg.tuning, device)
    load_trainable_state(model, global_state, to_local=to_local(manifest))
    examples = client_examples(cfg.task, tokenizer, cfg.partitioning, num_partitions, partition_id, cfg.seed,
                               cfg.dirichlet_alpha, cfg.train.max_length)
    budget = {"max_steps": None, "epochs": cfg.local_epochs} if cfg.local_epochs else {"max_steps": cfg.local_steps}
    train_cfg = TrainConfig(**{**cfg.train.__dict__, **budget, "lr": lr, "seed": cfg.seed + partition_id})
    record = train(model, examples, train_cfg, desc=f"client {partition_id}")
    losses = [h["loss"] for h in record.history if "loss" in h]
    metrics = {"num-examples": len(examples), "train-steps": record.steps, "train-loss": sum(losses) / len(losses),
               "train-loss-last": losses[-1],
               "train-tokens": record.tokens, "train-seconds": record.seconds, "emulator-loads": _WORKER["emulator_loads"],
               "worker-pid": os.getpid()}
    return trainable_state(model, to_original(manifest)), metrics


# --- the model owner -------------------------------------------------------------------------

class ModelOwner:
    """Holds the full model (never sent), builds the emulator, and evaluates aggregated adapters."""

    def __init__(self, cfg: FederatedConfig, device: str | None = None):
        self.cfg = cfg
        get_task(cfg.task).docs("test")  # missing data fails before the model is loaded
        self.model_dir = cfg.emulator.check()
        self.device = device or default_device()
        self.dtype = default_dtype(self.device)
        self.emulator_dir, self.manifest = cfg.emulator.build()
        self.tokenizer = load_tokenizer(self.emulator_dir)
        self.full = load_model(self.model_dir, self.dtype, self.device)
        self.base = {k: v.detach().clone() for k, v in adapter_parameters(self.full, self.manifest["adapter_layers"]).items()}
        self.emulator = prepare(load_model(self.emulator_dir, self.dtype, self.device), adapter_local(self.manifest), cfg.tuning)
        self.emulator_bytes = artifact_sizes(self.emulator_dir)["artifact_file_bytes"]
        self.meta = {**cfg.tuning.describe(), "adapter_layers": self.manifest["adapter_layers"], "source_model": cfg.emulator.model,
                     "emulator_sha256": self.manifest["sha256"], "task": cfg.task}

    def initial_adapter(self) -> dict[str, torch.Tensor]:
        """The adapter before any tuning, in full-model names (LoRA starts at its peft initialisation)."""
        return trainable_state(self.emulator, to_original(self.manifest))

    def _eval(self, model) -> float:
        return evaluate(model, self.tokenizer, self.cfg.task, "test", self.cfg.eval_limit)["primary"]

    def evaluate_round(self, server_round: int, adapter: dict[str, torch.Tensor]) -> dict:
        """Plug-in and emulator-fine-tuned numbers for an adapter (plus zero-shot numbers at round 0)."""
        out = {}
        if server_round == 0:
            out["zero_shot"] = self._eval(self.full)
            load_trainable_state(self.emulator, adapter, to_local=to_local(self.manifest))
            out["emulator_zero_shot"] = self._eval(self.emulator)
            return out
        load_trainable_state(self.emulator, adapter, to_local=to_local(self.manifest))
        out["emulator_finetuned"] = self._eval(self.emulator)
        plug_in(self.full, adapter, self.meta, base=self.base)
        out["plugin"] = self._eval(self.full)
        out["gap"] = gap(out, get_task(self.cfg.task).higher_is_better)
        return out

    def save_adapter(self, path: Path, adapter: dict[str, torch.Tensor]) -> Path:
        return save_adapter(path, adapter, self.meta)

    def full_finetune(self, steps: int) -> float:
        """The FT baseline: the full model trained centrally on the union of the clients' data (no privacy)."""
        examples = task_examples(self.cfg.task, self.tokenizer, self.cfg.train.max_length)
        model = load_model(self.model_dir, self.dtype, self.device)
        model.requires_grad_(True)
        cfg = TrainConfig(**{**self.cfg.train.__dict__, "max_steps": steps, "lr": self.cfg.lr})
        train(model, examples, cfg, desc="full FT baseline")
        score = self._eval(model)
        del model
        return score


class RoundLog:
    """Appends one JSON line per round to ``rounds.jsonl``: who trained, what was accepted, bytes, evaluations."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / "rounds.jsonl"
        self.path.write_text("")
        self.rows: list[dict] = []
        self.t0 = time.perf_counter()

    def write(self, row: dict) -> None:
        row = {**row, "elapsed_s": round(time.perf_counter() - self.t0, 2)}
        self.rows.append(row)
        with open(self.path, "a") as f:
            f.write(json.dumps(row, default=str) + "\n")
