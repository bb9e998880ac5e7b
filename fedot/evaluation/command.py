"""``fedot eval``: score any model on any task through the same cached, batched path as the runs.

The model may be the embedded default, a hub id, a directory (such as one written by ``fedot plugin``), a ``.gguf``
file, or an emulator artifact; ``adapter`` plugs an adapter file into a full model on the fly (nothing is written).
The result names what was scored, every metric, and for accuracies the 95% Wilson interval.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..models import DEFAULT_MODEL
from ..precision import Precision
from ..settings import group, setting
from ..tasks import SPLITS, task_names
from .generation import Decoding


@dataclass
class EvalCommand:
    model: str = setting(DEFAULT_MODEL, "what to score: 'smollm2-135m', a hub id, a model directory (e.g. written "
                         "by `fedot plugin`), a .gguf file, or an emulator artifact", key="model")
    adapter: str = setting("", "an adapter.safetensors to plug into the (full) model first, on the fly")
    task: str = setting("pydocs", "the task", choices=task_names)
    split: str = setting("test", "the split scored", choices=SPLITS)
    limit: int = setting(0, "examples scored (documents for corpora); 0: the whole split", ge=0)
    device: str = setting("", "torch device (cpu, cuda, cuda:1); empty: cuda when available")
    eval_cache: bool = setting(True, "reuse (and store) the result in $FEDOT_CACHE/evaluations")
    verbose: bool = setting(False, "a progress bar per scored window")
    precision: Precision = group(Precision)
    decoding: Decoding = group(Decoding)


def load_scored(cmd: EvalCommand, dtype, device):
    """(model, tokenizer, identity) of what ``cmd`` scores."""
    from ..emulator.artifact import MANIFEST
    from ..emulator.loader import load_emulator
    from ..models import content_hash, load_model, load_tokenizer, resolve
    from ..plugin import load_adapter, plug_in
    from ..weights import sha256_file

    path = Path(cmd.model).expanduser()
    if (path / MANIFEST).exists():
        if cmd.adapter:
            raise ValueError(f"{path} is an emulator artifact; an adapter plugs into the full model it came from: "
                             "pass that model instead")
        model, manifest = load_emulator(path, dtype, device)
        return model, load_tokenizer(path), f"emulator:{manifest['id']}"
    update = meta = None
    if cmd.adapter:
        update, meta = load_adapter(cmd.adapter)  # read and checked before the model is loaded
    model_dir = resolve(cmd.model)
    model = load_model(model_dir, dtype, device)
    identity = content_hash(model_dir)
    if update is not None:
        plug_in(model, update, meta)
        identity += f"+adapter:{sha256_file(cmd.adapter)}"
    return model, load_tokenizer(model_dir), identity


def run_eval(cmd: EvalCommand) -> dict:
    from ..models import default_device
    from .cache import EvalCache

    start = time.perf_counter()
    device = cmd.device or default_device()
    model, tokenizer, identity = load_scored(cmd, cmd.precision.torch_dtype(device), device)
    label = f"{cmd.model}{' + ' + cmd.adapter if cmd.adapter else ''} on {cmd.task}/{cmd.split}"
    metrics = EvalCache(enabled=cmd.eval_cache).evaluate(label, model, tokenizer, identity, cmd.task, cmd.split,
                                                         cmd.limit or None, progress=cmd.verbose,
                                                         max_new_tokens=cmd.decoding.override)
    return {"model": cmd.model, "adapter": cmd.adapter or None, "identity": identity, "task": cmd.task,
            "split": cmd.split, "examples": metrics["examples"], "metrics": metrics,
            "seconds": time.perf_counter() - start}


def result_text(result: dict) -> str:
    lines = [f"{result['model']}{' + ' + result['adapter'] if result['adapter'] else ''}: {result['task']}/"
             f"{result['split']}, {result['examples']} examples"]
    metrics = result["metrics"]
    for name, value in metrics.items():
        if name in ("primary", "examples", "tokens", "outcomes") or name.endswith("_ci95"):
            continue
        interval = metrics.get(f"{name}_ci95")
        shown = f"{100 * value:.1f}%" if interval else f"{value:.4f}"
        if interval:
            shown += f"  (95% interval {100 * interval[0]:.1f}-{100 * interval[1]:.1f}%)"
        lines.append(f"  {name:<16}{shown}")
    return "\n".join(lines)
