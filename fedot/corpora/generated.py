"""Data-free distillation text: sequences the full model samples itself, cached by model and settings.

The model owner always has its model, even without a public corpus of the right kind. Sequences start from the
tokenizer's BOS token and are sampled with a KV cache in batches (``transformers``' ``generate``: temperature, top-p),
each batch seeded by (seed, split, batch), cut at the first EOS and joined with EOS like documents; the validation
split uses its own seeds. The token ids go straight into a token stream (:mod:`fedot.corpora.stream`, no decode and
re-encode), keyed by the model's content, the tokenizer and these settings, so the text is generated once per
machine.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

import torch

from ..bars import bar as progress_bar
from ..settings import setting
from .stream import TokenStream, id_dtype, load_stream, stream_key, tokenizer_fingerprint, write_stream


@dataclass
class GenerationSettings:
    tokens: int = setting(400_000, "generated corpus: tokens the full model samples for the train split (the "
                          "validation split gets a twentieth)", ge=1)
    temperature: float = setting(1.0, "generated corpus: sampling temperature", gt=0)
    top_p: float = setting(0.95, "generated corpus: nucleus sampling mass", gt=0, le=1)
    length: int = setting(256, "generated corpus: new tokens per sampled sequence (shorter if it ends)", ge=2)
    batch_size: int = setting(32, "generated corpus: sequences sampled together (one KV cache)", ge=1)
    seed: int = setting(0, "generated corpus: sampling seed", ge=0)


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big") % 2**63


def sample_sequences(model, tokenizer, cfg: GenerationSettings, split: str, budget: int, progress: bool = True):
    """Sampled sequences (token ids, each ending in EOS) until ``budget`` tokens; deterministic given the seed."""
    device = next(model.parameters()).device
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    eos, produced = tokenizer.eos_token_id, 0
    bar = progress_bar(total=budget, unit="tok", unit_scale=True, desc=f"generating owner text ({split})",
                       verbose=progress)
    for b in range(math.ceil(budget / (cfg.batch_size * cfg.length)) * 4):  # ends early if sequences stop short
        if produced >= budget:
            break
        torch.manual_seed(_seed(cfg.seed, split, b))
        ids = torch.full((cfg.batch_size, 1), start, dtype=torch.long, device=device)
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=cfg.temperature,
                                 top_p=cfg.top_p, top_k=0, max_new_tokens=cfg.length, pad_token_id=eos,
                                 eos_token_id=eos)
        for row in out[:, 1:].tolist():
            seq = row[:row.index(eos)] if eos in row else row
            if seq:
                produced += len(seq) + 1
                bar.update(len(seq) + 1)
                yield seq + [eos]
    bar.close()


def generated_stream(model_dir, tokenizer, cfg: GenerationSettings, split: str, progress: bool = True) -> TokenStream:
    """The generated ``split`` (train: ``cfg.tokens`` tokens; validation: a twentieth), from the cache if there."""
    from ..models import content_hash, default_device, load_model

    budget = cfg.tokens if split == "train" else max(cfg.tokens // 20, cfg.length)
    key = stream_key("generated", split, content_hash(model_dir), asdict(cfg), tokenizer_fingerprint(tokenizer))
    cached = load_stream(key)
    if cached is not None:
        return cached
    model = load_model(model_dir, device=default_device()).eval()
    sequences = sample_sequences(model, tokenizer, cfg, split, budget, progress)
    return write_stream(key, sequences, id_dtype(tokenizer), {"corpus": "generated", "split": split,
                                                              "settings": asdict(cfg)})
