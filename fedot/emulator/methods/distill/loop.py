"""The distillation loop: the official code's objective, its schedule, checkpoints, and the teacher's cached targets.

    L = lm_weight * CE(emulator's next tokens) + kd_weight * mean(((h_teacher - h_student) / rms(h_teacher))^2)

h is the hidden state leaving the middle (Eq. 1's normalised MSE, as ``run_clm.py`` computes it with
``--kd_weight 30 --lm_weight 1``; ``kd-distance = token`` takes the RMS per position instead,
:func:`fedot.emulator.middle.token_normalised_mse`); only the emulator's middle blocks train. Every held-out check
records both distances, whichever one trains. The batch of step s is drawn by (seed, s)
from the owner's text (:class:`fedot.corpora.OwnerText`), so a run continued from its checkpoint (every
``eval-every`` steps and on Ctrl-C) sees exactly the batches of an uninterrupted one. Forward passes run under the
configured autocast (:mod:`fedot.precision`); the teacher's targets of training blocks come from a
:class:`~fedot.emulator.methods.distill.teacher.TeacherCache` when one is given, and the held-out targets are
computed once.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ....bars import bar as progress_bar
from ....precision import autocast
from ...middle import KD_DISTANCES, middle_indices, middle_parameters

CHECKPOINT_STATE, CHECKPOINT_TENSORS = "state.json", "tensors.safetensors"
HELD_OUT_BATCHES = 8


def lr_at(step: int, cfg) -> float:
    """Linear warm-up then cosine decay to 0 (the official code's ``--lr_scheduler_type cosine``); step is 1-based."""
    warm = max(1, round(cfg.warmup * cfg.steps))
    if step <= warm:
        return cfg.lr * step / warm
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, cfg.steps - warm)))


class Objective:
    """The two loss terms on one batch, each as a tensor (the CE term is 0 without an LM weight)."""

    def __init__(self, student, teacher, manifest: dict, cfg, precision: str):
        self.student, self.teacher, self.cfg = student, teacher, cfg
        self.s_idx, self.t_idx = middle_indices(manifest)
        self.device = next(student.parameters()).device
        self.autocast = lambda: autocast(precision, self.device)

    def target(self, batch: list[list[int]]) -> torch.Tensor:
        """The teacher's hidden state leaving the middle."""
        ids = torch.tensor(batch, device=self.device)
        with torch.no_grad(), self.autocast():
            return self.teacher.base_model(input_ids=ids, output_hidden_states=True).hidden_states[self.t_idx].float()

    def student_terms(self, batch: list[list[int]]):
        """The student's hidden state leaving the middle, and its next-token loss (0 without an LM weight)."""
        ids = torch.tensor(batch, device=self.device)
        with self.autocast():
            if self.cfg.lm_weight > 0:
                out = self.student(input_ids=ids, labels=ids, output_hidden_states=True)
                lm = out.loss.float()
            else:
                out = self.student.base_model(input_ids=ids, output_hidden_states=True)
                lm = torch.zeros((), device=ids.device)
        return out.hidden_states[self.s_idx], lm

    def __call__(self, batch: list[list[int]], target: torch.Tensor | None = None):
        target = self.target(batch) if target is None else target.to(self.device)
        hidden, lm = self.student_terms(batch)
        return KD_DISTANCES[self.cfg.kd_distance](target, hidden), lm

    def total(self, kd, lm):
        return self.cfg.kd_weight * kd + self.cfg.lm_weight * lm


