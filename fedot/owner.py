"""The model owner in a federated run: holds the full model (never sent), builds the emulator, evaluates adapters.

It evaluates what the paper's five numbers need on the task's test split: the full model and the emulator
zero-shot (before any round), and after a round the aggregated adapter through the emulator (OT emulator) and
plugged into the full model (OT plug-in). The FT baseline fine-tunes the full model centrally on the union of the
data owners' data: a reference that needs the data in one place, never part of the private protocol. With emulator
tiers (:mod:`fedot.emulator.tiers`) it builds one emulator per tier, keeps the deepest loaded and evaluates the
adapter through every tier.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from .data_owner.train import train
from .data_owner.tuning import load_trainable_state, prepare, trainable_state
from .emulator import adapter_local, load_emulator, read_manifest, to_local, to_original
from .emulator.shards import read_tensors, write_sharded
from .emulator.tiers import tier_specs
from .evaluation import EvalCache, docs_of, evaluate
from .evaluation.cache import docs_hash
from .models import content_hash, default_device, default_dtype, load_config, load_model, load_tokenizer
from .plugin import adapter_parameters, plug_in, save_adapter
from .run.results import gap
from .settings import setting, to_flat
from .sizes import artifact_sizes
from .tasks import get_task
from .tasks.tokenize import task_examples


@dataclass
class BaselineConfig:
    enabled: bool = setting(False, "also fine-tune the full model centrally on the union of the data owners' data "
                            "(the FT baseline of the five numbers; not private)", key="full-ft")
    steps: int = setting(0, "FT baseline optimizer steps; 0: as many as all data owners took together", ge=0,
                         key="full-ft-steps")


@dataclass
class Tier:
    """One emulator the owner ships (the only one without ``emulator-tiers``)."""

    spec: object
    path: Path
    manifest: dict

    @property
    def blocks(self) -> int:
        return len(self.manifest["emulator_blocks"])

    @cached_property
    def bytes(self) -> int:
        return artifact_sizes(self.path)["artifact_file_bytes"]


class ModelOwner:
    def __init__(self, cfg, device: str | None = None, report=print):
        self.cfg = cfg
        self.cache = EvalCache(enabled=cfg.evaluation.cache, report=report)
        self.task = cfg.data_owner.task
        self.data_dir = cfg.data_owner.data_dir or None
        get_task(self.task).docs("test", self.data_dir)  # missing data fails before the model is loaded
        cfg.emulator.data_dir = self.data_dir
        self.model_dir = cfg.emulator.preflight()
        specs, config = tier_specs(cfg.emulator, cfg.tiers.levels), load_config(self.model_dir)
        for spec in specs:  # every tier's split and privacy, before any build
            spec.preflight()
            cfg.delivery.refuse_lossless(spec.lossless(config))
        self.device = device or default_device()
        self.dtype = default_dtype(self.device)
        self.tiers = [Tier(spec, *spec.build()) for spec in specs]
        if len({tuple(t.manifest["adapter_blocks"]) for t in self.tiers}) > 1:
            raise ValueError("emulator tiers must share their adapter blocks (one adapter is aggregated); use a "
                             "sandwich method, whose adapter is the bottom and top blocks at every size")
        self.emulator_dir, self.manifest = self.tiers[-1].path, self.tiers[-1].manifest  # the deepest tier
        self.tokenizer = load_tokenizer(self.emulator_dir)
        self.full = load_model(self.model_dir, self.dtype, self.device)
        adapter = adapter_parameters(self.full, self.manifest["adapter_blocks"])
        self.base = {k: v.detach().clone() for k, v in adapter.items()}
        emulator, _ = load_emulator(self.emulator_dir, self.dtype, self.device)
        self.emulator = prepare(emulator, adapter_local(self.manifest), cfg.data_owner.tuning)
        self.emulator_bytes = self.tiers[-1].bytes
        self.meta = {**cfg.data_owner.tuning.describe(), "adapter_blocks": self.manifest["adapter_blocks"],
                     "source_model": cfg.emulator.model, "emulator_id": self.manifest["id"], "task": self.task}
        self.aligner = cfg.alignment.build(self.tokenizer, self.data_dir) if cfg.alignment.enabled else None
        if self.aligner:
            self.aligner.check(self.manifest)

    def start_alignment(self, out: Path, resume: dict | None = None) -> None:
        """With alignment: ship the owner's own copy of the emulator in the per-block layout (``out/emulator-r0``),
        or, resuming, the re-aligned one the checkpoint names (verified, and loaded into the owner's emulator)."""
        if self.aligner is None:
            return
        if resume is None:
            manifest, _ = write_sharded(self.emulator_dir, out / "emulator-r0",
                                        {**self.manifest, "aligned": {"round": 0, "from": self.manifest["id"]}})
            return self._use(out / "emulator-r0", manifest)
        path = out / resume["dir"]
        manifest = read_manifest(path, verify=True, expected_id=resume["id"])
        base = self.emulator.get_base_model() if hasattr(self.emulator, "get_base_model") else self.emulator
        stored = read_tensors(path)
        with torch.no_grad():
            for name, p in base.named_parameters():
                if name in stored and not p.requires_grad:  # the adapter comes from the checkpoint, not from here
                    p.copy_(stored[name].to(p.dtype))
        self._use(path, manifest)

    def _use(self, path: Path, manifest: dict) -> None:
        self.tiers[-1] = Tier(self.tiers[-1].spec, path, manifest)
        self.emulator_dir, self.manifest, self.emulator_bytes = path, manifest, self.tiers[-1].bytes

    def align(self, adapter: dict[str, torch.Tensor], server_round: int, out: Path) -> dict:
        """Re-align the emulator to the full model with ``adapter`` plugged into both, and write the new version
        (only its changed block files are new); returns the record for rounds.jsonl."""
        t0, previous = time.perf_counter(), self.tiers[-1]
        plug_in(self.full, adapter, self.meta, base=self.base)
        load_trainable_state(self.emulator, adapter, to_local=to_local(self.manifest))
        record = self.aligner.align(self.emulator, self.full, self.manifest, server_round, self.cfg.data_owner.seed)
        aligned = {"round": server_round, "from": previous.manifest["id"], **self.cfg.alignment.describe()}
        path = out / f"emulator-r{server_round}"
        manifest, changed = write_sharded(previous.path, path, {**previous.manifest, "aligned": aligned},
                                          record.pop("tensors"))
        self._use(path, manifest)
        return {**record, "emulator_id": manifest["id"], "changed_files": changed,
                "changed_bytes": sum((path / f).stat().st_size for f in changed), "artifact_bytes": self.emulator_bytes,
                "owner_seconds": time.perf_counter() - t0}

    def prune_aligned(self, out: Path) -> None:
        """Remove the run's earlier emulator versions (the checkpoint names the current one)."""
        for old in out.glob("emulator-r*"):
            if old.is_dir() and old != self.emulator_dir:
                shutil.rmtree(old, ignore_errors=True)

    def emulator_state(self) -> dict | None:
        """What a checkpoint records of the emulator: the current re-aligned version, when aligning."""
        return {"dir": self.emulator_dir.name, "id": self.manifest["id"]} if self.aligner else None

    def initial_adapter(self) -> dict[str, torch.Tensor]:
        """The adapter before any tuning, in full-model names (LoRA starts at its peft initialisation)."""
        return trainable_state(self.emulator, to_original(self.manifest))

    def score(self, model) -> float:
        limit = self.cfg.evaluation.examples
        return evaluate(model, self.tokenizer, self.task, "test", limit, self.data_dir,
                        self.cfg.data_owner.verbose)["primary"]

    def cached_score(self, label: str, model, model_id: str) -> float:
        return self.cache.evaluate(label, model, self.tokenizer, model_id, self.task, "test",
                                   self.cfg.evaluation.examples, self.data_dir, self.cfg.data_owner.verbose)["primary"]

    def zero_shot(self) -> dict:
        """The full model and the (untuned) emulator on the test split; both are deterministic, so cached."""
        load_trainable_state(self.emulator, self.initial_adapter(), to_local=to_local(self.manifest))
        out = {"zero_shot": self.cached_score("full model zero-shot", self.full, content_hash(self.model_dir)),
               "emulator_zero_shot": self.cached_score("emulator zero-shot", self.emulator,
                                                       f"emulator:{self.manifest['id']}")}
        if len(self.tiers) > 1:
            out["emulator_zero_shot_by_tier"] = {
                str(t.blocks): self.cached_score(f"tier {t.blocks} emulator zero-shot", self.tier_model(t),
                                                 f"emulator:{t.manifest['id']}") for t in self.tiers}
        return out

    def tier_model(self, tier: Tier, adapter: dict[str, torch.Tensor] | None = None):
        """A tier's emulator with ``adapter`` in place (the deepest is kept loaded; the others load per use)."""
        model = self.emulator if tier is self.tiers[-1] else prepare(
            load_emulator(tier.path, self.dtype, self.device)[0], adapter_local(tier.manifest),
            self.cfg.data_owner.tuning)
        if adapter is not None:
            load_trainable_state(model, adapter, to_local=to_local(tier.manifest))
        return model

    def evaluate(self, adapter: dict[str, torch.Tensor]) -> dict:
        """An adapter through the emulator (what a data owner sees; with tiers: through each tier's, the deepest
        reported as the OT emulator) and plugged into the full model."""
        out = {"emulator_finetuned": self.score(self.tier_model(self.tiers[-1], adapter))}
        if len(self.tiers) > 1:
            out["emulator_finetuned_by_tier"] = {str(t.blocks): self.score(self.tier_model(t, adapter))
                                                 for t in self.tiers[:-1]} | {str(self.tiers[-1].blocks):
                                                                              out["emulator_finetuned"]}
        plug_in(self.full, adapter, self.meta, base=self.base)
        out["plugin"] = self.score(self.full)
        out["gap"] = gap(out, get_task(self.task).higher_is_better)
        return out

    def tier_plans(self) -> list[int]:
        """Each tier's planned peak memory for a data owner on this owner's kind of device (bytes)."""
        from .architectures import num_blocks
        from .memory import client_plan

        config, train = load_config(self.model_dir), self.cfg.data_owner.train
        device = "cuda" if str(self.device).startswith("cuda") else "cpu"
        return [client_plan(config, t.spec.split(num_blocks(config))[0], self.cfg.data_owner.tuning,
                            train.batch_size, train.max_length, device).total for t in self.tiers]

    def save_adapter(self, path: Path, adapter: dict[str, torch.Tensor]) -> Path:
        return save_adapter(path, adapter, self.meta)

    def full_finetune(self, steps: int) -> float:
        """The FT baseline: the full model trained centrally on the union of the clients' data (no privacy).

        Deterministic given the model, data and settings, so cached like the zero-shot scores.
        """
        cfg = self.cfg.data_owner
        examples = task_examples(self.task, self.tokenizer, cfg.train.max_length, root=self.data_dir)

        def compute() -> dict:
            model = load_model(self.model_dir, self.dtype, self.device)
            model.requires_grad_(True)
            train(model, examples, cfg.train, lr=self.cfg.lr, steps=steps, seed=cfg.seed, desc="full FT baseline",
                  progress=cfg.verbose)
            return {"primary": self.score(model)}

        parts = {"baseline": "full fine-tuning", "model": content_hash(self.model_dir), "train": to_flat(cfg.train),
                 "examples": docs_hash(examples), "steps": steps, "lr": self.cfg.lr, "seed": cfg.seed,
                 "task": self.task, "test": docs_hash(docs_of(self.task, "test", self.cfg.evaluation.examples,
                                                              self.data_dir)),
                 "dtype": str(self.dtype)}
        return self.cache.cached("FT baseline", parts, compute)["primary"]
