"""Flower strategies for federated offsite-tuning."""

from .offsite_fedavg import OffsiteFedAvg

__all__ = ["OffsiteFedAvg"]
