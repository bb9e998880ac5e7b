"""The ``fedot`` command line: each sub-command wires arguments to one library call."""

from __future__ import annotations

import argparse
import json
import sys


def _emulator_build(args):
    out, _ = _spec(args).build(args.out)
    print(f"emulator written to {out}")
    _info(argparse.Namespace(path=str(out)))


def _importance(args):
    from .emulator.scaleot import learn_importance, save_importance
    from .models import default_device, load_model, load_tokenizer, resolve

    cfg = _layer_replace(args)
    cfg.check()
    model_dir = resolve(args.model)
    result = learn_importance(load_model(model_dir, device=default_device()), load_tokenizer(model_dir), cfg)
    out = save_importance(args.out, result, args.model)
    print(f"importance scores, harmonizers and plot written to {out}")
    for j, g in enumerate(result["groups"]):
        print(f"group {j}: " + "  ".join(f"{i}:{result['scores'][i]:+.4f}" for i in g))


def _plugin(args):
    from .plugin import plug_in_dir

    print(f"plugged-in model written to {plug_in_dir(args.model, args.adapter, args.out)}")


def _info(args):
    from .emulator import read_manifest
    from .sizes import artifact_sizes

    manifest = read_manifest(args.path, verify=True)
    print(json.dumps(manifest, indent=2))
    sizes = artifact_sizes(args.path)
    full = sizes["params"]["full_model"]
    print(f"\n{'':<24}{'parameters':>14}{'bytes':>16}{'of full':>9}")
    for key, n in sizes["params"].items():
        print(f"{key:<24}{n:>14,}{sizes['bytes'][key]:>16,}{n / full:>9.1%}")
    print(f"artifact file: {sizes['artifact_file_bytes']:,} bytes (sha256 verified)")


def _offsite(args):
    from .pipeline import OffsiteConfig, run
    from .train import TrainConfig
    from .tuning import TuningConfig

    mode = args.tuning or ("lora" if args.lora_rank else "full")
    cfg = OffsiteConfig(
        emulator=_spec(args), task=args.task,
        tuning=TuningConfig(mode=mode, lora_rank=args.lora_rank or 4, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                            lora_targets=args.lora_targets),
        train=TrainConfig(lr=args.lr[0], epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
                          grad_accum=args.grad_accum, max_length=args.max_length, eval_every=args.eval_every, seed=args.seed),
        lrs=args.lr, full_ft=args.full_ft, limit=args.limit, val_limit=args.val_limit, train_limit=args.train_limit,
        device=args.device,
    )
    run(cfg, args.out, command="fedot " + " ".join(sys.argv[1:]))


def _sim(args):
    from .sim import run_sim

    run_sim(args.app, args.run_config, args.num_clients, args.run_dir, args.keep_superlink)


def _compare(args):
    from .compare import compare

    compare(args.runs, args.out)


def _emulator_args(p):
    from .emulator import METHODS
    from .models import DEFAULT_MODEL

    p.add_argument("--model", default=DEFAULT_MODEL, help="hub id, model directory, .gguf file or 'smollm2-135m'")
    p.add_argument("--bottom", type=int, default=2, help="adapter blocks at the bottom")
    p.add_argument("--top", type=int, default=2, help="adapter blocks at the top")
    p.add_argument("--emulator-layers", type=int, default=None, help="middle blocks kept (default: all, lossless)")
    p.add_argument("--method", default="uniform", choices=METHODS, help="compression of the kept emulator blocks")
    p.add_argument("--sparsity", type=float, default=0.5, help="prune: fraction of weights zeroed")
    p.add_argument("--bits", type=int, default=4, help="quantize: bits per weight")
    p.add_argument("--src-ratio", type=float, default=None,
                   help="SRC beta: fraction of attention rank removed from kept emulator blocks (default 0.8 for scaleot, else 0)")
    p.add_argument("--distill-corpus", default="wikitext2", help="distill: corpus task (train: fit, validation: select)")
    p.add_argument("--distill-steps", type=int, default=200)
    p.add_argument("--distill-lr", type=float, default=1e-4)
    p.add_argument("--distill-batch-size", type=int, default=4)
    p.add_argument("--distill-max-length", type=int, default=256)
    p.add_argument("--n-adapter", type=int, default=4, help="scaleot: N_a adapter blocks (a multiple of N_g)")
    p.add_argument("--alpha", type=float, default=0.25, help="scaleot: fraction of blocks replaced by harmonizers")
    p.add_argument("--importance", default="", help="scaleot: directory from `fedot emulator importance` (default: learn and cache)")
    _layer_replace_args(p)


def _layer_replace_args(p):
    p.add_argument("--replace-corpus", default="wikitext2", help="Dynamic LayerReplace corpus (train: harmonizers, validation: rewards)")
    p.add_argument("--replace-steps", type=int, default=300, help="Dynamic LayerReplace steps")
    p.add_argument("--replace-lr", type=float, default=1e-3, help="harmonizer learning rate")
    p.add_argument("--replace-batch-size", type=int, default=4)
    p.add_argument("--replace-max-length", type=int, default=128)
    p.add_argument("--harmonizer-rank", type=int, default=64)
    p.add_argument("--n-groups", type=int, default=4, help="N_g")
    p.add_argument("--n-candidates", type=int, default=3, help="N_c")


