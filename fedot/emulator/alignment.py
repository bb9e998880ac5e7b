"""Per-round emulator alignment (FedBiOT, Wu et al., KDD 2024): the owner re-fits the emulator to the full model with
the current adapter in place, after every aggregation.

Offsite-tuning fixes the emulator once, fitted (Eq. 1) to the full model with the *original* adapter. As the data
owners move the adapter, the middle it was fitted for drifts from the middle it is used with. FedBiOT makes this a
bi-level problem: the data owners solve the lower level (the adapter A, the emulator E fixed), the model owner the
upper level (E, with the aggregated A_t fixed) on its own public data. After round t the owner minimises, with A_t
plugged into both the full model and the emulator,

    L(E) = mean(((h_full(x; A_t) - h_emu(x; E, A_t)) / rms(h_full))^2)
           + kl_weight * KL(p_full(.|x; A_t) || p_emu(.|x; E, A_t))

where h is the hidden state leaving the middle (FedBiOT's ``l2_norm`` between the emulator's output and its full
counterpart, the normalised MSE of offsite-tuning's Eq. 1; ``distance = token`` normalises each position by its own
energy, :func:`fedot.emulator.middle.token_normalised_mse`) and p the next-token distributions (FedBiOT's KL term,
``kd_loss_weight``; KL summed over the vocabulary, averaged over tokens, as its ``get_kd_kl_divergence``). The
corpus is the owner's public data (never the task's test split); each round draws new batches, seeded by
(seed, round, step). Only the emulator's middle blocks train (FedBiOT trains LoRA factors on them; fedot trains the
blocks themselves, as its distillation does), with a fresh AdamW each round as FedBiOT's server trainer: the
adapter, embeddings and head stay what they were, so the changed middle blocks are all a data owner needs again
(:mod:`fedot.emulator.shards`). The distance is measured on held-out batches of the corpus before and after.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..corpora import OwnerText, parse_mixture, text_corpora
from ..precision import model_autocast
from ..registry import Registry
from ..settings import selector, setting
from .middle import KD_DISTANCES, middle_indices, middle_parameters


class Alignment:
    """No alignment: the emulator is the one built before round 1 for the whole run (offsite-tuning)."""

    name: ClassVar[str] = "none"
    enabled: ClassVar[bool] = False

    def __init__(self, cfg: AlignmentConfig, tokenizer=None, data_dir=None):
        self.cfg = cfg

    def check(self, manifest: dict) -> None:
        """Refuse an emulator this alignment cannot work on, before any round."""


class FedBiOT(Alignment):
    name, enabled = "fedbiot", True

    def __init__(self, cfg: AlignmentConfig, tokenizer=None, data_dir=None):
        super().__init__(cfg)
        self.text = OwnerText(cfg.corpus, tokenizer, cfg.max_length, data_dir, allowed=text_corpora())
        self.held = self.text.held_out(cfg.held_out_batches * cfg.batch_size)

    def check(self, manifest: dict) -> None:
        middle_indices(manifest)  # a sandwich adapter: the hidden state leaving the middle exists in both models

    def terms(self, student, teacher, indices: tuple[int, int], batch: list[list[int]]):
        """(normalised MSE of the middle's output, KL of the next-token distributions) on one batch."""
        ids = torch.tensor(batch, device=next(student.parameters()).device)
        with torch.no_grad(), model_autocast(teacher):
            target = teacher(input_ids=ids, output_hidden_states=True)
        with model_autocast(student):
            out = student(input_ids=ids, output_hidden_states=True)
        mse = KD_DISTANCES[self.cfg.distance](target.hidden_states[indices[1]], out.hidden_states[indices[0]])
        log_t = F.log_softmax(target.logits.float(), dim=-1)
        kl = (log_t.exp() * (log_t - F.log_softmax(out.logits.float(), dim=-1))).sum(-1).mean()
        return mse, kl

    def distance(self, student, teacher, indices) -> dict:
        """The objective and its terms on the held-out batches."""
        with torch.no_grad():
            terms = [self.terms(student, teacher, indices, self.held[i:i + self.cfg.batch_size])
                     for i in range(0, len(self.held), self.cfg.batch_size)]
        mse, kl = (sum(t[k].item() for t in terms) / len(terms) for k in (0, 1))
        return {"mse": mse, "kl": kl, "objective": mse + self.cfg.kl_weight * kl}

    def align(self, student, teacher, manifest: dict, server_round: int, seed: int = 0) -> dict:
        """Train ``student``'s middle blocks in place toward ``teacher`` (both with the current adapter in place).

        Returns the record (held-out distance before and after, loss per step, seconds) and ``tensors``: the
        middle's new values by the artifact's (local) tensor names.
        """
        t0, cfg = time.perf_counter(), self.cfg
        params = middle_parameters(student, manifest)
        indices = middle_indices(manifest)
        teacher.eval()
        was_training = student.training
        student.eval()  # no dropout: the distance is deterministic
        before = self.distance(student, teacher, indices)
        frozen = {n: p.requires_grad for n, p in student.named_parameters()}
        student.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        # a 16-bit emulator trains through fp32 master copies: AdamW's small steps would round away in bf16
        masters = {n: p.detach().float().clone().requires_grad_(True) for n, p in params.items()} \
            if any(p.dtype != torch.float32 for p in params.values()) else params
        opt = torch.optim.AdamW(list(masters.values()), lr=cfg.lr, weight_decay=0.0)
        losses = []
        try:
            for step in range(1, cfg.steps + 1):
                batch = self.text.batch(f"{seed}:{server_round}:{step}", cfg.batch_size)
                mse, kl = self.terms(student, teacher, indices, batch)
                loss = mse + cfg.kl_weight * kl
                loss.backward()
                if masters is not params:
                    for n, p in params.items():
                        masters[n].grad, p.grad = p.grad.float(), None
                torch.nn.utils.clip_grad_norm_(list(masters.values()), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                if masters is not params:
                    with torch.no_grad():
                        for n, p in params.items():
                            p.copy_(masters[n])
                losses.append(loss.item())
        finally:
            for n, p in student.named_parameters():
                p.requires_grad_(frozen[n])
        after = self.distance(student, teacher, indices)
        student.train(was_training)
        return {"method": self.name, "steps": cfg.steps, "distance_before": before, "distance_after": after,
                "losses": losses, "seconds": time.perf_counter() - t0,
                "tensors": {n: p.detach() for n, p in masters.items()}}


ALIGNMENTS: Registry[type[Alignment]] = Registry("emulator alignment")
ALIGNMENTS.register("none", Alignment, help="the emulator built before round 1 is kept for the whole run "
                    "(offsite-tuning)")
ALIGNMENTS.register("fedbiot", FedBiOT, help="after each aggregation the owner distils the emulator's middle toward "
                    "the full model with the aggregated adapter in both (FedBiOT), and sends the changed blocks")


@dataclass
class AlignmentConfig:
    method: str = selector(ALIGNMENTS, "none", "per-round emulator alignment", key="emulator-alignment")
    steps: int = setting(10, "alignment: the owner's optimizer steps after each aggregation", ge=1)
    lr: float = setting(1e-4, "alignment: learning rate of the emulator's middle blocks (AdamW, fresh each round)",
                        gt=0)
    corpus: str = setting("wikitext2", "alignment: the owner's public text, a corpus (" + ", ".join(text_corpora())
                          + ") or a weighted mixture (train split: steps, validation split: the distance recorded); "
                          "never the evaluated task's test split")
    kl_weight: float = setting(1.0, "alignment: weight of the KL of the next-token distributions beside the "
                               "normalised hidden-state MSE (FedBiOT's kd_loss_weight)", ge=0)
    distance: str = setting("global", "alignment: the hidden-state distance; global: Eq. 1's (one RMS over the "
                            "batch), token: each position in units of its own energy (as emulator-distill-kd-distance)",
                            choices=tuple(KD_DISTANCES))
    batch_size: int = setting(4, "alignment: sequences per step", ge=1)
    max_length: int = setting(128, "alignment: tokens per sequence", ge=2)
    held_out_batches: int = setting(2, "alignment: validation batches the distance before and after is measured on",
                                    ge=1)

    def check(self) -> None:
        parse_mixture(self.corpus, text_corpora(), "emulator-alignment-corpus")

    @property
    def enabled(self) -> bool:
        return ALIGNMENTS[self.method].enabled

    def build(self, tokenizer=None, data_dir=None) -> Alignment:
        return ALIGNMENTS[self.method](self, tokenizer, data_dir)

