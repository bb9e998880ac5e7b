"""Scoring models on tasks exactly as lm-eval 0.4 defines each metric."""

from .scoring import evaluate

__all__ = ["evaluate"]
