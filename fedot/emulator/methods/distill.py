"""Emulator distillation (offsite-tuning Eq. 1): train the kept middle blocks to imitate the full middle.

Both models see the same tokens. The bottom adapter blocks and embeddings are identical in student (emulator) and
teacher (full model), so the student's hidden state entering its middle is exactly the teacher's x_i; the loss is
the MSE between the hidden states leaving the emulator's middle and the full model's middle. Only the emulator's
middle blocks train; the teacher is frozen and run without gradients, so memory is one full model plus one emulator.
"""

from __future__ import annotations

import math
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ...models import default_device, load_model, load_tokenizer
from ...registry import architecture
from ...settings import setting
from ...tasks import corpus_names, get_task
from ...tasks.tokenize import token_blocks
from ..artifact import to_local
from ..loader import load_emulator
from ..writer import resave
from . import Method, register


@dataclass
class DistillSettings:
    corpus: str = setting("wikitext2", "distill: corpus task (its train split fits, its validation split selects)",
                          choices=corpus_names)
    steps: int = setting(200, "distill: optimizer steps", ge=1)
    lr: float = setting(1e-4, "distill: learning rate of the emulator's middle blocks", gt=0)
    batch_size: int = setting(4, "distill: sequences per step", ge=1)
    max_length: int = setting(256, "distill: tokens per sequence", ge=2)
    eval_every: int = setting(50, "distill: steps between held-out MSE checks (the best is kept)", ge=1)
    seed: int = setting(0, "distill: sampling seed", ge=0)


def middle_indices(manifest: dict) -> tuple[int, int]:
    """(student index, teacher index) into ``hidden_states`` just after the middle; needs a sandwich adapter."""
    n, adapter = manifest["num_blocks"], sorted(manifest["adapter_blocks"])
    bottom = sum(1 for i in adapter if i < min(manifest["emulator_blocks"], default=n))
    top = len(adapter) - bottom
    if adapter != list(range(bottom)) + list(range(n - top, n)):
        raise ValueError(f"distillation needs a sandwich adapter (bottom and top blocks); this split has adapter "
                         f"blocks {adapter}")
    return bottom + len(manifest["emulator_blocks"]), n - top


def _mse(student, teacher, batch, s_idx, t_idx):
    ids = torch.tensor(batch, device=next(student.parameters()).device)
    with torch.no_grad():
        target = teacher(input_ids=ids, output_hidden_states=True).hidden_states[t_idx].float()
    out = student(input_ids=ids, output_hidden_states=True).hidden_states[s_idx].float()
    return torch.nn.functional.mse_loss(out, target)


def distill(student, teacher, tokenizer, manifest: dict, cfg: DistillSettings, data_dir=None) -> dict:
    """Train ``student``'s middle blocks in place; returns held-out MSE before/after and the history."""
    s_idx, t_idx = middle_indices(manifest)
    arch = architecture(student.config)
    middle = {to_local(manifest)[i] for i in manifest["emulator_blocks"]}
    student.requires_grad_(False)
    teacher.requires_grad_(False).eval()
    params = [p for n, p in student.named_parameters() if arch.block_index(n) in middle]
    for p in params:
        p.requires_grad_(True)
    task = get_task(cfg.corpus)
    train = token_blocks(tokenizer, task.train_texts("train", data_dir), cfg.max_length)
    held = token_blocks(tokenizer, task.train_texts("validation", data_dir), cfg.max_length)[: 4 * cfg.batch_size]
    if not train or not held:
        raise ValueError(f"{cfg.corpus} has too little text for blocks of {cfg.max_length} tokens")

    def held_out() -> float:
        student.eval()
        with torch.no_grad():
            losses = [_mse(student, teacher, held[i:i + cfg.batch_size], s_idx, t_idx).item()
                      for i in range(0, len(held), cfg.batch_size)]
        student.train()
        return sum(losses) / len(losses)

    from transformers import get_cosine_schedule_with_warmup

    opt = torch.optim.AdamW(params, lr=cfg.lr)
    sched = get_cosine_schedule_with_warmup(opt, max(1, cfg.steps // 20), cfg.steps)
    rng = random.Random(cfg.seed)
    before = best = held_out()
    best_state = {n: p.detach().clone() for n, p in student.named_parameters() if p.requires_grad}
    history = [{"step": 0, "held_out_mse": before}]
    student.train()
    for step in tqdm(range(1, cfg.steps + 1), desc="distill emulator", leave=False):
        loss = _mse(student, teacher, rng.sample(train, min(cfg.batch_size, len(train))), s_idx, t_idx)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            mse = held_out()
            history.append({"step": step, "train_mse": loss.item(), "held_out_mse": mse})
            if mse < best:
                best = mse
                best_state = {n: p.detach().clone() for n, p in student.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for n, p in student.named_parameters():
            if n in best_state:
                p.copy_(best_state[n])
    student.requires_grad_(False).eval()
    if not math.isfinite(best):
        raise RuntimeError(f"distillation diverged (held-out MSE {best}); lower emulator-distill-lr")
    return {"held_out_mse_before": before, "held_out_mse_after": best, "history": history, "config": asdict(cfg)}


@register
class Distill(Method):
    name = "distill"
    Settings = DistillSettings

    def finish(self, staged: Path, out: Path, model_dir: Path) -> Path:
        """Distil the layer-dropped artifact against the full model; write it to ``out`` with the result recorded."""
        device = default_device()
        student, manifest = load_emulator(staged, device=device)
        middle_indices(manifest)  # a non-sandwich split fails before the teacher is loaded
        teacher = load_model(model_dir, device=device)
        record = distill(student, teacher, load_tokenizer(staged), manifest, self.settings, self.spec.data_dir)
        del teacher
        result = {k: record[k] for k in ("held_out_mse_before", "held_out_mse_after", "history")}
        path = resave(student, out, staged, {**manifest, "params": {**manifest["params"], "distill_result": result}})
        shutil.rmtree(staged, ignore_errors=True)
        return path
