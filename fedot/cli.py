"""The ``fedot`` command line: each sub-command wires arguments to one library call.

Every settings flag is derived from the settings' declarations (``fedot.settings``): a flag is ``--`` + the setting's
run-config key, with the declared default, range and help.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .settings import SettingError, add_arguments, from_args

ROOT = Path(__file__).resolve().parents[1]


def _emulator_build(args):
    from .emulator import EmulatorSpec

    spec = from_args(EmulatorSpec, args)
    if args.plan:
        print(spec.plan_text())
        return
    if not args.out:
        raise ValueError("fedot emulator build needs --out DIR (or --plan to only print what it would build)")
    out, _ = spec.build(args.out)
    print(f"emulator written to {out}")
    _info(argparse.Namespace(path=str(out)))


def _importance(args):
    from .emulator.methods.scaleot.importance import ImportanceCommand, learn_importance, save_importance
    from .models import default_device, load_model, load_tokenizer, resolve

    cfg = from_args(ImportanceCommand, args)
    model_dir = resolve(cfg.model)
    result = learn_importance(load_model(model_dir, device=default_device()), load_tokenizer(model_dir), cfg.replace)
    out = save_importance(args.out, result, cfg.model)
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
    for key, value in manifest.items():
        print(f"{key:<18}{json.dumps(value)}" if key != "files" else f"{key:<18}{', '.join(value)}")
    sizes = artifact_sizes(args.path)
    full = sizes["params"]["full_model"]
    print(f"\n{'':<24}{'parameters':>14}{'bytes':>16}{'of full':>9}")
    for key, n in sizes["params"].items():
        print(f"{key:<24}{n:>14,}{sizes['bytes'][key]:>16,}{n / full:>9.1%}")
    print(f"artifact file: {sizes['artifact_file_bytes']:,} bytes; {len(manifest['files'])} files, all sha256 verified")


def _offsite(args):
    from .run.single_site import OffsiteConfig, run

    run(from_args(OffsiteConfig, args), args.out, command="fedot " + " ".join(sys.argv[1:]))


def _frontier(args):
    from .run.frontier import FrontierConfig, run_frontier

    run_frontier(from_args(FrontierConfig, args), args.out, command="fedot " + " ".join(sys.argv[1:]))


def _eval(args):
    from .evaluation.command import EvalCommand, result_text, run_eval
    from .files import write_json

    result = run_eval(from_args(EvalCommand, args))
    print(result_text(result))
    if args.json:
        print(f"written to {write_json(args.json, result)}")


def _run_overrides(args) -> dict:
    """A sim's settings from the command line, parsed once: ``--run-config`` strings (Flower's syntax), then the
    setting flags (``--num-rounds 5``), which win."""
    from .run.config import FederatedConfig
    from .run.launch import parse_overrides
    from .settings import given

    return {**parse_overrides(args.run_config), **given(FederatedConfig, args)}


def _sim(args):
    from .run.launch import parse_overrides, run_sim, show_plan

    resources = parse_overrides(args.federation_config)
    if args.plan:
        sys.exit(0 if show_plan(args.app, _run_overrides(args), args.plan_gpus, args.plan_gpu_gib, resources) else 1)
    run_sim(args.app, _run_overrides(args), args.keep_alive, args.print_config, overwrite=args.overwrite,
            resources=resources)


def _deploy(args):
    from .run.deploy import run_deployed

    run_deployed(args.app, args.dir, _run_overrides(args), tls=not args.insecure, auth=args.auth,
                 overwrite=args.overwrite)


def _serve(args):
    from .delivery.url import server

    httpd = server(args.path, args.host, args.port)
    print(f"serving {args.path} at http://{args.host}:{httpd.server_address[1]} (Ctrl-C stops)", flush=True)
    httpd.serve_forever()


def _stop(args):
    from .run.services import flwr_home, stop_all

    stopped = stop_all(flwr_home())
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing kept alive was running")


def _study(args):
    import shlex

    from .run.launch import run_sim
    from .run.study import load_study, run_study
    from .run.study.runner import render_study

    study = load_study(args.study)
    out = Path(args.out or Path("runs") / f"study-{study.name}").resolve()
    command = "fedot " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["study"] else ""
    if args.render:
        render_study(study, out, command)
        return

    def launch(sim, overrides, fresh):
        run_sim(sim, overrides, overwrite=fresh)

    run_study(study, out, launch, plan_only=args.plan, command=command)


def _compare(args):
    from .run.compare import compare

    compare(args.runs, args.out)


def _render(args):
    from .run.results import render

    render(args.run)


def _settings(args):
    from .run.config import FederatedConfig
    from .run.sim_folder import all_sims
    from .settings import markdown_table, settings_text

    if args.sync:
        for sim in all_sims(ROOT / "sims"):
            print(f"{sim.file}: {'rewritten' if sim.sync() else 'up to date'}")
        print(f"README.md: {'rewritten' if sync_readme(markdown_table(FederatedConfig)) else 'up to date'}")
    elif args.markdown:
        print(markdown_table(FederatedConfig), end="")
    else:
        print(settings_text(FederatedConfig()))


README_BEGIN, README_END = "<!-- settings:begin -->\n", "<!-- settings:end -->\n"


def sync_readme(table: str, readme: Path = ROOT / "README.md") -> bool:
    """Replace the settings table between the README's markers; True when it changed."""
    text = readme.read_text()
    head, rest = text.split(README_BEGIN, 1)
    new = head + README_BEGIN + table + README_END + rest.split(README_END, 1)[1]
    if new != text:
        readme.write_text(new)
    return new != text


