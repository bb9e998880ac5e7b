"""Dynamic LayerReplace (ScaleOT Eqs. 1-5): learn every block's importance while training its harmonizer.

Each step alternates the paper's two processes on the frozen full model:
DL — sample one LayerReplace candidate (half of each group replaced by
harmonizers) and take a gradient step on the harmonizers it uses, by
next-token loss on the corpus's train split; RL — sample N_c candidates, score
them on one batch of the validation split, and move the importance scores of
the blocks each candidate kept by its reward (Eq. 5). The result (scores,
harmonizers, history, plot) is a directory that any number of emulators
(different N_a, alpha, beta) are created from without retraining.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ....architectures import blocks_of, num_blocks
from ....bars import bar
from ....corpora import OwnerText, parse_mixture, text_corpora
from ....settings import group, setting
from .harmonizer import HARMONIZERS, new_harmonizers, save_harmonizers
from .policy import groups, sample_kept, update_scores

IMPORTANCE = "importance.json"


@dataclass
class LayerReplaceConfig:
    corpus: str = setting("wikitext2", "Dynamic LayerReplace text: a corpus (" + ", ".join(text_corpora()) + ") or a "
                          "weighted mixture (train split: harmonizers, validation: rewards)")
    steps: int = setting(300, "Dynamic LayerReplace steps", ge=1)
    lr: float = setting(1e-3, "harmonizer learning rate (the scores follow Eq. 5, which has no step size)", gt=0)
    batch_size: int = setting(4, "LayerReplace sequences per step", ge=1)
    max_length: int = setting(128, "LayerReplace tokens per sequence", ge=2)
    rank: int = setting(64, "harmonizer rank (the paper's rank for medium-size models)", ge=1)
    n_groups: int = setting(4, "N_g: groups of adjacent blocks", ge=1)
    n_candidates: int = setting(3, "N_c: candidates scored per step (Eq. 4's reward is relative to the others)", ge=2)
    eval_every: int = setting(50, "LayerReplace steps between held-out checks", ge=1)
    seed: int = setting(0, "LayerReplace sampling seed", ge=0)

    def check(self) -> None:
        parse_mixture(self.corpus, text_corpora(), "emulator-scaleot-replace-corpus")


@dataclass
class ImportanceCommand:
    """`fedot emulator importance`: the model to score and the LayerReplace settings (keys as in a scaleot build)."""

    model: str = setting("smollm2-135m", "the model whose blocks are scored", key="model")
    replace: LayerReplaceConfig = group(LayerReplaceConfig, prefix="emulator-scaleot-replace")


def learn_importance(model, tokenizer, cfg: LayerReplaceConfig, data_dir=None) -> dict:
    """Run Dynamic LayerReplace on ``model`` (left unchanged); returns scores, harmonizers and history."""
    from transformers import get_cosine_schedule_with_warmup

    n = num_blocks(model.config)
    grouping = groups(n, cfg.n_groups)
    if any(len(g) < 2 for g in grouping):
        raise ValueError(f"groups of {n} blocks into N_g={cfg.n_groups} leave a group with one block; lower N_g")
    text = OwnerText(cfg.corpus, tokenizer, cfg.max_length, data_dir, allowed=text_corpora())
    held = text.held_out(4 * cfg.batch_size)  # fixed batches for the history; rewards sample all of validation

    device = next(model.parameters()).device
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    model.requires_grad_(False).eval()  # eval: the frozen model runs without dropout
    layers = blocks_of(model)
    blocks = list(layers)
    harmonizers = {i: h.to(device) for i, h in new_harmonizers(model.config, cfg.rank, range(n)).items()}
    params = [p for h in harmonizers.values() for p in h.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    sched = get_cosine_schedule_with_warmup(opt, max(1, cfg.steps // 20), cfg.steps)

    def use(kept: set[int]) -> None:
        for i in range(n):
            layers[i] = blocks[i] if i in kept else harmonizers[i]

    def nll(batch) -> torch.Tensor:
        ids = torch.tensor(batch, device=device)
        return model(input_ids=ids, labels=ids, use_cache=False).loss

    def held_out(kept: set[int]) -> float:
        use(kept)
        with torch.no_grad():
            losses = [nll(held[i:i + cfg.batch_size]).item() for i in range(0, len(held), cfg.batch_size)]
            return sum(losses) / len(losses)

    def top_half(scores) -> set[int]:
        return {i for g in grouping for i in sorted(g, key=lambda i: -scores[i])[: len(g) // 2]}

    scores = [0.0] * n
    history = [{"step": 0, "held_out_full": held_out(set(range(n))), "held_out_top_half": held_out(top_half(scores))}]
    window: list[float] = []
    try:
        for step in bar(range(1, cfg.steps + 1), desc="Dynamic LayerReplace"):
            use(sample_kept(scores, grouping, rng))  # DL: one candidate, harmonizers learn by next-token loss
            loss = nll(text.batch(rng, cfg.batch_size))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            window.append(loss.item())
            batch = text.batch(rng, cfg.batch_size, "validation")  # RL: N_c candidates on one validation batch
            candidates = [sample_kept(scores, grouping, rng) for _ in range(cfg.n_candidates)]
            losses = []
            with torch.no_grad():
                for kept in candidates:
                    use(kept)
                    losses.append(nll(batch).item())
            if not all(math.isfinite(v) for v in losses + window[-1:]):
                raise RuntimeError(f"Dynamic LayerReplace diverged at step {step} (losses {losses}); "
                                   "lower emulator-scaleot-replace-lr")
            scores = update_scores(scores, candidates, losses)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                history.append({"step": step, "train_loss": sum(window) / len(window),
                                "held_out_top_half": held_out(top_half(scores)), "scores": list(scores)})
                window = []
    finally:
        use(set(range(n)))  # the full model again, whatever happened
    return {"scores": scores, "groups": grouping, "harmonizers": harmonizers, "history": history,
            "held_out_full": history[0]["held_out_full"], "config": asdict(cfg)}


def save_importance(out: str | Path, result: dict, source_model: str) -> Path:
    """Write ``importance.json``, ``harmonizers.safetensors`` and the score plot to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_harmonizers(out / HARMONIZERS, result["harmonizers"])
    record = {"source_model": source_model, **{k: v for k, v in result.items() if k != "harmonizers"}}
    (out / IMPORTANCE).write_text(json.dumps(record, indent=2) + "\n")
    plot_importance(record, out / "importance.png")
    return out


