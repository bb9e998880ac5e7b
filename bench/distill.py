"""Distillation speed: fedot's training step beside a plain reimplementation of the official one and the arithmetic
limit, on the same batches, measured side by side in one run.

- ``plain``: the official ``run_clm.py`` step as a reader would write it: float32, the teacher's forward on every
  batch, the student's forward with labels, ``kd_weight * normalised MSE + lm_weight * CE``, backward, clip, AdamW.
- ``fedot, first epoch``: fedot's :class:`~fedot.emulator.methods.distill.loop.Objective` under the resolved autocast
  (bf16 where the CPU is fast at it), the teacher still run on every batch (what a cache miss costs).
- ``fedot, cached targets``: the same with the teacher's targets read from its cache (a second epoch, or a second
  emulator cut at the same place: no teacher forward).
- ``limit``: the step's matrix FLOPs (student forward 2P, backward 2P through the frozen blocks plus 2P_middle for the
  trained ones, teacher forward 2P_teacher; P counted from the parameters the tokens pass through) over the matmul
  rate measured here, in float32 and bfloat16.

Every arm starts from the same student weights and sees the same batches; the first step of each is a warm-up, not
timed. Run it on an otherwise idle machine:

    python bench/distill.py --emulator-blocks 18 --steps 4 --batch-size 8 --out bench/results/distill_speed.json
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from record import command_of, machine, save


def matmul_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 8) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t)


def timed_steps(step, batches: list) -> float:
    """Seconds per step after one untimed warm-up step."""
    step(batches[0])
    t = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    return (time.perf_counter() - t) / (len(batches) - 1)


def main() -> None:
    from fedot.corpora import OwnerText
    from fedot.emulator import EmulatorSpec
    from fedot.emulator.loader import load_emulator
    from fedot.emulator.methods.distill import DistillSettings
    from fedot.emulator.methods.distill.loop import Objective
    from fedot.emulator.middle import middle_indices, middle_parameters, normalised_mse
    from fedot.models import DEFAULT_MODEL, load_model, load_tokenizer, resolve
    from fedot.precision import resolve_autocast

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--emulator-blocks", type=int, default=18)
    p.add_argument("--corpus", default="gutenberg")
    p.add_argument("--steps", type=int, default=4, help="timed steps per arm (plus one warm-up)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--out", default="")
    args = p.parse_args()

    torch.manual_seed(0)
    model_dir = resolve(args.model)
    emulator_dir, _ = EmulatorSpec(model=args.model, emulator_blocks=args.emulator_blocks).build()
    base, manifest = load_emulator(emulator_dir)
    teacher = load_model(model_dir).requires_grad_(False).eval()
    tok = load_tokenizer(model_dir)
    text = OwnerText(args.corpus, tok, args.max_length)
    batches = [text.blocks(text.draw(f"bench:{s}", args.batch_size)) for s in range(args.steps + 1)]
    cfg = DistillSettings(batch_size=args.batch_size, max_length=args.max_length)
    s_idx, t_idx = middle_indices(manifest)
    precision = resolve_autocast("auto", "cpu")

    def trainable(model):
        model.requires_grad_(False)
        params = middle_parameters(model, manifest)
        for q in params.values():
            q.requires_grad_(True)
        return params, torch.optim.AdamW(list(params.values()), lr=cfg.lr)

    def plain_arm():
        student = copy.deepcopy(base)
        params, opt = trainable(student)

        def step(batch):
            ids = torch.tensor(batch)
            with torch.no_grad():
                target = teacher(input_ids=ids, output_hidden_states=True).hidden_states[t_idx]
            out = student(input_ids=ids, labels=ids, output_hidden_states=True)
            loss = cfg.kd_weight * normalised_mse(target, out.hidden_states[s_idx]) + cfg.lm_weight * out.loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    def fedot_arm(cached: bool):
        student = copy.deepcopy(base)
        params, opt = trainable(student)
        objective = Objective(student, teacher, manifest, cfg, precision)
        targets = {id(b): objective.target(b).cpu() for b in batches} if cached else {}

        def step(batch):
            kd, lm = objective(batch, targets.get(id(batch)))
            objective.total(kd, lm).backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    tokens = args.batch_size * args.max_length
    seconds = {"plain (official step, float32, teacher every batch)": timed_steps(plain_arm(), batches),
               f"fedot, first epoch ({precision}, teacher every batch)": timed_steps(fedot_arm(False), batches),
               f"fedot, cached targets ({precision}, no teacher forward)": timed_steps(fedot_arm(True), batches)}
    p_student = sum(q.numel() for q in base.parameters())
    p_middle = sum(q.numel() for q in middle_parameters(base, manifest).values())
    p_teacher = sum(q.numel() for q in teacher.parameters())
    flops = {"with teacher": tokens * (4 * p_student + 2 * p_middle + 2 * p_teacher),
             "cached": tokens * (4 * p_student + 2 * p_middle)}
    rates = {"float32": matmul_rate(torch.float32), "bfloat16": matmul_rate(torch.bfloat16)}
    plain = next(iter(seconds.values()))
    result = {
        "command": command_of("distill.py", args),
        "tokens_per_step": tokens, "precision": precision,
        "arms": {name: {"seconds_per_step": s, "tokens_per_s": tokens / s, "speedup_vs_plain": plain / s}
                 for name, s in seconds.items()},
        "limit_tokens_per_s": {f"{kind}, {dtype} matmul peak": tokens * rate / flops[kind]
                               for kind in flops for dtype, rate in rates.items()},
        "matmul_flops_per_s": rates, "parameters": {"student": p_student, "middle": p_middle, "teacher": p_teacher},
        **machine()}
    save(result, args.out)


if __name__ == "__main__":
    main()
