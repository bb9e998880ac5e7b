"""The memory plan: each role's expected peak, from the model's config alone (no weights are loaded).

A run's roles hold different things (offsite-tuning §3.4 and Table 6: the data owner's saving is the emulator's
smaller weights *and* the activations of fewer blocks):

* a **data owner** (one per emulator tier): the emulator's frozen weights (bf16 on a GPU, fp32 on a CPU), the trainable
  adapter tensors in fp32 with their gradients and two AdamW moments, the activations autograd keeps for the backward
  pass of one micro-batch (``batch-size`` x ``max-length``), and the transient gradients at the start of the backward;
* the **model owner**: the full model and the emulator, a copy of the adapter, one evaluation forward pass, with
  ``full-ft`` a full fine-tuning of the whole model, and with ``emulator-alignment`` the training of the emulator's
  middle blocks (gradients, AdamW moments, activations) beside the full model's no-grad outputs (hidden states and
  fp32 logits with their log-softmax).

Parameters are counted on a model instantiated on PyTorch's ``meta`` device; activations by running one forward pass
there under ``saved_tensors_hooks`` and adding up what autograd saves (parameters and repeated saves of one tensor
excluded), so the count follows the real modelling code of every family rather than a formula. Two corrections to
what the meta device runs: it decomposes attention into the math kernel, whose (length x length) score matrices the
fused kernels used on GPUs and by PyTorch's CPU flash attention never keep, so those are dropped; and under bf16
autocast on a GPU activations take 2 bytes except the fp32 logits. ``bench/memory_plan.py`` checks the plan against
measured peaks (SmolLM2 on CPU) and the paper's Table 6 (OPT-1.3B on an A6000).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .architectures import num_blocks
from .data_owner.tuning import TuningConfig, prepare
from .emulator.split import Split
from .emulator.writer import reduced_config

BUNDLED_CONFIGS = Path(__file__).with_name("model_configs")  # configs of hub models the sims name, for offline plans
RUNTIME_BYTES = {"cpu": int(0.25 * 2**30), "cuda": int(0.5 * 2**30)}  # interpreter + libraries / CUDA context
GIB = 2**30


@dataclass
class RolePlan:
    role: str
    device: str
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def line(self) -> str:
        parts = ", ".join(f"{k} {v / GIB:.2f}" for k, v in self.parts.items() if v)
        return f"{self.role:<40}{self.total / GIB:>7.2f} GiB  ({parts})"


def config_for_plan(spec: str):
    """The model's config: the copy fedot keeps for the hub models its sims name, else from its files or the hub."""
    from transformers import AutoConfig

    from .models import config_of

    bundled = BUNDLED_CONFIGS / (spec.replace("/", "__") + ".json")
    if bundled.exists():
        raw = json.loads(bundled.read_text())
        return AutoConfig.for_model(raw.pop("model_type"), **raw)
    try:
        return config_of(spec)
    except Exception as e:
        raise ValueError(f"cannot plan for {spec!r}: its config is neither reachable ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else ''}) nor kept "
                         f"offline in {BUNDLED_CONFIGS}; pass a local model directory or download its "
                         "config.json") from e


