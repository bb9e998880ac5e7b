"""The model owner's side of offsite-tuning, whatever the run (single-site or federated): it holds the full model
(never sent), scores adapters plugged into it and through its emulators (``evaluator``: the five numbers), and
trains the FT baseline (``baseline``). The federated owner (:mod:`fedot.run.model_owner`) and the single-site run
(:mod:`fedot.run.single_site`) are made of these parts."""

from .baseline import train_full
from .evaluator import Evaluator

__all__ = ["Evaluator", "train_full"]