def _layer_replace(args):
    from .emulator import LayerReplaceConfig

    return LayerReplaceConfig(corpus=args.replace_corpus, steps=args.replace_steps, lr=args.replace_lr, batch_size=args.replace_batch_size,
                              max_length=args.replace_max_length, rank=args.harmonizer_rank, n_groups=args.n_groups,
                              n_candidates=args.n_candidates)


def _spec(args):
    from .emulator import DistillConfig, EmulatorSpec

    distill = DistillConfig(corpus=args.distill_corpus, steps=args.distill_steps, lr=args.distill_lr,
                            batch_size=args.distill_batch_size, max_length=args.distill_max_length)
    return EmulatorSpec(args.model, args.bottom, args.top, args.emulator_layers, args.method, args.sparsity, args.bits,
                        args.src_ratio, distill, args.n_adapter, args.alpha, args.importance, _layer_replace(args))


def parser() -> argparse.ArgumentParser:
    from .tasks import TASKS
    from .tuning import MODES

    p = argparse.ArgumentParser(prog="fedot", description="Federated offsite-tuning.")
    sub = p.add_subparsers(dest="command", required=True)

    emu = sub.add_parser("emulator", help="build emulators").add_subparsers(dest="action", required=True)
    b = emu.add_parser("build", help="split a model and write the emulator artifact a data owner receives")
    _emulator_args(b)
    b.add_argument("--out", required=True)
    b.set_defaults(func=_emulator_build)

    im = emu.add_parser("importance", help="ScaleOT Dynamic LayerReplace: learn block importance and harmonizers once")
    im.add_argument("--model", default="smollm2-135m")
    _layer_replace_args(im)
    im.add_argument("--out", required=True)
    im.set_defaults(func=_importance)

    pl = sub.add_parser("plugin", help="plug a tuned adapter into the full model and save it")
    pl.add_argument("--model", default="smollm2-135m")
    pl.add_argument("--adapter", required=True, help="adapter.safetensors written by a run or a client")
    pl.add_argument("--out", required=True)
    pl.set_defaults(func=_plugin)

    o = sub.add_parser("offsite", help="single-site offsite-tuning with the five-metric evaluation")
    _emulator_args(o)
    o.add_argument("--task", default="pydocs", choices=TASKS)
    o.add_argument("--tuning", choices=MODES, default=None, help="adapter tuning (default: full, or lora with --lora-rank)")
    o.add_argument("--lora-rank", type=int, default=None)
    o.add_argument("--lora-alpha", type=float, default=None, help="default: 2 x rank")
    o.add_argument("--lora-dropout", type=float, default=0.0)
    o.add_argument("--lora-targets", default=None, help="comma-separated module names (default: per family)")
    o.add_argument("--lr", type=float, nargs="+", default=[1e-4], help="one or more; the best by emulator validation is kept")
    o.add_argument("--epochs", type=float, default=1.0)
    o.add_argument("--max-steps", type=int, default=None)
    o.add_argument("--batch-size", type=int, default=4)
    o.add_argument("--grad-accum", type=int, default=1)
    o.add_argument("--max-length", type=int, default=512)
    o.add_argument("--eval-every", type=int, default=None, help="validate every N steps and keep the best")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--full-ft", action="store_true", help="also fine-tune the full model (the FT baseline)")
    o.add_argument("--limit", type=int, default=None, help="test examples (documents for corpora)")
    o.add_argument("--val-limit", type=int, default=200)
    o.add_argument("--train-limit", type=int, default=None, help="training examples (documents for corpora)")
    o.add_argument("--device", default=None)
    o.add_argument("--out", required=True)
    o.set_defaults(func=_offsite)

    sm = sub.add_parser("sim", help="run a sims/<experiment> Flower app and fail unless the run completed")
    sm.add_argument("app", help="a folder in sims/, e.g. sims/quickstart")
    sm.add_argument("--run-config", action="append", default=[], help="'key=value ...' overrides (repeatable)")
    sm.add_argument("--num-clients", type=int, default=None, help="simulated data owners (overrides num-supernodes)")
    sm.add_argument("--run-dir", default=None, help="output directory (default: runs/<app>-<time>)")
    sm.add_argument("--keep-superlink", action="store_true", help="leave the local SuperLink running afterwards")
    sm.set_defaults(func=_sim)

    c = sub.add_parser("compare", help="compare run directories: five numbers, plug-in per round, bytes")
    c.add_argument("runs", nargs="+")
    c.add_argument("--out", required=True)
    c.set_defaults(func=_compare)

    i = sub.add_parser("info", help="print an emulator artifact's manifest and sizes")
    i.add_argument("path")
    i.set_defaults(func=_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, RuntimeError) as e:
        print(f"fedot: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
