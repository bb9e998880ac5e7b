"""Emulator distillation (offsite-tuning Eq. 1): train the kept middle blocks to imitate the full middle.

Both models see the same tokens. The bottom adapter blocks and embeddings are identical in student (emulator) and
teacher (full model), so the student's hidden state entering its middle is exactly the teacher's x_i. The loss is
what the paper's official code optimises (``run_clm.py`` with ``--lm_weight 1.0 --kd_weight 30.0``):

    L = lm_weight * CE(emulator's next tokens) + kd_weight * mean(((h_teacher - h_student) / rms(h_teacher))^2)

where h is the hidden state leaving the middle (the normalised MSE of Eq. 1) and the CE is the emulator's own language
modelling loss with the adapter in place. Only the emulator's middle blocks train; the teacher is frozen and run
without gradients and without its head, so memory is one full model plus one emulator with gradients.

The budget is given in tokens (steps = tokens / (batch-size x max-length)), with the official code's schedule (linear
warm-up, cosine decay). The batch of step s is drawn from a generator seeded by (seed, s), so a distillation that is
interrupted and continued from its checkpoint (every ``eval-every`` steps, and on Ctrl-C) sees exactly the batches an
uninterrupted one would. The corpus is the owner's public data, never the test split of an evaluated task: its train
split fits, its validation split selects (best held-out objective) and is what the recorded curve is measured on.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
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

CHECKPOINT_STATE, CHECKPOINT_TENSORS = "state.json", "tensors.safetensors"


@dataclass
class DistillSettings:
    corpus: str = setting("wikitext2", "distill: the owner's corpus (train split fits, validation split selects); "
                          "never the test split of an evaluated task", choices=corpus_names)
    tokens: int = setting(200_000, "distill: training budget in tokens (steps = tokens / (batch-size x max-length))",
                          ge=1)
    lr: float = setting(1e-4, "distill: peak learning rate of the emulator's middle blocks (official code: 1e-4)", gt=0)
    warmup: float = setting(0.05, "distill: fraction of steps of linear warm-up before the cosine decay", ge=0, lt=1)
    kd_weight: float = setting(30.0, "distill: weight of the normalised hidden-state MSE of Eq. 1 (official code: 30)",
                               ge=0)
    lm_weight: float = setting(1.0, "distill: weight of the emulator's next-token loss (official code: 1)", ge=0)
    batch_size: int = setting(4, "distill: sequences per step", ge=1)
    max_length: int = setting(256, "distill: tokens per sequence", ge=2)
    eval_every: int = setting(50, "distill: steps between held-out checks and checkpoints (the best is kept)", ge=1)
    seed: int = setting(0, "distill: sampling seed", ge=0)

    def check(self) -> None:
        if self.kd_weight == 0 and self.lm_weight == 0:
            raise ValueError("emulator-distill-kd-weight and emulator-distill-lm-weight are both 0: nothing to "
                             "train; set at least one above 0 (the official code uses 30 and 1)")

    @property
    def steps(self) -> int:
        return max(1, math.ceil(self.tokens / (self.batch_size * self.max_length)))


def middle_indices(manifest: dict) -> tuple[int, int]:
    """(student index, teacher index) into ``hidden_states`` just after the middle; needs a sandwich adapter."""
    n, adapter = manifest["num_blocks"], sorted(manifest["adapter_blocks"])
    bottom = sum(1 for i in adapter if i < min(manifest["emulator_blocks"], default=n))
    top = len(adapter) - bottom
    if adapter != list(range(bottom)) + list(range(n - top, n)):
        raise ValueError(f"distillation needs a sandwich adapter (bottom and top blocks); this split has adapter "
                         f"blocks {adapter}")
    return bottom + len(manifest["emulator_blocks"]), n - top


def middle_parameters(model, manifest: dict) -> dict[str, torch.Tensor]:
    """The emulator's middle-block parameters by name (what distillation and alignment train); a peft-wrapped model's
    by its base model's names, which are the artifact's tensor names."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    arch, middle = architecture(base.config), {to_local(manifest)[i] for i in manifest["emulator_blocks"]}
    return {n: p for n, p in base.named_parameters() if arch.block_index(n) in middle}


