"""The model owner's scores on a task's test split (or its validation split, to choose settings), for the paper's
five numbers.

The full model and an untuned emulator are deterministic, so their scores are cached
(:class:`fedot.evaluation.EvalCache`, keyed by the model's content or the artifact's id); an adapter is scored plugged
into the full model (OT plug-in: always merged into the *original* adapter weights, kept aside once, so scoring
several adapters in turn never compounds them) and loaded into an emulator (OT emulator: what a data owner holds).
A plug-in score is cached too, keyed by the full model's content and the adapter's (:func:`fedot.weights.state_hash`),
so the same adapter is never scored twice. A lossless emulator (every middle block kept, none compressed) *is* the full
model: its zero-shot is the full model's and an adapter through it is the plug-in, so both are taken from those
scores rather than computed again: two of a lossless run's five evaluations (1,227 s of the 2,635 s lossless point on
WikiText-2's 62 articles, docs/results/frontier/wikitext2_62_mix/lossless/results.json).
"""

from __future__ import annotations

import torch

from ..data_owner.tuning import load_trainable_state
from ..emulator import to_local
from ..emulator.artifact import lossless
from ..evaluation import EvalCache, evaluate
from ..plugin import adapter_parameters, plug_in
from ..weights import state_hash


def is_full_model(manifest: dict) -> bool:
    """A lossless emulator never re-aligned since it was built computes exactly what the full model does."""
    return lossless(manifest) and "aligned" not in manifest


class Evaluator:
    """``base``: the original adapter weights to merge into (float32 from the checkpoint,
    :func:`fedot.plugin.original_adapter`); by default a copy of the model's own."""

    def __init__(self, full, model_id: str, tokenizer, meta: dict, task: str, limit: int | None = None,
                 data_dir=None, cache: EvalCache | None = None, progress: bool = False,
                 base: dict[str, torch.Tensor] | None = None, max_new_tokens: int | None = None, split: str = "test"):
        self.full, self.model_id, self.tokenizer, self.meta, self.task = full, model_id, tokenizer, meta, task
        self.split = split
        self.limit, self.data_dir, self.progress, self.max_new_tokens = limit, data_dir, progress, max_new_tokens
        self.cache = cache or EvalCache(enabled=False)
        params = adapter_parameters(full, meta["adapter_blocks"])
        self.base = base if base is not None else {k: v.detach().clone() for k, v in params.items()}
        if set(self.base) != set(params):
            raise ValueError("the original adapter weights do not name the model's adapter parameters")

    def score(self, model, limit: int | None = None) -> dict:
        """``limit``: the split's first examples scored (None: this evaluator's own limit)."""
        return evaluate(model, self.tokenizer, self.task, self.split, limit or self.limit, self.data_dir,
                        self.progress, self.max_new_tokens)

    def cached(self, label: str, model, model_id: str, limit: int | None = None) -> dict:
        return self.cache.evaluate(label, model, self.tokenizer, model_id, self.task, self.split,
                                   limit or self.limit, self.data_dir, self.progress, self.max_new_tokens)

    def zero_shot(self) -> dict:
        """The full model as it is (its adapter blocks restored first)."""
        self.plug(None)
        return self.cached("full model zero-shot", self.full, self.model_id)

    def emulator_zero_shot(self, emulator, manifest: dict, label: str = "emulator zero-shot") -> dict:
        """An emulator with its original adapter (as built); a lossless one is the full model."""
        if is_full_model(manifest):
            return self.zero_shot()
        return self.cached(label, emulator, f"emulator:{manifest['id']}")

    def plug(self, adapter: dict[str, torch.Tensor] | None):
        """The full model with ``adapter`` plugged in (None: the original adapter back in place)."""
        if adapter is None:
            with torch.no_grad():
                for name, p in adapter_parameters(self.full, self.meta["adapter_blocks"]).items():
                    p.copy_(self.base[name].to(p.device, p.dtype))
            return self.full
        return plug_in(self.full, adapter, self.meta, base=self.base)

    def plugin(self, adapter: dict[str, torch.Tensor], limit: int | None = None) -> dict:
        model_id = f"{self.model_id}+adapter:{state_hash(adapter, self.meta)}"
        return self.cached("OT plug-in", self.plug(adapter), model_id, limit)

    def through(self, emulator, manifest: dict, adapter: dict[str, torch.Tensor], limit: int | None = None) -> dict:
        """``adapter`` loaded into ``emulator`` (a tunable emulator) and scored: the OT emulator (through a lossless
        emulator, the plug-in)."""
        if is_full_model(manifest):
            return self.plugin(adapter, limit)
        load_trainable_state(emulator, adapter, to_local=to_local(manifest))
        return self.score(emulator, limit)