def parser() -> argparse.ArgumentParser:
    from .emulator import EmulatorSpec
    from .models import DEFAULT_MODEL
    from .run.single_site import OffsiteConfig

    p = argparse.ArgumentParser(prog="fedot", description="Federated offsite-tuning.")
    sub = p.add_subparsers(dest="subcommand", required=True)

    emu = sub.add_parser("emulator", help="build emulators").add_subparsers(dest="action", required=True)
    b = emu.add_parser("build", help="split a model and write the emulator artifact a data owner receives")
    add_arguments(b, EmulatorSpec)
    b.add_argument("--out", default=None)
    b.add_argument("--plan", action="store_true", help="print the split, the artifact's tensors and bytes by block "
                   "and, with a sharded checkpoint at hand, the shards read; from the config alone (no weights, "
                   "offline for the hub models the sims name)")
    b.set_defaults(func=_emulator_build)

    im = emu.add_parser("importance", help="ScaleOT Dynamic LayerReplace: learn block importance and harmonizers once")
    from .emulator.methods.scaleot.importance import ImportanceCommand

    add_arguments(im, ImportanceCommand)
    im.add_argument("--out", required=True)
    im.set_defaults(func=_importance)

    pl = sub.add_parser("plugin", help="plug a tuned adapter into the full model and save it")
    pl.add_argument("--model", default=DEFAULT_MODEL)
    pl.add_argument("--adapter", required=True, help="adapter.safetensors written by a run or a client")
    pl.add_argument("--out", required=True)
    pl.set_defaults(func=_plugin)

    o = sub.add_parser("offsite", help="single-site offsite-tuning with the five-metric evaluation")
    add_arguments(o, OffsiteConfig)
    o.add_argument("--out", required=True)
    o.set_defaults(func=_offsite)

    from .run.frontier import FrontierConfig

    fr = sub.add_parser("frontier", help="the privacy-utility frontier: the five numbers, privacy gap and recovered "
                        "gain for a grid of emulators (method x kept blocks, plus the lossless ceiling); resumable")
    add_arguments(fr, FrontierConfig, skip=("emulator-method", "emulator-blocks", "full-ft"))
    fr.add_argument("--out", required=True)
    fr.set_defaults(func=_frontier)

    from .evaluation.command import EvalCommand

    ev = sub.add_parser("eval", help="score a model (optionally with an adapter plugged in) on a task, cached")
    add_arguments(ev, EvalCommand)
    ev.add_argument("--json", default=None, help="also write the result to this JSON file")
    ev.set_defaults(func=_eval)

    from .run.config import FederatedConfig

    sm = sub.add_parser("sim", help="run a sims/<experiment> Flower app and fail unless the run completed; every "
                        "setting is also a flag (--num-rounds 5, --resume --run-dir DIR, --verbose)")
    sm.add_argument("app", help="a folder in sims/, e.g. sims/quickstart")
    sm.add_argument("--run-config", action="append", default=[], help="'key=value ...' overrides in Flower's syntax "
                    "(repeatable; the setting flags win)")
    sm.add_argument("--federation-config", action="append", default=[], help="simulation resources over the sim's "
                    "[tool.fedot.federation], e.g. 'client-resources-num-gpus=0.25 client-resources-num-cpus=2'")
    sm.add_argument("--keep-alive", action="store_true", help="keep the SuperLink and a Ray head running for the next "
                    "runs (also: export FEDOT_KEEP_ALIVE=1); `fedot stop` ends them")
    sm.add_argument("--overwrite", action="store_true", help="replace what --run-dir already holds (refused otherwise)")
    sm.add_argument("--print-config", action="store_true", help="print the effective settings and stop")
    sm.add_argument("--plan", action="store_true", help="print each role's expected peak memory and whether the sim's "
                    "resources hold it, then stop (no weights loaded; works offline and without the GPUs)")
    sm.add_argument("--plan-gpus", type=int, default=None, help="--plan for a machine with this many GPUs...")
    sm.add_argument("--plan-gpu-gib", type=float, default=None, help="...of this many GiB each (what nvidia-smi's "
                    "total memory says), instead of this machine")
    add_arguments(sm, FederatedConfig, skip=("command",))
    sm.set_defaults(func=_sim)

    dp = sub.add_parser("deploy", help="run a sim on a real Flower deployment on this machine: a SuperLink and one "
                        "SuperNode per data owner, TLS on (docs/deployment.md)")
    dp.add_argument("app", help="a folder in sims/, e.g. sims/quickstart")
    dp.add_argument("--dir", required=True, help="the deployment's folder: certificates, FLWR_HOME, each SuperNode's "
                    "cache and every process's log")
    dp.add_argument("--run-config", action="append", default=[], help="'key=value ...' overrides (repeatable)")
    dp.add_argument("--insecure", action="store_true", help="no TLS (Flower's --insecure); for a first try only")
    dp.add_argument("--auth", action="store_true", help="SuperNode authentication: a key pair per SuperNode, "
                    "registered with the SuperLink")
    dp.add_argument("--overwrite", action="store_true", help="replace what --run-dir already holds (refused otherwise)")
    add_arguments(dp, FederatedConfig, skip=("command",))
    dp.set_defaults(func=_deploy)

    st = sub.add_parser("stop", help="stop the SuperLink and Ray head that `fedot sim --keep-alive` left running")
    st.set_defaults(func=_stop)

    sy = sub.add_parser("study", help="a single-client vs federated study: every arm, seed and partitioning as a "
                        "`fedot sim` run (finished ones skipped, interrupted ones resumed), then study.md/json with "
                        "paired tests")
    sy.add_argument("study", help="a study file (studies/*.toml) or a folder holding study.toml")
    sy.add_argument("--out", default=None, help="the study's folder (default: runs/study-<name>)")
    sy.add_argument("--plan", action="store_true", help="print every run with its estimated CPU time, then stop")
    sy.add_argument("--render", action="store_true", help="only re-render study.md/json from the finished runs")
    sy.set_defaults(func=_study)

    c = sub.add_parser("compare", help="compare run directories: five numbers, plug-in per round, bytes")
    c.add_argument("runs", nargs="+")
    c.add_argument("--out", required=True)
    c.set_defaults(func=_compare)

    rd = sub.add_parser("render", help="write a finished run's results.md/json/png and page again from what it "
                        "stored (results.json, outcomes.json, rounds.jsonl): same numbers, current tables and tests")
    rd.add_argument("run", help="a run directory written by `fedot sim` or `fedot offsite`")
    rd.set_defaults(func=_render)

    sv = emu.add_parser("serve", help="serve an artifact directory over HTTP with Range support (url delivery)")
    sv.add_argument("path")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8080)
    sv.set_defaults(func=_serve)

    i = sub.add_parser("info", help="print an emulator artifact's manifest and sizes")
    i.add_argument("path")
    i.set_defaults(func=_info)

    s = sub.add_parser("settings", help="every run-config setting and its default (also: fedot sim --print-config)")
    s.add_argument("--markdown", action="store_true", help="as the README's markdown table")
    s.add_argument("--sync", action="store_true", help="regenerate each sim's [tool.flwr.app.config] and the README")
    s.set_defaults(func=_settings)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (SettingError, ValueError, FileNotFoundError, FileExistsError, KeyError, RuntimeError) as e:
        print(f"fedot: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