def normalised_mse(target: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Eq. 1's distance: the mean squared error of ``hidden`` against ``target``, in units of the target's RMS."""
    target = target.float()
    return ((target - hidden.float()) / target.pow(2).mean().sqrt()).pow(2).mean()


class Objective:
    """The two loss terms on one batch, each as a tensor (the CE term is 0 without an LM weight)."""

    def __init__(self, student, teacher, manifest: dict, cfg: DistillSettings):
        self.student, self.teacher, self.cfg = student, teacher, cfg
        self.s_idx, self.t_idx = middle_indices(manifest)

    def __call__(self, batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.tensor(batch, device=next(self.student.parameters()).device)
        with torch.no_grad():
            target = self.teacher.base_model(input_ids=ids, output_hidden_states=True).hidden_states[self.t_idx]
        if self.cfg.lm_weight > 0:
            out = self.student(input_ids=ids, labels=ids, output_hidden_states=True)
            lm = out.loss
        else:
            out = self.student.base_model(input_ids=ids, output_hidden_states=True)
            lm = torch.zeros((), device=ids.device)
        return normalised_mse(target, out.hidden_states[self.s_idx]), lm

    def total(self, kd, lm):
        return self.cfg.kd_weight * kd + self.cfg.lm_weight * lm


def lr_at(step: int, cfg: DistillSettings) -> float:
    """Linear warm-up then cosine decay to 0 (the official code's ``--lr_scheduler_type cosine``); step is 1-based."""
    warm = max(1, round(cfg.warmup * cfg.steps))
    if step <= warm:
        return cfg.lr * step / warm
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, cfg.steps - warm)))


def distill(student, teacher, tokenizer, manifest: dict, cfg: DistillSettings, data_dir=None,
            checkpoint: Path | None = None, monitor=None) -> dict:
    """Train ``student``'s middle blocks in place; returns the held-out curve and the best point.

    ``checkpoint``: a directory to continue from and save to. ``monitor(student) -> dict``: extra numbers recorded at
    every held-out check (e.g. zero-shot perplexity on an evaluation set, for a curve); never used to select.
    """
    cfg.check()
    objective = Objective(student, teacher, manifest, cfg)
    student.requires_grad_(False)
    teacher.requires_grad_(False).eval()
    params = middle_parameters(student, manifest)
    for p in params.values():
        p.requires_grad_(True)
    task = get_task(cfg.corpus)
    train = token_blocks(tokenizer, task.train_texts("train", data_dir), cfg.max_length)
    held = token_blocks(tokenizer, task.train_texts("validation", data_dir), cfg.max_length)[: 8 * cfg.batch_size]
    if not train or not held:
        raise ValueError(f"{cfg.corpus} has too little text for blocks of {cfg.max_length} tokens; lower "
                         f"emulator-distill-max-length or choose a larger emulator-distill-corpus")

    def held_out(step: int) -> dict:
        student.eval()
        with torch.no_grad():
            terms = [objective(held[i:i + cfg.batch_size]) for i in range(0, len(held), cfg.batch_size)]
        student.train()
        kd, lm = (sum(t[k].item() for t in terms) / len(terms) for k in (0, 1))
        point = {"step": step, "tokens": step * cfg.batch_size * cfg.max_length, "held_out_mse": kd,
                 "held_out_objective": objective.total(kd, lm)}
        if cfg.lm_weight > 0:
            point["held_out_perplexity"] = math.exp(lm)
        if monitor is not None:
            student.eval()
            point.update(monitor(student))
            student.train()
        return point

    opt = torch.optim.AdamW(list(params.values()), lr=cfg.lr, weight_decay=0.0)
    state = _resume(checkpoint, cfg, params, opt) if checkpoint else None
    if state is None:
        state = {"step": 0, "history": [held_out(0)], "best": None, "settings": asdict(cfg)}
        state["best"] = state["history"][0]
        best_tensors = {n: p.detach().clone() for n, p in params.items()}
    else:
        best_tensors = state.pop("best_tensors")
    student.train()
    bar = tqdm(total=cfg.steps * cfg.batch_size * cfg.max_length, initial=state["step"] * cfg.batch_size *
               cfg.max_length, unit="tok", unit_scale=True, desc="distill emulator", leave=False)
    saved = state["step"]
    try:
        for step in range(state["step"] + 1, cfg.steps + 1):
            batch = random.Random(f"{cfg.seed}:{step}").sample(train, min(cfg.batch_size, len(train)))
            kd, lm = objective(batch)
            objective.total(kd, lm).backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            opt.step()
            state["step"] = step
            opt.zero_grad(set_to_none=True)
            bar.update(cfg.batch_size * cfg.max_length)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                point = {**held_out(step), "train_mse": kd.item(), "train_lm": lm.item()}
                state["history"].append(point)
                if point["held_out_objective"] < state["best"]["held_out_objective"]:
                    state["best"] = point
                    best_tensors = {n: p.detach().clone() for n, p in params.items()}
                if checkpoint:
                    _save(checkpoint, state, params, best_tensors, opt)
                    saved = step
    except KeyboardInterrupt:
        if checkpoint and state["step"] > saved:
            _save(checkpoint, state, params, best_tensors, opt)
        raise
    finally:
        bar.close()
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(best_tensors[n])
    student.requires_grad_(False).eval()
    best = state["best"]
    if not math.isfinite(best["held_out_objective"]):
        raise RuntimeError(f"distillation diverged (held-out objective {best['held_out_objective']}); lower "
                           f"emulator-distill-lr")
    first = state["history"][0]
    return {"held_out_mse_before": first["held_out_mse"], "held_out_mse_after": best["held_out_mse"],
            "best_step": best["step"], "steps": cfg.steps, "train_tokens_per_epoch": len(train) * cfg.max_length,
            "history": state["history"], "config": asdict(cfg)}