def _meta_model(config):
    """The model's modules on the meta device, fp32 (byte counts apply each tensor's dtype afterwards)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def _params(model) -> tuple[int, int, int]:
    """(frozen elements, trainable elements, trainable elements of matrices)."""
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return frozen, sum(p.numel() for p in trainable), sum(p.numel() for p in trainable if p.dim() == 2)


def frozen_dtype(device: str, dtype: torch.dtype | None) -> torch.dtype:
    """The frozen weights' dtype of a plan: as given, else fedot's default (bf16 on a GPU, fp32 on a CPU)."""
    return dtype or (torch.float32 if device == "cpu" else torch.bfloat16)


def saved_activations(model, batch: int, length: int, device: str, attention_scores: bool = False,
                      lowp: bool | None = None) -> tuple[int, int]:
    """(bytes autograd keeps after one training forward pass, bytes of its largest saved tensor).

    ``attention_scores``: count the (length x length) score matrices, as eager (unfused) attention keeps them.
    ``lowp``: forward passes autocast to 16 bits (default: on a GPU), so activations other than logits take 2 bytes."""
    lowp = device != "cpu" if lowp is None else lowp
    params = {id(p) for p in model.parameters()}
    seen: dict[int, int] = {}
    vocab = model.config.get_text_config().vocab_size

    def pack(t):
        base = t if t._base is None else t._base
        if id(base) in params or id(t) in params:
            return t
        if not attention_scores and t.dim() >= 2 and t.shape[-1] == length and t.shape[-2] == length:
            return t  # attention scores: fused kernels never keep them (module docstring)
        full_width = not lowp or not t.dtype.is_floating_point or (t.dim() and t.shape[-1] == vocab)
        bytes_per = t.element_size() if full_width else min(t.element_size(), 2)
        seen[id(base)] = max(seen.get(id(base), 0), t.numel() * bytes_per)
        return t

    # no attention mask: an all-ones one is dropped by the models' mask code (which would need the values), and with no
    # pad token the padding check needs none either
    ids = torch.zeros(batch, length, dtype=torch.long, device="meta")
    config = model.config.get_text_config()
    pad, config.pad_token_id = config.pad_token_id, None
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=ids, labels=ids)
    finally:
        config.pad_token_id = pad
    return sum(seen.values()), max(seen.values(), default=0)


def checkpointed_activations(config, split: Split, activations: int, batch: int, length: int, lowp: bool,
                             device: str) -> int:
    """Activations with gradient checkpointing: what the model keeps outside its blocks (counted on the same model
    with no blocks), each kept block's input, and one block's activations recomputed during the backward."""
    from .architectures import architecture

    arch = architecture(config)
    bare = _meta_model(reduced_config(config, []))
    bare.requires_grad_(False)
    bare.get_submodule(arch.final_norm).requires_grad_(True)  # what the loss backpropagates through outside blocks
    outside, _ = saved_activations(bare, batch, length, device, lowp=lowp)
    hidden = config.get_text_config().hidden_size
    blocks = len(split.kept)
    return outside + blocks * batch * length * hidden * (2 if lowp else 4) + (activations - outside) // max(blocks, 1)


def training_plan(config, split: Split, trainable_blocks: list[int], tuning: TuningConfig, batch: int, length: int,
                  device: str, role: str, frozen_fp32: bool = False, attention_scores: bool = False,
                  dtype: torch.dtype | None = None, checkpointing: bool = False) -> RolePlan:
    """Peak of training ``trainable_blocks`` (full-model numbering) of the model cut to ``split.kept``.

    ``frozen_fp32``: frozen weights kept in fp32 under bf16 autocast (the paper's setup) instead of fedot's bf16.
    ``dtype``: the frozen weights' dtype (default: bf16 on a GPU, fp32 on a CPU); 16 bits means autocast.
    ``checkpointing``: gradient checkpointing of the blocks."""
    reduced = reduced_config(config, split.kept)
    weights = torch.float32 if frozen_fp32 else frozen_dtype(device, dtype)
    lowp = frozen_fp32 or weights != torch.float32
    model = prepare(_meta_model(reduced), [split.to_local()[i] for i in trainable_blocks], tuning)
    frozen, trainable, matrices = _params(model)
    activations, largest = saved_activations(model, batch, length, device, attention_scores, lowp)
    if checkpointing:
        activations = checkpointed_activations(config, split, activations, batch, length, lowp, device)
    parts = {
        "weights": frozen * (4 if weights == torch.float32 else 2) + trainable * 4,
        "gradients": trainable * 4,
        "adamw": trainable * 8,
        "autocast copies": 2 * (matrices + (frozen if frozen_fp32 else 0)) if lowp else 0,
        "activations": activations,
        # the log-softmax backward of the loss holds three logits-sized tensors at once: the incoming gradient, the exp
        # of its saved output and its result (the logits are the largest saved tensor of every causal LM here)
        "backward transient": 3 * largest,
        "runtime": RUNTIME_BYTES[device],
    }
    return RolePlan(role, device, parts)


def client_plan(config, split: Split, tuning: TuningConfig, batch: int, length: int, device: str,
                role: str = "data owner", **kw) -> RolePlan:
    """A data owner training the adapter through the emulator of ``split``."""
    return training_plan(config, split, split.adapter, tuning, batch, length, device, role, **kw)


def inference_peak(model, length: int, device: str, lowp: bool | None = None) -> int:
    """Transient bytes of scoring one ``length``-token window the way fedot's perplexity does: the base model's forward
    without autograd (the largest module output, alive with its input and one intermediate: 3x), then the LM head in
    chunks of HEAD_CHUNK positions (the fp32 logits and their log-softmax)."""
    from .evaluation.perplexity import HEAD_CHUNK

    lowp = device != "cpu" if lowp is None else lowp
    largest = 0

    def hook(module, args, output):
        nonlocal largest
        out = output[0] if isinstance(output, tuple) else output
        if isinstance(out, torch.Tensor):
            largest = max(largest, out.numel() * (2 if lowp else 4))

    handles = [m.register_forward_hook(hook) for m in model.base_model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model.base_model(input_ids=torch.zeros(1, length, dtype=torch.long, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return 3 * largest + 2 * HEAD_CHUNK * model.config.get_text_config().vocab_size * 4


def alignment_bytes(config, split: Split, batch: int, length: int, device: str,
                    dtype: torch.dtype | None = None) -> int:
    """The owner's extra bytes while it re-aligns the emulator's middle (fedot.emulator.alignment): the middle's
    training state (with fp32 master copies when the emulator is 16-bit) and the teacher's outputs it is fitted to."""
    weights = frozen_dtype(device, dtype)
    plan = training_plan(config, split, list(split.emulator), TuningConfig.of("full"), batch, length, device,
                         "alignment", dtype=weights)
    text = config.get_text_config()
    teacher = (num_blocks(config) + 1) * batch * length * text.hidden_size * (4 if weights == torch.float32 else 2)
    logits = 2 * batch * length * text.vocab_size * 4
    masters = plan.parts["gradients"] if weights != torch.float32 else 0  # fp32 copies of 16-bit trained blocks
    return sum(plan.parts[k] for k in ("gradients", "adamw", "activations", "backward transient")) + teacher + logits \
        + masters


def owner_plan(config, split: Split, eval_length: int, device: str, full_ft: RolePlan | None = None,
               alignment: int = 0, dtype: torch.dtype | None = None) -> RolePlan:
    """The model owner: full model + emulator + the adapter copy, one evaluation window, and the FT baseline."""
    bytes_per = 4 if frozen_dtype(device, dtype) == torch.float32 else 2
    n = num_blocks(config)
    model = _meta_model(config)
    full = sum(p.numel() for p in model.parameters())
    per_block = (full - sum(p.numel() for p in _meta_model(reduced_config(config, [])).parameters())) // n
    parts = {
        "full model": full * bytes_per,
        "emulator": (full - per_block * (n - len(split.kept))) * bytes_per,
        # the adapter blocks' originals the plug-in merges into: fp32, kept in host memory (on a GPU: none on it)
        "adapter copy": per_block * len(split.adapter) * 4 if device == "cpu" else 0,
        "evaluation": inference_peak(model, eval_length, device, bytes_per == 2),
        "runtime": RUNTIME_BYTES[device],
    }
    if full_ft is not None:  # FT baseline, after which its model is released
        parts["FT baseline"] = max(0, full_ft.total - full_ft.parts["runtime"] - parts["full model"])
    if alignment:
        parts["alignment"] = alignment
    return RolePlan("model owner (ServerApp)", device, parts)