def distill(student, teacher, text, manifest: dict, cfg, identity: dict, precision: str = "float32",
            checkpoint: Path | None = None, monitor=None, caches: list | None = None) -> dict:
    """Train ``student``'s middle blocks in place on ``text`` (an OwnerText); returns the held-out curve.

    ``identity``: the settings a checkpoint must have been made with to be continued. ``monitor(student) -> dict``:
    extra numbers recorded at every held-out check (never used to select). ``caches``: a TeacherCache per corpus of
    ``text`` (None: the teacher runs on every batch).
    """
    objective = Objective(student, teacher, manifest, cfg, precision)
    student.requires_grad_(False)
    teacher.requires_grad_(False).eval()
    params = middle_parameters(student, manifest)
    for p in params.values():  # the trained middle is fp32 whatever the frozen rest is stored in
        p.data = p.data.float()
        p.requires_grad_(True)
    held = text.held_out(HELD_OUT_BATCHES * cfg.batch_size)
    chunks = [held[i:i + cfg.batch_size] for i in range(0, len(held), cfg.batch_size)]
    held_targets = [objective.target(c).cpu() for c in chunks]  # fixed: computed once

    def held_out(step: int) -> dict:
        student.eval()
        terms = {name: 0.0 for name in [*KD_DISTANCES, "lm"]}
        with torch.no_grad():
            for c, t in zip(chunks, held_targets):
                hidden, lm = objective.student_terms(c)
                terms["lm"] += lm.item() / len(chunks)
                for name, distance in KD_DISTANCES.items():
                    terms[name] += distance(t.to(hidden.device), hidden).item() / len(chunks)
        student.train()
        kd, lm = terms[cfg.kd_distance], terms["lm"]
        point = {"step": step, "tokens": step * cfg.batch_size * cfg.max_length, "held_out_mse": kd,
                 "held_out_objective": objective.total(kd, lm),
                 **{f"held_out_{name}_distance": terms[name] for name in KD_DISTANCES}}
        if cfg.lm_weight > 0:
            point["held_out_perplexity"] = math.exp(lm)
        if monitor is not None:
            student.eval()
            point.update(monitor(student))
            student.train()
        return point

    def targets(picks):
        if caches is None:
            return None
        parts = {}
        for c in sorted({c for c, _ in picks}):
            blocks = [i for cc, i in picks if cc == c]
            parts[c] = iter(caches[c].targets(blocks, lambda missing, c=c: objective.target(
                text.blocks([(c, i) for i in missing]))))
        return torch.stack([next(parts[c]) for c, _ in picks])

    opt = torch.optim.AdamW(list(params.values()), lr=cfg.lr, weight_decay=0.0)
    state = _resume(checkpoint, identity, params, opt) if checkpoint else None
    if state is None:
        state = {"step": 0, "history": [held_out(0)], "best": None, "settings": identity}
        state["best"] = state["history"][0]
        best_tensors = {n: p.detach().clone() for n, p in params.items()}
    else:
        best_tensors = state.pop("best_tensors")
    student.train()
    per_step = cfg.batch_size * cfg.max_length
    bar = progress_bar(total=cfg.steps * per_step, initial=state["step"] * per_step, unit="tok", unit_scale=True,
                       desc="distill emulator")
    saved = state["step"]

    def save():
        for cache in caches or []:
            cache.flush()
        _save(checkpoint, state, params, best_tensors, opt)

    try:
        for step in range(state["step"] + 1, cfg.steps + 1):
            picks = text.draw(f"{cfg.seed}:{step}", cfg.batch_size)
            kd, lm = objective(text.blocks(picks), targets(picks))
            objective.total(kd, lm).backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            opt.step()
            state["step"] = step
            opt.zero_grad(set_to_none=True)
            bar.update(per_step)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                point = {**held_out(step), "train_mse": kd.item(), "train_lm": lm.item()}
                state["history"].append(point)
                if point["held_out_objective"] < state["best"]["held_out_objective"]:
                    state["best"] = point
                    best_tensors = {n: p.detach().clone() for n, p in params.items()}
                if checkpoint:
                    save()
                    saved = step
    except KeyboardInterrupt:
        if checkpoint and state["step"] > saved:
            save()
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
            "best_step": best["step"], "steps": cfg.steps, "train_tokens_per_epoch": text.train_tokens(),
            "history": state["history"], "config": identity,
            "teacher_cache": [{"hits": c.hits, "misses": c.misses, "stored": len(c)} for c in caches or []]}


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
    save_file({k: v.cpu() for k, v in tensors.items()}, tmp / CHECKPOINT_TENSORS)
    (tmp / CHECKPOINT_STATE).write_text(json.dumps(state, indent=1))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)


def _resume(directory: Path, identity: dict, params: dict, opt) -> dict | None:
    """Load a checkpoint into ``params`` and ``opt``; None when there is none. Refuses one made with other settings."""
    if not (directory / CHECKPOINT_STATE).exists():
        return None
    state = json.loads((directory / CHECKPOINT_STATE).read_text())
    if state["settings"] != json.loads(json.dumps(identity)):
        raise ValueError(f"the distillation checkpoint {directory} was made with other settings "
                         f"({state['settings']}); delete it to start over, or continue with those settings")
    tensors = load_file(directory / CHECKPOINT_TENSORS)
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(tensors[f"param.{n}"])
            if f"exp_avg.{n}" in tensors:  # the moments live where the parameter does (a GPU resumes on the GPU)
                opt.state[p] = {"step": torch.tensor(float(state["step"])),
                                "exp_avg": tensors[f"exp_avg.{n}"].to(p.device),
                                "exp_avg_sq": tensors[f"exp_avg_sq.{n}"].to(p.device)}
    state["best_tensors"] = {n: tensors[f"best.{n}"].to(p.device) for n, p in params.items()}
    return state
