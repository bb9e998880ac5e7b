"""Progress of long jobs: one tqdm bar with its ETA on a terminal, nothing in logs unless asked.

Every long job (distillation, Dynamic LayerReplace, evaluation, generation, training, generated owner text, the
emulator's tensor copy) draws one bar through :func:`bar`. It is shown when stderr is an interactive terminal or
when the caller asks (``--verbose``); in a CI log, a Ray worker or a ServerApp under ``flwr run`` (stderr is a pipe)
it stays silent, so no log fills with carriage-return updates and no worker draws a bar per scored window.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def shown(verbose: bool = False) -> bool:
    return verbose or sys.stderr.isatty()


def bar(iterable=None, *, desc: str, verbose: bool = False, **kwargs) -> tqdm:
    """A tqdm bar (``leave=False``: it clears when done) that draws only where :func:`shown`."""
    return tqdm(iterable, desc=desc, leave=False, disable=not shown(verbose), **kwargs)
