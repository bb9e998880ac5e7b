"""Scoring models on tasks exactly as lm-eval 0.4 defines each metric: batched perplexity (``perplexity``), lm-eval
multiple choice (``choice``), the dispatch and intervals (``scoring``), deterministic results reused (``cache``), and
when a federated run evaluates (``config``)."""

from .cache import EvalCache
from .scoring import context_length, docs_of, evaluate

__all__ = ["EvalCache", "context_length", "docs_of", "evaluate"]
