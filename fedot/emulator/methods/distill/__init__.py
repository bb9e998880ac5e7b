"""Emulator distillation (offsite-tuning Eq. 1): train the kept middle blocks to imitate the full middle.

Both models see the same tokens. The bottom adapter blocks and embeddings are identical in student (emulator) and
teacher (full model), so the student's hidden state entering its middle is exactly the teacher's x_i; the loss is the
official code's (``loop``), on the owner's public text (:mod:`fedot.corpora`: a corpus, a weighted mixture, or text
the full model generates), never an evaluated task's test split: train split to fit, validation split to select the
best checkpoint. Only the emulator's middle blocks train; the teacher is frozen and its targets of training blocks
are cached (``teacher``), so a second epoch or a second emulator cut at the same place skips the teacher.

The budget is given in tokens (steps = tokens / (batch-size x max-length)) with the official schedule (linear
warm-up, cosine decay); forward passes autocast to bf16 where the hardware is fast at it (``precision``). The
manifest records the settings that decide the result (the resolved precision; the generation settings only when the
corpus uses generated text; not whether the teacher cache was used, which changes nothing), so an artifact is
reused by every later build of the same emulator.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ....corpora import CORPORA, OwnerText, parse_mixture, token_stream
from ....corpora.generated import GenerationSettings, generated_stream
from ....models import cache_dir, content_hash, default_device, load_model, load_tokenizer
from ....precision import AUTOCAST, resolve_autocast
from ....settings import group, setting
from ...middle import KD_DISTANCES, middle_indices
from ...writer import resave
from .. import METHODS, Method
from .loop import distill
from .teacher import TeacherCache, cache_key


@dataclass
class DistillSettings:
    corpus: str = setting("gutenberg", "distill: the owner's text: a corpus (" + ", ".join(CORPORA.names()) + ") or "
                          "a weighted mixture such as 'gutenberg:0.7,wikitext103:0.3' (train split fits, validation "
                          "split selects); never the test split of an evaluated task")
    tokens: int = setting(200_000, "distill: training budget in tokens (steps = tokens / (batch-size x max-length))",
                          ge=1)
    lr: float = setting(1e-4, "distill: peak learning rate of the emulator's middle blocks (official code: 1e-4)", gt=0)
    warmup: float = setting(0.05, "distill: fraction of steps of linear warm-up before the cosine decay", ge=0, lt=1)
    kd_weight: float = setting(30.0, "distill: weight of the normalised hidden-state MSE of Eq. 1 (official code: 30)",
                               ge=0)
    kd_distance: str = setting("global", "distill: Eq. 1's distance; global: the official code's (one RMS over the "
                               "whole batch), token: each position's error in units of its own energy (not dominated "
                               "by the attention sink's massive activation; fedot.emulator.middle)",
                               choices=tuple(KD_DISTANCES))
    lm_weight: float = setting(1.0, "distill: weight of the emulator's next-token loss (official code: 1)", ge=0)
    batch_size: int = setting(4, "distill: sequences per step", ge=1)
    max_length: int = setting(256, "distill: tokens per sequence", ge=2)
    eval_every: int = setting(50, "distill: steps between held-out checks and checkpoints (the best is kept)", ge=1)
    seed: int = setting(0, "distill: sampling seed", ge=0)
    precision: str = setting("auto", "distill: autocast of forward passes; auto: bfloat16 where the hardware is fast "
                             "at it (CUDA, CPUs with AVX-512 BF16 or AMX), else float32", choices=AUTOCAST)
    teacher_cache: bool = setting(True, "distill: keep the teacher's targets of every training block in "
                                  "$FEDOT_CACHE/teacher and reuse them (same results, no teacher forward)")
    generated: GenerationSettings = group(GenerationSettings, prefix="generated")

    def check(self) -> None:
        if self.kd_weight == 0 and self.lm_weight == 0:
            raise ValueError("emulator-distill-kd-weight and emulator-distill-lm-weight are both 0: nothing to "
                             "train; set at least one above 0 (the official code uses 30 and 1)")
        parse_mixture(self.corpus, CORPORA.names(), "emulator-distill-corpus")

    @property
    def steps(self) -> int:
        return max(1, -(-self.tokens // (self.batch_size * self.max_length)))

    def uses_generated(self) -> bool:
        return any(CORPORA.entry(name).value.needs_model for name, _ in parse_mixture(self.corpus, CORPORA.names()))

    def identity(self, device) -> dict:
        """The settings that decide the result (what the manifest and a checkpoint record)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("teacher_cache", "generated")}
        if self.kd_distance == "global":  # the only distance before the setting existed: earlier artifacts stay valid
            del out["kd_distance"]
        out["precision"] = resolve_autocast(self.precision, device)
        if self.uses_generated():
            out["generated"] = asdict(self.generated)
        return out


