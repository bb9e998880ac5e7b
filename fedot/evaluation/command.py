"""``fedot eval``: score any model on any task through the same cached, batched path as the runs.

The model may be the embedded default, a hub id, a directory (such as one written by ``fedot plugin``), a ``.gguf``
file, or an emulator artifact; ``adapter`` plugs an adapter file into a full model on the fly (nothing is written).
The result names what was scored, every metric, and for accuracies the 95% Wilson interval. ``paired-with`` names
an earlier ``fedot eval --json`` result on the same task, split and examples: the two models are then compared with
the paired test of :mod:`fedot.evaluation.paired` (exact McNemar for choices, paired bootstrap over documents for
corpora), which is how two emulators or two adapters are told apart on one evaluation set, not by two intervals.
"""

from __future__ import annotations

import json
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
    paired_with: str = setting("", "an earlier `fedot eval --json` result of another model on the same task, split "
                               "and limit: compare the two with a paired test (McNemar / paired bootstrap)")
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


def read_reference(cmd: EvalCommand) -> dict | None:
    """The ``paired-with`` result, checked to be comparable before anything is scored."""
    if not cmd.paired_with:
        return None
    path = Path(cmd.paired_with).expanduser()
    try:
        ref = json.loads(path.read_text())
        ref["metrics"]["outcomes"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"paired-with {path}: not a `fedot eval --json` result with per-example outcomes "
                         f"({type(e).__name__}); write one with `fedot eval ... --json {path}`") from e
    wanted = {"task": cmd.task, "split": cmd.split}
    if any(ref.get(k) != v for k, v in wanted.items()):
        raise ValueError(f"paired-with {path} scored {ref.get('task')}/{ref.get('split')}, this scores "
                         f"{cmd.task}/{cmd.split}: a paired test needs the same examples")
    from .scoring import docs_of

    examples = len(docs_of(cmd.task, cmd.split, cmd.limit or None))  # reading the split is cheap; scoring is not
    if ref.get("examples") != examples:
        raise ValueError(f"paired-with {path} scored {ref.get('examples')} examples, this would score {examples}: "
                         "give the same --limit (a paired test needs the same examples)")
    return ref


def paired_comparison(result: dict, ref: dict) -> dict:
    """This result against the reference on the task's primary metric (the same examples, checked)."""
    from ..tasks import get_task
    from .paired import compare

    task = get_task(result["task"])
    return compare(result["metrics"]["outcomes"], ref["metrics"]["outcomes"], task.primary, task.higher_is_better,
                   (scored(result), scored(ref)))


def scored(result: dict) -> str:
    """What a result scored: the model, and the adapter plugged into it if any."""
    return f"{result['model']}{' + ' + result['adapter'] if result.get('adapter') else ''}"


def run_eval(cmd: EvalCommand) -> dict:
    from ..models import default_device
    from .cache import EvalCache

    ref = read_reference(cmd)
    start = time.perf_counter()
    device = cmd.device or default_device()
    model, tokenizer, identity = load_scored(cmd, cmd.precision.torch_dtype(device), device)
    label = f"{scored({'model': cmd.model, 'adapter': cmd.adapter})} on {cmd.task}/{cmd.split}"
    metrics = EvalCache(enabled=cmd.eval_cache).evaluate(label, model, tokenizer, identity, cmd.task, cmd.split,
                                                         cmd.limit or None, progress=cmd.verbose,
                                                         max_new_tokens=cmd.decoding.override)
    result = {"model": cmd.model, "adapter": cmd.adapter or None, "identity": identity, "task": cmd.task,
              "split": cmd.split, "examples": metrics["examples"], "metrics": metrics,
              "seconds": time.perf_counter() - start}
    if ref is not None:
        result["paired"] = paired_comparison(result, ref)
    return result


def result_text(result: dict) -> str:
    lines = [f"{scored(result)}: {result['task']}/{result['split']}, {result['examples']} examples"]
    metrics = result["metrics"]
    for name, value in metrics.items():
        if name in ("primary", "examples", "tokens", "outcomes") or name.endswith("_ci95"):
            continue
        interval = metrics.get(f"{name}_ci95")
        shown = f"{100 * value:.1f}%" if interval else f"{value:.4f}"
        if interval:
            shown += f"  (95% interval {100 * interval[0]:.1f}-{100 * interval[1]:.1f}%)"
        lines.append(f"  {name:<16}{shown}")
    if "paired" in result:
        c = result["paired"]
        verdict = "better" if c["a_better"] else "worse" if c.get("b_better") else "neither better"
        lines.append(f"  against {c['b']} ({c['metric']} {c['value_b']:.4g}): difference {c['difference']:+.4g}, "
                     f"95% interval {c['ci95'][0]:+.4g} to {c['ci95'][1]:+.4g}, {c['test']}, p = {c['p']:.3g} "
                     f"({verdict} at p < 0.05; n = {c['n']})")
    return "\n".join(lines)
