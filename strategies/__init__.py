"""Flower strategies for federated offsite-tuning."""

from .offsite import OffsiteStrategy, RoundOutcome

__all__ = ["OffsiteStrategy", "RoundOutcome"]
