"""Where the emulator's middle is wrong: per position, at the cut Eq. 1 compares (the hidden state leaving the middle).

Measures, on sequences of a validation split (never a test split), the full model's energy per position at the cut
(the attention sink: a massive activation on the first position of Llama-family models) and, for each emulator given,
the relative squared error per position (error energy / target energy): at the first position, and the mean,
quantiles and maximum over the rest (one spurious sink, a massive activation the emulator puts where the full model
has none, is a relative error of ~1,000 and moves the mean alone, so the quantiles are the robust reading), the count
of spurious sinks (the emulator's energy > 100x the full model's there), the median cosine similarity of the rest,
and both distances distillation can train (``fedot.emulator.middle``). Writes one
JSON with the command.

    FEDOT_DATA_DIR=../shared/data .venv/bin/python bench/sink.py \\
        --emulators UNIFORM_ARTIFACT DISTILLED_ARTIFACT ... --out bench/results/sink.json

(bench/results/sink.json: layer-drop 18 and the two 200K-token Gutenberg emulators of docs/results/distillation.md.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sequences(tokenizer, task: str, count: int, length: int, data_dir=None) -> list[list[int]]:
    """``count`` consecutive ``length``-token windows of the task's validation text (documents joined by EOS)."""
    from fedot.evaluation.scoring import docs_of

    ids: list[int] = []
    for doc in docs_of(task, "validation", None, data_dir):
        ids += tokenizer(doc["page"])["input_ids"] + [tokenizer.eos_token_id]
        if len(ids) >= count * length:
            break
    if len(ids) < count * length:
        raise SystemExit(f"{task}'s validation split has {len(ids)} tokens; --sequences x --length needs "
                         f"{count * length}")
    return [ids[i * length:(i + 1) * length] for i in range(count)]


def position_stats(target, hidden=None) -> dict:
    import torch

    from fedot.emulator.middle import KD_DISTANCES

    energy = target.pow(2).mean(-1)  # per position
    out = {"rms_first": energy[:, 0].sqrt().mean().item(), "rms_rest_median": energy[:, 1:].sqrt().median().item(),
           "energy_share_first": (energy[:, 0] / energy.sum(-1)).mean().item()}
    if hidden is not None:
        rel = (target - hidden).pow(2).mean(-1) / energy
        rest = rel[:, 1:].flatten()
        cos = torch.nn.functional.cosine_similarity(target, hidden, dim=-1)
        spurious = hidden.pow(2).mean(-1)[:, 1:] > 100 * energy[:, 1:]  # a sink the full model does not have there
        out = {"relative_error_first": rel[:, 0].mean().item(), "relative_error_rest_mean": rest.mean().item(),
               **{f"relative_error_rest_q{q}": rest.quantile(q / 100).item() for q in (50, 90, 99)},
               "relative_error_rest_max": rest.max().item(), "cosine_rest_median": cos[:, 1:].median().item(),
               "spurious_sinks": int(spurious.sum()),
               **{f"{name}_distance": d(target, hidden).item() for name, d in KD_DISTANCES.items()}}
    return out


def main(argv=None):
    import torch

    from fedot.emulator import load_emulator
    from fedot.emulator.middle import middle_indices
    from fedot.models import load_model, load_tokenizer, resolve

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--emulators", nargs="+", default=[], help="emulator artifact folders (sandwich splits)")
    p.add_argument("--task", default="wikitext2", help="a corpus task; its validation split is read")
    p.add_argument("--sequences", type=int, default=8)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--out", default=str(ROOT / "bench/results/sink.json"))
    args = p.parse_args(argv)
    model_dir = resolve(args.model)
    tokenizer = load_tokenizer(model_dir)
    batch = torch.tensor(sequences(tokenizer, args.task, args.sequences, args.length))
    teacher = load_model(model_dir).eval()
    with torch.no_grad():
        full_states = teacher(input_ids=batch, output_hidden_states=True).hidden_states
    record = {"command": "python bench/sink.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "model": args.model, "task": args.task, "split": "validation", "sequences": args.sequences,
              "length": args.length, "emulators": {}}
    for path in args.emulators:
        emulator, manifest = load_emulator(path)
        s_idx, t_idx = middle_indices(manifest)
        with torch.no_grad():
            hidden = emulator.eval()(input_ids=batch, output_hidden_states=True).hidden_states[s_idx]
        target = full_states[t_idx].float()
        cuts = record.setdefault("full_model_at_cut", {})
        if str(t_idx) not in cuts:  # emulators cut at the same place share the full model's numbers
            cuts[str(t_idx)] = position_stats(target)
        params = manifest["params"]
        record["emulators"][Path(path).name] = {
            "method": manifest["method"], "emulator_blocks": len(manifest["emulator_blocks"]), "cut": t_idx,
            "distill": None if manifest["method"] != "distill" else {
                "corpus": params["corpus"], "tokens": params["tokens"],
                "kd_distance": params.get("kd_distance", "global")},
            **position_stats(target, hidden.float())}
        del emulator
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