def read_importance(path: str | Path, num_blocks: int) -> dict:
    """The saved scores of ``path``; errors name the fix when it is missing or for another model."""
    path = Path(path)
    if not (path / IMPORTANCE).exists() or not (path / HARMONIZERS).exists():
        raise FileNotFoundError(f"{path} holds no importance scores ({IMPORTANCE} + {HARMONIZERS}); "
                                "create them with `fedot emulator importance --out DIR`")
    record = json.loads((path / IMPORTANCE).read_text())
    if len(record["scores"]) != num_blocks:
        raise ValueError(f"{path} scores {len(record['scores'])} blocks but the model has {num_blocks}; "
                         "the importance was learned on another model")
    return record


def importance_for(model_dir: Path, source_model: str, cfg: LayerReplaceConfig, cache: Path, data_dir=None) -> Path:
    """The cached importance directory for (model, cfg), learning it first if needed."""
    from ....models import default_device, load_model, load_tokenizer

    weights = [(f.name, f.stat().st_size) for f in sorted(model_dir.glob("*.safetensors"))]
    key = hashlib.sha256(json.dumps([str(model_dir), weights, asdict(cfg)], sort_keys=True).encode()).hexdigest()[:16]
    out = cache / "importance" / key
    if (out / IMPORTANCE).exists():
        return out
    model = load_model(model_dir, device=default_device())
    return save_importance(out, learn_importance(model, load_tokenizer(model_dir), cfg, data_dir), source_model)


def plot_importance(record: dict, out: Path, selection: dict | None = None) -> Path:
    """Importance score per block, groups shaded (ScaleOT Fig. 6); adapter/harmonized marked when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = record["scores"]
    colors = ["tab:blue"] * len(scores)
    if selection:
        for i in selection["adapter"]:
            colors[i] = "tab:red"
        for i in selection["harmonized"]:
            colors[i] = "tab:gray"
    fig, ax = plt.subplots(figsize=(max(6, len(scores) * 0.28), 3.2))
    for j, g in enumerate(record["groups"]):
        if j % 2:
            ax.axvspan(g[0] - 0.5, g[-1] + 0.5, color="0.93", zorder=0)
    ax.bar(range(len(scores)), scores, color=colors, zorder=2)
    ax.set_xlabel("block")
    ax.set_ylabel("importance score s_i")
    steps = record["config"]["steps"]
    corpus = record["config"]["corpus"]
    ax.set_title(f"{record['source_model']}: Dynamic LayerReplace importance ({steps} steps, {corpus})")
    if selection:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color="tab:red", label="adapter"), Patch(color="tab:gray", label="harmonizer"),
                           Patch(color="tab:blue", label="emulator (SRC)")], fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
