"""Emulator compression methods, registered by name the way peft registers its tuners.

Each method is one module (or package) in this folder: a settings dataclass declaring its options once, and a
:class:`Method` subclass saying how the method splits the model, compresses or trains the kept emulator blocks, and
writes and loads anything beyond the kept blocks (ScaleOT's harmonizers), registered with
``@METHODS.register(name, help=..., settings=...)`` (:class:`fedot.registry.Registry`). The registry is all the
rest of fedot reads: the CLI's flags and the run config's keys (``emulator-<method>-<option>``), validation,
dispatch, the writer (:meth:`Method.write_extra`), the loader (:meth:`Method.on_load`) and the manifest. Every module
here is imported below, so adding a method is adding its module (plus its test); nothing outside this folder names
one.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import asdict
from pathlib import Path
from typing import ClassVar

from ...registry import Registry
from ..split import Split, sandwich


class Method:
    """A compression method bound to its settings and to the emulator spec it serves.

    The default is the paper's sandwich (bottom + top adapter blocks, uniform layer-drop of the middle) with the
    kept blocks copied unchanged; subclasses override what differs.
    """

    sandwich: ClassVar[bool] = True  # uses the spec's bottom / top / emulator-blocks
    default_src_ratio: ClassVar[float] = 0.0  # SRC beta when emulator-src-ratio is -1

    def __init__(self, spec, settings):
        self.spec = spec
        self.settings = settings

    def split(self, num_blocks: int) -> tuple[Split, list[int]]:
        """The split of a model of ``num_blocks`` blocks, and the blocks stand-in modules replace (none by default).

        Must need no weights: pre-flight calls it to fail before anything is loaded.
        """
        return sandwich(num_blocks, self.spec.bottom, self.spec.top, self.spec.emulator_blocks), []

    def prepare(self, model_dir: Path, config, cache: Path) -> dict:
        """Expensive preparation before the split is final (e.g. ScaleOT's importance); returns manifest params."""
        return {}

    def transform(self, arch):
        """A per-tensor compression ``(name, tensor) -> tensor`` of kept emulator weight matrices, or None."""
        return None

    def write_extra(self, folder: Path, config, split: Split, replaced: list[int]) -> dict:
        """Write what the artifact holds beyond the kept blocks into ``folder`` (e.g. modules standing in for the
        ``replaced`` blocks); returns what the manifest records of them. Anything written makes the emulator lossy."""
        return {}

    @classmethod
    def on_load(cls, model, path: Path, manifest: dict) -> None:
        """Complete a loaded artifact's model with what :meth:`write_extra` wrote (in place); by default the
        repeats of kept blocks a sharing method recorded (``shared_blocks``)."""
        if manifest.get("shared_blocks"):
            from ..artifact import blocks
            from ..stand_ins import insert, shared_blocks

            insert(model, shared_blocks(model, manifest, blocks(manifest)), blocks(manifest))

    def finish(self, staged: Path, out: Path, model_dir: Path, monitor=None) -> Path:
        """Work after the layer-dropped artifact is written (e.g. distillation).

        A method that overrides this gets its artifact written to ``staged`` and must write the final one to
        ``out`` (an interrupted run then never leaves an unfinished artifact where a finished one belongs).
        ``monitor(model) -> dict``: numbers a caller records along the way (a curve), never used to decide.
        """
        return out

    def params(self) -> dict:
        """The method's settings as recorded in the manifest."""
        return asdict(self.settings) if self.settings is not None else {}


METHODS: Registry[type[Method]] = Registry("emulator method")

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "Method"]