def stored_dtypes(path: Path) -> dict:
    """Each tensor's dtype as an artifact stores it."""
    from safetensors import safe_open

    from ...artifact import weight_files

    out = {}
    for name, file in weight_files(path).items():
        with safe_open(path / file, "pt") as f:
            out[name] = f.get_slice(name).get_dtype()
    return {n: {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}.get(d, torch.float32)
            for n, d in out.items()}


@METHODS.register("distill", help="kept middle blocks trained to imitate the full middle (Eq. 1, the official loss)",
                  settings=DistillSettings)
class Distill(Method):
    def params(self) -> dict:
        return self.settings.identity(default_device())

    def owner_text(self, model_dir: Path, tokenizer) -> OwnerText:
        cfg = self.settings

        def streams(name: str, split: str):
            if CORPORA.entry(name).value.needs_model:
                return generated_stream(model_dir, tokenizer, cfg.generated, split)
            return token_stream(name, split, tokenizer, self.spec.data_dir)

        return OwnerText(cfg.corpus, tokenizer, cfg.max_length, streams=streams)

    def finish(self, staged: Path, out: Path, model_dir: Path, monitor=None) -> Path:
        """Distil the layer-dropped artifact against the full model; write it to ``out`` with the result recorded.

        Progress is checkpointed beside ``out`` (``<out>.distill``): building the same emulator again after an
        interruption continues where it stopped; the checkpoint is removed once the artifact is final.
        """
        from ...loader import load_emulator

        cfg = self.settings
        cfg.check()
        device = default_device()
        precision = resolve_autocast(cfg.precision, device)
        # on a GPU with bf16 autocast, frozen weights are stored in bf16 too (the trained middle stays fp32)
        storage = torch.bfloat16 if device.startswith("cuda") and precision == "bfloat16" else torch.float32
        student, manifest = load_emulator(staged, dtype=storage, device=device)
        stored = stored_dtypes(staged)
        middle_indices(manifest)  # a non-sandwich split fails before the teacher is loaded
        tokenizer = load_tokenizer(staged)
        text = self.owner_text(model_dir, tokenizer)
        teacher = load_model(model_dir, dtype=storage, device=device)
        caches = self.teacher_caches(text, model_dir, manifest, teacher.config, precision) if cfg.teacher_cache \
            else None
        checkpoint = out.with_name(out.name + ".distill")
        try:
            record = distill(student, teacher, text, manifest, cfg, self.params(), precision, checkpoint, monitor,
                             caches)
        finally:
            for cache in caches or []:
                cache.close()
        del teacher
        with torch.no_grad():  # every tensor back to the dtype the artifact stored it in
            for name, p in student.named_parameters():
                p.data = p.data.to(stored.get(name, p.dtype))
        result = {k: record[k] for k in ("held_out_mse_before", "held_out_mse_after", "best_step", "steps",
                                         "train_tokens_per_epoch", "history")}
        path = resave(student, out, staged, {**manifest, "params": {**manifest["params"], "distill_result": result}})
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(checkpoint, ignore_errors=True)
        return path

    def teacher_caches(self, text: OwnerText, model_dir: Path, manifest: dict, config, precision: str) -> list:
        """One cache of the teacher's targets per corpus of ``text``, shared by every emulator cut at this place."""
        t_idx = middle_indices(manifest)[1]
        hidden = int(config.hidden_size)
        return [TeacherCache(cache_dir() / "teacher" / cache_key(content_hash(model_dir), t_idx, s.key,
                                                                 text.length, precision, torch.__version__),
                             s.num_blocks(text.length), text.length, hidden) for s in text.train]
