"""The model owner in a federated run: holds the full model (never sent), builds the emulators, evaluates adapters.

It evaluates what the paper's five numbers need on the task's test split (``eval-split = "validation"`` when a
study chooses a learning rate; :class:`fedot.model_owner.Evaluator`):
the full model and the emulator zero-shot (before any round), and after a round the aggregated adapter through the
emulator (OT emulator) and plugged into the full model (OT plug-in). The FT baseline fine-tunes the full model
centrally on the union of the data owners' data (:func:`fedot.model_owner.train_full`): a reference that needs the
data in one place, never part of the private protocol. With emulator tiers (:mod:`fedot.emulator.tiers`) it builds
one emulator per tier, keeps the deepest loaded and evaluates the adapter through every tier. With emulator
alignment it keeps the run's re-aligned emulator versions (``<run>/emulator-r<round>``, per-block layout).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..data_owner.tuning import load_trainable_state, load_tunable, trainable_state
from ..emulator import read_manifest, to_local, to_original
from ..emulator.shards import read_tensors, write_sharded
from ..emulator.tiers import Tier, build_tiers, tier_plans
from ..evaluation import EvalCache, docs_of
from ..evaluation.cache import docs_hash
from ..evaluation.five import gap
from ..evaluation.outcomes import first_examples
from ..model_owner import Evaluator, train_full
from ..models import content_hash, default_device, load_model, load_tokenizer, unwrap
from ..plugin import adapter_metadata, original_adapter, save_adapter
from ..settings import to_flat
from ..tasks import get_task
from ..tasks.tokenize import task_examples
from .config import FederatedConfig


class ModelOwner:
    def __init__(self, cfg: FederatedConfig, device: str | None = None, report=print):
        self.cfg = cfg
        self.task = cfg.data_owner.task
        self.data_dir = cfg.data_owner.data_dir or None
        get_task(self.task).docs(cfg.evaluation.split, self.data_dir)  # missing data fails before the model loads
        cfg.emulator.data_dir = self.data_dir
        self.model_dir = cfg.emulator.preflight()
        self.device = device or cfg.owner.device or default_device()
        self.dtype = cfg.data_owner.precision.torch_dtype(self.device)
        self.tiers = build_tiers(cfg.emulator, cfg.tiers.levels, cfg.refuse_lossless)
        self.emulator_dir, self.manifest = self.tiers[-1].path, self.tiers[-1].manifest  # the deepest tier
        self.tokenizer = load_tokenizer(self.emulator_dir)
        self.emulator, _ = load_tunable(self.emulator_dir, cfg.data_owner.tuning, self.dtype, self.device)
        self.emulator_bytes = self.tiers[-1].bytes
        self.meta = adapter_metadata(cfg.data_owner.tuning, self.manifest, cfg.emulator.model, self.task)
        full = load_model(self.model_dir, self.dtype, self.device,
                          device_map=None if cfg.owner.device_map == "none" else cfg.owner.device_map,
                          max_memory_gb=cfg.owner.max_memory_gb)
        self.evaluator = Evaluator(full, content_hash(self.model_dir),
                                   self.tokenizer, self.meta, self.task, cfg.evaluation.examples, self.data_dir,
                                   EvalCache(enabled=cfg.evaluation.cache, report=report), cfg.data_owner.verbose,
                                   original_adapter(self.model_dir, self.manifest["adapter_blocks"]),
                                   cfg.evaluation.decoding.override, cfg.evaluation.split)
        self.aligner = cfg.alignment.build(self.tokenizer, self.data_dir) if cfg.alignment.enabled else None
        if self.aligner:
            self.aligner.check(self.manifest)

    @property
    def full(self):
        return self.evaluator.full

    # --- the emulator's versions, when the owner re-aligns it every round ---

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
        stored = read_tensors(path)
        with torch.no_grad():
            for name, p in unwrap(self.emulator).named_parameters():
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
        full = self.evaluator.plug(adapter)
        load_trainable_state(self.emulator, adapter, to_local=to_local(self.manifest))
        record = self.aligner.align(self.emulator, full, self.manifest, server_round, self.cfg.data_owner.seed)
        aligned = {"round": server_round, "from": previous.manifest["id"], **asdict(self.cfg.alignment)}
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

    # --- evaluation ---

    def initial_adapter(self) -> dict[str, torch.Tensor]:
        """The adapter before any tuning, in full-model names (LoRA starts at its peft initialisation)."""
        return trainable_state(self.emulator, to_original(self.manifest))

    def tier_model(self, tier: Tier):
        """A tier's tunable emulator (the deepest is kept loaded; the others load per use)."""
        if tier is self.tiers[-1]:
            return self.emulator
        return load_tunable(tier.path, self.cfg.data_owner.tuning, self.dtype, self.device)[0]

    def zero_shot(self) -> dict:
        """The full model and the (untuned) emulator on the test split; both are deterministic, so cached.
        Their per-example outcomes come under ``outcomes`` (the round loop stores them beside the log)."""
        load_trainable_state(self.emulator, self.initial_adapter(), to_local=to_local(self.manifest))
        scored = {"zero_shot": self.evaluator.zero_shot(),
                  "emulator_zero_shot": self.evaluator.emulator_zero_shot(self.emulator, self.manifest)}
        out = {k: v["primary"] for k, v in scored.items()}
        out["outcomes"] = {k: v["outcomes"] for k, v in scored.items()}
        self._with_curve(out)
        if len(self.tiers) > 1:
            out["emulator_zero_shot_by_tier"] = {
                str(t.blocks): self.evaluator.emulator_zero_shot(self.tier_model(t), t.manifest,
                                                                 f"tier {t.blocks} emulator zero-shot")["primary"]
                for t in self.tiers}
        return out

    def evaluate(self, adapter: dict[str, torch.Tensor], curve_only: bool = False) -> dict:
        """An adapter through the emulator (what a data owner sees; with tiers: through each tier's, the deepest
        reported as the OT emulator) and plugged into the full model. ``curve_only``: on the split's first
        eval-curve-limit examples only (a point of the per-round curve, marked ``curve_examples``; never one of the
        five numbers); otherwise, with a curve, its point comes from the outcomes (``curve``)."""
        limit = self.cfg.evaluation.curve_limit if curve_only else None
        by_tier = {str(t.blocks): self.evaluator.through(self.tier_model(t), t.manifest, adapter, limit)
                   for t in (self.tiers if len(self.tiers) > 1 else self.tiers[-1:])}
        emulator, plugin = by_tier[str(self.tiers[-1].blocks)], self.evaluator.plugin(adapter, limit)
        out = {"emulator_finetuned": emulator["primary"]}
        if len(self.tiers) > 1:
            out["emulator_finetuned_by_tier"] = {k: v["primary"] for k, v in by_tier.items()}
        out["plugin"] = plugin["primary"]
        out["gap"] = gap(out, get_task(self.task).higher_is_better)
        out["outcomes"] = {"emulator_finetuned": emulator["outcomes"], "plugin": plugin["outcomes"]}
        if curve_only:
            out["curve_examples"] = plugin["examples"]
        return self._with_curve(out)

    def _with_curve(self, out: dict) -> dict:
        """A whole-split evaluation's point on the per-round curve: each number over the curve's first examples,
        from its per-example outcomes (with eval-curve-limit; ``out`` as it is otherwise)."""
        n = self.cfg.evaluation.curve_limit
        if n and "curve_examples" not in out:
            out["curve"] = first_examples(out["outcomes"], n, get_task(self.task).primary)
        return out

    def tier_plans(self) -> list[int]:
        """Each tier's planned peak memory for a data owner on this owner's kind of device (bytes)."""
        return tier_plans(self.tiers, self.cfg.data_owner.tuning, self.cfg.data_owner.train, self.device, self.dtype)

    def save_adapter(self, path: Path, adapter: dict[str, torch.Tensor]) -> Path:
        return save_adapter(path, adapter, self.meta)

    def full_finetune(self, steps: int) -> dict:
        """The FT baseline: the full model trained centrally on the union of the clients' data (no privacy); its
        score (``primary``) and per-example ``outcomes``.

        Deterministic given the model, data and settings, so cached like the zero-shot scores.
        """
        cfg = self.cfg.data_owner
        examples = task_examples(self.task, self.tokenizer, cfg.train.max_length, root=self.data_dir)

        def compute() -> dict:
            model, _ = train_full(self.model_dir, examples, cfg.train, lr=self.cfg.lr, steps=steps, seed=cfg.seed,
                                  dtype=self.dtype, device=self.device, desc="full FT baseline", progress=cfg.verbose)
            scored = self.evaluator.score(model)
            return {"primary": scored["primary"], "outcomes": scored["outcomes"]}

        train = {k: v for k, v in to_flat(cfg.train).items() if k not in ("steps", "epochs")}  # steps are given
        parts = {"baseline": "full fine-tuning", "model": content_hash(self.model_dir), "train": train,
                 "examples": docs_hash(examples), "steps": steps, "lr": self.cfg.lr, "seed": cfg.seed,
                 "task": self.task, "test": docs_hash(docs_of(self.task, self.cfg.evaluation.split,
                                                              self.cfg.evaluation.examples,
                                                              self.data_dir)),
                 "dtype": str(self.dtype)}
        return self.evaluator.cache.cached("FT baseline", parts, compute)
