"""Fixtures shared by the tests: tiny models of every family, a tokenizer, an isolated fedot cache."""

from __future__ import annotations

import os
from pathlib import Path

# Tests never use the network: without this, hub look-ups retry for ~25 s before failing.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

from support.models import FAMILIES, make_model_dir, train_tokenizer  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, tokenizer_dir) -> dict[str, Path]:
    """One saved 6-block model per family."""
    root = tmp_path_factory.mktemp("models")
    return {f: make_model_dir(root / f, f, 6, tokenizer_dir) for f in FAMILIES}


@pytest.fixture(autouse=True)
def _isolated_cache(request, tmp_path, monkeypatch):
    """Fast tests get a private fedot cache; slow tests share the real one (converting SmolLM2 once is enough)."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("FEDOT_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("FEDOT_NODE_CACHE", str(tmp_path / "nodes"))  # each data owner's own store
