"""Deterministic evaluations computed once and reused across runs and sims.

The full model's zero-shot score, the untuned emulator's and the FT baseline do not change between runs of the same
model, task and settings, yet each used to be recomputed by every run (six minutes of the old quickstart). An entry
is keyed by everything its result depends on: the model's content (``fedot.models.content_hash`` of the weights and
config, or an emulator's artifact id), the task, split and the exact documents scored (hashed), the evaluation
settings (context length, dtype), the lm-eval version and :data:`EVAL_VERSION`, which is bumped whenever fedot's
scoring code changes what it computes. Each entry stores a checksum of its own content: an entry that fails it (a
truncated or edited file) is recomputed and rewritten, never trusted. Reuses are reported as such.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from ..files import write_json

EVAL_VERSION = 3  # 2: batched perplexity (same numbers), docs hashed into the key; 3: per-example outcomes stored


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def docs_hash(docs: list[dict]) -> str:
    return _digest(docs)


class EvalCache:
    def __init__(self, root: str | Path | None = None, enabled: bool = True, report: Callable[[str], None] = print):
        from ..models import cache_dir

        self.root = Path(root) if root is not None else cache_dir() / "evaluations"
        self.enabled = enabled
        self.report = report

    def key(self, parts: dict) -> str:
        import lm_eval

        return _digest({**parts, "fedot_eval_version": EVAL_VERSION, "lm_eval": lm_eval.__version__})

    def get(self, key: str) -> dict | None:
        path = self.root / f"{key}.json"
        if not self.enabled or not path.exists():
            return None
        try:
            entry = json.loads(path.read_text())
            if entry["key"] == key and entry["checksum"] == _digest(entry["result"]):
                return entry["result"]
        except (ValueError, KeyError, TypeError):
            pass
        self.report(f"evaluation cache entry {path.name} is corrupt; recomputing it")
        return None

    def put(self, key: str, parts: dict, result: dict) -> None:
        if self.enabled:
            write_json(self.root / f"{key}.json", {"key": key, "parts": parts, "result": result,
                                                   "checksum": _digest(result)})

    def evaluate(self, label: str, model, tokenizer, model_id: str, task: str, split: str = "test",
                 limit: int | None = None, root=None, progress: bool = False,
                 max_new_tokens: int | None = None) -> dict:
        """``fedot.evaluation.evaluate`` of a model identified by ``model_id`` (content hash or artifact id)."""
        import torch

        from .scoring import context_length, docs_of, evaluate

        docs = docs_of(task, split, limit, root)
        dtype = next(model.parameters()).dtype
        parts = {"model": model_id, "task": task, "split": split, "docs": docs_hash(docs), "examples": len(docs),
                 "context": context_length(model, tokenizer), "dtype": str(dtype),
                 "device": torch.device(next(model.parameters()).device).type}
        if max_new_tokens:
            parts["max_new_tokens"] = max_new_tokens
        return self.cached(label, parts, lambda: evaluate(model, tokenizer, task, split, limit, root, progress,
                                                          max_new_tokens))

    def cached(self, label: str, parts: dict, compute: Callable[[], dict]) -> dict:
        """``compute()``'s result for ``parts``, from the cache when an intact entry exists."""
        key = self.key(parts)
        hit = self.get(key)
        if hit is not None:
            self.report(f"reused from the evaluation cache: {label} ({key[:12]})")
            return hit
        result = compute()
        self.put(key, parts, result)
        return result
