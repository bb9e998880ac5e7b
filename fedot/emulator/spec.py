"""What the model owner builds: which model, which split, which compression method, and the build itself.

The spec's keys are the same wherever it is mounted (CLI, run config): ``model``, ``bottom``, ``top``,
``emulator-blocks``, ``emulator-method``, ``emulator-src-ratio`` and each registered method's options
``emulator-<method>-<option>``. Building goes: resolve the model -> the method prepares (e.g. ScaleOT's importance)
-> split -> write the kept tensors (compressed by the method's transform, then SRC on attention) -> the method
finishes (e.g. distillation). Artifacts are cached by a key over the model's files and every build parameter, and a
cached artifact is verified before it is reused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..architectures import architecture, num_blocks
from ..models import DEFAULT_MODEL, cache_dir, load_config, resolve
from ..settings import registry_group, setting, validate
from . import rank_compression
from .artifact import FORMAT, MANIFEST, ArtifactError, read_manifest
from .methods import METHODS, Method
from .split import Split, SplitError
from .writer import refuse_foreign, write_artifact


@dataclass
class EmulatorSpec:
    model: str = setting(DEFAULT_MODEL, "the full model: 'smollm2-135m' (embedded), a model directory, a .gguf file "
                         "or a Hugging Face hub id", key="model")
    bottom: int = setting(2, "adapter blocks at the bottom (sandwich methods)", ge=0, key="bottom")
    top: int = setting(2, "adapter blocks at the top (sandwich methods)", ge=0, key="top")
    emulator_blocks: int = setting(-1, "middle blocks the emulator keeps (uniform layer-drop, Algorithm 1); "
                                   "-1: all of them, a lossless emulator", ge=-1, key="emulator-blocks")
    method: str = setting("uniform", "emulator compression method: " + METHODS.help_text(), choices=METHODS.names,
                          key="emulator-method")
    src_ratio: float = setting(-1.0, "SRC beta: fraction of attention rank removed from kept emulator blocks; "
                               "-1: the method's default (scaleot 0.8, others 0)", ge=-1, lt=1,
                               key="emulator-src-ratio")
    options: dict = registry_group(METHODS.settings_groups, prefix="emulator")
    data_dir: str | None = field(default=None, repr=False)  # the owner's data (distillation corpora); not a setting

    def check(self) -> None:
        if -1 < self.src_ratio < 0:
            raise SplitError(f"emulator-src-ratio must be -1 (the method's default) or in [0, 1); got {self.src_ratio}")

    @property
    def beta(self) -> float:
        """The SRC ratio in effect."""
        return METHODS[self.method].default_src_ratio if self.src_ratio < 0 else self.src_ratio

    def bound(self) -> Method:
        """The chosen method bound to its settings and this spec."""
        return METHODS[self.method](self, self.options.get(self.method))

    def split(self, n: int) -> tuple[Split, list[int]]:
        return self.bound().split(n)

    def preflight(self) -> Path:
        """Validate everything that can be from the model's config alone; returns the model directory."""
        validate(self, "emulator")
        model_dir = resolve(self.model)
        self.split(num_blocks(load_config(model_dir)))
        return model_dir

    def plan_text(self) -> str:
        """What :meth:`build` would read and write, from the model's config alone (:mod:`fedot.emulator.layout`)."""
        from ..memory import config_for_plan
        from .layout import artifact_layout, layout_text, shards_read

        validate(self, "emulator")
        config = config_for_plan(self.model)
        split = self.split(num_blocks(config))[0]
        local = Path(self.model).expanduser()
        shards = shards_read(local, config, split) if local.is_dir() else None
        return f"{self.model}: {self.method}\n" + layout_text(artifact_layout(config, split), shards, split)

    def lossless(self, config) -> bool:
        """Whether the artifact would be the full model (every middle block kept exactly), as its manifest will say;
        from the model's config alone, before anything is built."""
        method = self.bound()
        split, harmonized = method.split(num_blocks(config))
        return split.lossless and not harmonized and self.transform(method, architecture(config)) is None

    def transform(self, method: Method, arch):
        """The method's per-tensor compression, then SRC on attention weights; norms and biases stay exact."""
        compress, beta = method.transform(arch), self.beta
        if compress is None and beta == 0:
            return None

        def transform(name, tensor):
            if tensor.dim() != 2:
                return tensor
            if compress is not None:
                tensor = compress(name, tensor)
            if beta and arch.is_attention_weight(name):
                tensor = rank_compression.truncate_rank(tensor, beta)
            return tensor

        return transform

    def build(self, out: str | Path | None = None, monitor=None) -> tuple[Path, dict]:
        """Build the artifact in ``out`` (default: the cache, reused when present and intact).

        Returns its directory and verified manifest. ``monitor``: see :meth:`Method.finish` (a curve's numbers).
        """
        validate(self, "emulator")
        method = self.bound()
        model_dir = resolve(self.model)
        config = load_config(model_dir)
        params = {**method.prepare(model_dir, config, cache_dir()), **method.params(), "src_ratio": self.beta}
        split, harmonized = method.split(num_blocks(config))
        if method.sandwich:
            params.update(bottom=self.bottom, top=self.top, emulator_blocks=len(split.emulator))
        if out is None:
            out = cache_dir() / "emulators" / self.cache_key(model_dir, params)
            if (out / MANIFEST).exists():
                try:
                    return out, read_manifest(out, verify=True)
                except ArtifactError:
                    pass  # a corrupt cached artifact is rebuilt, never trusted
        out = Path(out)
        refuse_foreign(out)
        finishes = type(method).finish is not Method.finish
        staged = out.with_name(out.name + ".stage") if finishes else out
        if finishes:
            shutil.rmtree(staged, ignore_errors=True)
        manifest = {"source_model": self.model, "method": self.method, "params": params}
        write_artifact(model_dir, split, staged, manifest, self.transform(method, architecture(config)),
                       lambda folder: method.write_extra(folder, config, split, harmonized))
        path = method.finish(staged, out, model_dir, monitor) if finishes else out
        return path, read_manifest(path, verify=True)

    def cache_key(self, model_dir: Path, params: dict) -> str:
        weights = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(model_dir.glob("*.safetensors"))]
        blob = json.dumps([FORMAT, str(model_dir), weights, self.method, params], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_emulator(model: str, out: str | Path | None = None, **settings) -> Path:
    """Build (or reuse) the emulator of ``model``; ``settings`` are flat keys with ``_`` for ``-``.

    For example ``build_emulator("smollm2-135m", out, emulator_blocks=18, emulator_method="prune",
    emulator_prune_sparsity=0.3)``.
    """
    from ..settings import from_flat

    spec = from_flat(EmulatorSpec, {"model": model, **{k.replace("_", "-"): v for k, v in settings.items()}},
                     where="emulator")
    return spec.build(out)[0]
