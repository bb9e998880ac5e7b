"""The FT baseline: the full model fine-tuned centrally on all the training data (a reference, never private).

Offsite-tuning's fifth number. The same training loop as a data owner's (:func:`fedot.data_owner.train.train`), on
every parameter of the full model.
"""

from __future__ import annotations

from ..data_owner.train import TrainConfig, TrainResult, train
from ..models import load_model


def train_full(model_dir, examples, cfg: TrainConfig, *, lr: float, seed: int, dtype, device, steps: int | None = None,
               eval_every: int = 0, validate=None, desc: str = "full FT", progress: bool = True) -> tuple:
    """The full model trained on ``examples`` (``steps``: None for the config's budget); (model, TrainResult)."""
    model = load_model(model_dir, dtype, device)
    model.requires_grad_(True)
    record: TrainResult = train(model, examples, cfg, lr=lr, steps=steps, seed=seed, eval_every=eval_every,
                                validate=validate, desc=desc, progress=progress)
    return model, record