def _save(directory: Path, state: dict, params: dict, best: dict, opt) -> None:
    """Checkpoint atomically: current and best middle tensors, AdamW moments (safetensors) and the state (json)."""
    tensors = {f"param.{n}": p.detach().contiguous() for n, p in params.items()}
    tensors |= {f"best.{n}": t.contiguous() for n, t in best.items()}
    for n, p in params.items():
        for key in ("exp_avg", "exp_avg_sq"):
            if key in opt.state.get(p, {}):
                tensors[f"{key}.{n}"] = opt.state[p][key].contiguous()
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, tmp / CHECKPOINT_TENSORS)
    (tmp / CHECKPOINT_STATE).write_text(json.dumps(state, indent=1))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)


def _resume(directory: Path, cfg: DistillSettings, params: dict, opt) -> dict | None:
    """Load a checkpoint into ``params`` and ``opt``; None when there is none. Refuses one made with other settings."""
    if not (directory / CHECKPOINT_STATE).exists():
        return None
    state = json.loads((directory / CHECKPOINT_STATE).read_text())
    if state["settings"] != asdict(cfg):
        raise ValueError(f"the distillation checkpoint {directory} was made with other settings "
                         f"({state['settings']}); delete it to start over, or continue with those settings")
    tensors = load_file(directory / CHECKPOINT_TENSORS)
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(tensors[f"param.{n}"])
            if f"exp_avg.{n}" in tensors:
                opt.state[p] = {"step": torch.tensor(float(state["step"])), "exp_avg": tensors[f"exp_avg.{n}"],
                                "exp_avg_sq": tensors[f"exp_avg_sq.{n}"]}
    state["best_tensors"] = {n: tensors[f"best.{n}"] for n in params}
    return state


@register
class Distill(Method):
    name = "distill"
    Settings = DistillSettings

    def finish(self, staged: Path, out: Path, model_dir: Path) -> Path:
        """Distil the layer-dropped artifact against the full model; write it to ``out`` with the result recorded.

        Progress is checkpointed beside ``out`` (``<out>.distill``): building the same emulator again after an
        interruption continues where it stopped; the checkpoint is removed once the artifact is final.
        """
        self.settings.check()
        device = default_device()
        student, manifest = load_emulator(staged, device=device)
        middle_indices(manifest)  # a non-sandwich split fails before the teacher is loaded
        teacher = load_model(model_dir, device=device)
        checkpoint = out.with_name(out.name + ".distill")
        record = distill(student, teacher, load_tokenizer(staged), manifest, self.settings, self.spec.data_dir,
                         checkpoint=checkpoint)
        del teacher
        result = {k: record[k] for k in ("held_out_mse_before", "held_out_mse_after", "best_step", "steps",
                                         "train_tokens_per_epoch", "history")}
        path = resave(student, out, staged, {**manifest, "params": {**manifest["params"], "distill_result": result}})
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(checkpoint, ignore_errors=True)
        return path
