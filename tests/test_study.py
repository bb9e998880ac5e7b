"""`fedot study` on a tiny model through the in-process grid: plan, run, skip, resume, refuse, render."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from fedot.run.study import StudyError, load_study, plan_runs, run_study
from fedot.run.study.arms import ARMS, ArmContext
from fedot.run.study.runner import plan_text
from fedot.settings import SettingError
from support.studies import Launcher, study_data, write_study  # noqa: F401 (study_data: the data fixture)


def test_arms_give_equal_budgets_where_they_should():
    ctx = ArmContext("arc_easy", "iid", 0, num_clients=10, sampled=10, num_rounds=4, steps=5, owners=3)
    (fed,) = ARMS["federated"](ctx)
    (central,) = ARMS["centralized"](ctx)
    local = ARMS["local-only"](ctx)
    assert fed.overrides["full-ft-steps"] == central.overrides["full-ft-steps"] == 4 * 10 * 5  # one shared FT
    assert central.overrides["num-clients"] == 1 and central.overrides["steps"] * 4 == 4 * 10 * 5  # same total steps
    assert len(local) == 3 and len({r.owner for r in local}) == 3 and all(0 <= r.owner < 10 for r in local)
    assert all(r.overrides["num-rounds"] * 5 == 4 * 5 for r in local)  # each owner's federation steps
    assert [r.owner for r in local] == [r.owner for r in ARMS["local-only"](ctx)]  # seeded
    half = ArmContext("arc_easy", "iid", 0, num_clients=10, sampled=5, num_rounds=4, steps=5, owners=0)
    assert len(ARMS["local-only"](half)) == 10 and ARMS["local-only"](half)[0].overrides["num-rounds"] == 2


def test_bad_study_files_fail_before_any_run(tiny_models, tmp_path, data):
    path = write_study(tmp_path, tiny_models["llama"])
    text = path.read_text()
    path.write_text(text.replace("[tasks.arc_easy]", "[tasks.arc_easyy]"))
    with pytest.raises(SettingError, match="unknown task 'arc_easyy'"):
        load_study(path)
    path.write_text(text.replace('arms = ["federated", "local-only"]', 'arms = ["federated", "alone"]'))
    with pytest.raises(SettingError, match="alone"):
        load_study(path)
    path.write_text(text.replace("eval-every = 2", "eval-every = 2\nseed = 3"))
    with pytest.raises(SettingError, match="'seed' is set by the study"):
        load_study(path)
    path.write_text(text.replace("eval-every = 2", "num-rounds = 0"))
    with pytest.raises(StudyError, match="num-rounds"):
        plan_runs(load_study(path))
    path.write_text(text.replace("[tasks.arc_easy]", "[tasks.arc_easy]\npartitionings = ['document']"))
    with pytest.raises(StudyError, match="document partitioning does not apply"):
        plan_runs(load_study(path))


def test_a_two_arm_two_seed_study_runs_resumes_and_renders(tiny_models, tmp_path, data):
    study = load_study(write_study(tmp_path, tiny_models["llama"]))
    runs = plan_runs(study)
    owners = {s: ArmContext("arc_easy", "iid", s, 3, 3, 2, 2, 1).local_owners() for s in (0, 1)}
    assert [r.key for r in runs] == [k for s in (0, 1) for k in [f"arc_easy/iid/federated/seed{s}"] + [
        f"arc_easy/iid/local-only/seed{s}/owner{i}" for i in owners[s]]]
    out = tmp_path / "out"
    assert "estimated CPU time" in plan_text(study, runs, out) and "4 runs" in plan_text(study, runs, out)
    interrupted = Launcher(fail_at=2)
    with pytest.raises(RuntimeError, match="interrupted"):
        run_study(study, out, interrupted)
    launcher = Launcher()
    record = run_study(study, out, launcher)
    assert len(launcher.calls) == 3  # the finished run was not run again
    assert [Path(c[0]).relative_to(out / "runs").as_posix() for c in launcher.calls] == [r.key for r in runs[1:]]
    assert launcher.calls[0][2]  # the interrupted run had not checkpointed a round: it starts afresh
    assert record["finished"] == record["planned"] == 4
    # the local-only owner trained alone on its federation shard, for the federation's local steps
    owner = owners[0][-1]
    local = json.loads((out / f"runs/arc_easy/iid/local-only/seed0/owner{owner}/results.json").read_text())
    assert local["run_config"]["data-shard"] == owner and local["run_config"]["num-clients"] == 1
    fed = json.loads((out / "runs/arc_easy/iid/federated/seed0/results.json").read_text())
    assert local["client_steps"] * 3 == fed["client_steps"] == 2 * 3 * 2
    # each run records the `fedot sim` command that makes it alone: its flags parse back to the run's settings
    from fedot.cli import _run_overrides, parser

    args = parser().parse_args(shlex.split(local["run_config"]["command"])[1:])
    run = next(r for r in runs if r.key == f"arc_easy/iid/local-only/seed0/owner{owner}")
    assert Path(args.app).resolve() == study.sim_path
    assert _run_overrides(args) == {**run.overrides, "run-dir": str(run.folder(out).resolve())}
    section = record["summary"]["sections"]["arc_easy/iid"]
    assert section["arms"]["federated"]["plugin"]["n"] == 2 and section["arms"]["local-only"]["runs"] == 2
    assert section["arms"]["federated"]["budget"]["optimizer_steps"] == 12
    rows = [json.loads(x) for x in (out / "runs/arc_easy/iid/federated/seed0/rounds.jsonl").read_text().splitlines()]
    logged = [r["train_loss"] for r in rows if "train_loss" in r]
    seed1 = [json.loads(x) for x in (out / "runs/arc_easy/iid/federated/seed1/rounds.jsonl").read_text().splitlines()]
    logged1 = [r["train_loss"] for r in seed1 if "train_loss" in r]
    curve = section["arms"]["federated"]["train_loss"]  # every round's training loss, mean over the seeds
    assert [int(k) for k in curve] == [1, 2] and len(logged) == 2
    assert [curve[k]["mean"] for k in curve] == pytest.approx([(a + b) / 2 for a, b in zip(logged, logged1)])
    pairs = {(c["a"], c["b"]) for c in section["comparisons"]}
    assert pairs == {("FT", "zero-shot"), ("federated", "zero-shot"), ("federated", "local-only")}
    ft = next(c for c in section["comparisons"] if c["a"] == "FT")["pooled"]  # FT and zero-shot of the same seeds
    assert ft["value_a"] == pytest.approx(section["full_finetuned"]["mean"])
    assert ft["value_b"] == pytest.approx(section["zero_shot"])
    for c in section["comparisons"]:
        assert set(c["per_seed"]) == {"0", "1"} and c["pooled"]["n"] == 2 * 4  # 2 seeds x 4 questions
    md = (out / "study.md").read_text()
    assert "| federated |" in md and "| local-only |" in md and "federated plug-in above zero-shot" in md
    assert "| FT vs zero-shot | **pooled** |" in md and "FT above zero-shot" in md
    assert "Training loss through the emulator per round" in md and "| Arm | round 1 | round 2 |" in md
    assert (out / "study-arc_easy.png").stat().st_size > 0
    # an interrupted run (its checkpoint there, no results) is resumed, the others skipped; rendering only re-renders
    (out / "runs/arc_easy/iid/federated/seed1/results.json").unlink()
    from fedot.run.study.report import render

    partial = render(study, runs, out)["summary"]["sections"]["arc_easy/iid"]  # a seed short: pooled over the rest
    assert partial["comparisons"] and all(c["pooled"]["seeds"] == [0] for c in partial["comparisons"])
    assert partial["arms"]["federated"]["plugin"]["n"] == 1 and partial["arms"]["federated"]["plugin"]["std"] is None
    assert "(n=1)" in (out / "study.md").read_text() and "seeds [0]" in (out / "study.md").read_text()
    again = Launcher()
    run_study(study, out, again)
    assert [(Path(c[0]).name, c[1]) for c in again.calls] == [("seed1", True)]
    # a finished run made before fedot gained a setting counts as made with its default
    results = out / "runs/arc_easy/iid/federated/seed0/results.json"
    record = json.loads(results.read_text())
    del record["run_config"]["emulator-distill-kd-distance"]
    results.write_text(json.dumps(record))
    assert runs[0].state(out) == "done"
    # a finished run made with other settings is refused, never overwritten
    study.settings["eval-every"] = 1
    with pytest.raises(StudyError, match="other settings"):
        run_study(study, out, Launcher())


def test_the_learning_rate_is_chosen_on_validation_before_the_arms(tiny_models, tmp_path, data, monkeypatch):
    import fedot.model_owner.evaluator as evaluator

    scored, evaluate = [], evaluator.evaluate

    def spy(model, tokenizer, task, split, *args, **kwargs):
        scored.append(split)
        return evaluate(model, tokenizer, task, split, *args, **kwargs)

    monkeypatch.setattr(evaluator, "evaluate", spy)
    path = write_study(tmp_path, tiny_models["llama"], arms=("federated",))
    path.write_text(path.read_text().replace("seeds = [0, 1]", "seeds = [1]\nlrs = [1e-4, 3e-3]\n"
                                             "lr-validation-limit = 6"))
    study = load_study(path)
    out = tmp_path / "out"
    assert "wait" in plan_text(study, _planned(study, out), out)
    launcher = Launcher()
    record = run_study(study, out, launcher)
    keys = [Path(c[0]).relative_to(out / "runs").as_posix() for c in launcher.calls]
    assert keys == ["arc_easy/lr-select/centralized/lr0.0001", "arc_easy/lr-select/centralized/lr0.003",
                    "arc_easy/iid/federated/seed1"]
    picks = []
    for lr in ("0.0001", "0.003"):
        r = json.loads((out / f"runs/arc_easy/lr-select/centralized/lr{lr}/results.json").read_text())
        assert r["run_config"]["eval-split"] == "validation" and r["run_config"]["eval-limit"] == 6
        assert r["run_config"]["seed"] == 1 and r["run_config"]["num-clients"] == 1 and not r["run_config"]["full-ft"]
        picks.append((r["numbers"]["plugin"], float(lr)))
    best = max(picks, key=lambda p: (p[0], -picks.index(p)))[1]
    choice = record["lr_selection"]["arc_easy"]
    assert choice["rate"] == best and choice["scores"] == {"0.0001": picks[0][0], "0.003": picks[1][0]}
    fed = json.loads((out / "runs/arc_easy/iid/federated/seed1/results.json").read_text())
    assert fed["run_config"]["lr"] == best and fed["run_config"]["eval-split"] == "test"
    assert "validation" in scored and scored[-1] == "test"  # selection scored validation, the study test
    assert f"Learning rate for arc_easy: {best:g}" in (out / "study.md").read_text()
    # a study file that also sets lr itself is refused
    path.write_text(path.read_text().replace("eval-every = 2", "eval-every = 2\nlr = 1e-3"))
    with pytest.raises(SettingError, match="'lr' is set by the study.*chosen from"):
        load_study(path)


VARIANT = """
[arms.fedx]
arm = "federated"
aggregation = "fedavgm"
fedavgm-server-lr = 3.0
steps = 3
"""


def test_a_variant_is_its_arm_with_settings_of_its_own_and_is_compared_with_it(tiny_models, tmp_path, data):
    from fedot.run.study.summary import pairs

    path = write_study(tmp_path, tiny_models["llama"], arms=("federated", "centralized", "fedx"), extra=VARIANT)
    path.write_text(path.read_text().replace("seeds = [0, 1]", "seeds = [0]")  # and a per-round curve on 2 of 4
                    .replace("eval-every = 2", "eval-every = 1\neval-curve-limit = 2"))
    study = load_study(path)
    runs = {r.key: r for r in plan_runs(study)}
    assert list(runs) == ["arc_easy/iid/federated/seed0", "arc_easy/all/centralized/seed0", "arc_easy/iid/fedx/seed0"]
    fedx, fed = runs["arc_easy/iid/fedx/seed0"], runs["arc_easy/iid/federated/seed0"]
    assert fedx.config.aggregation.rule == "fedavgm" and fedx.config.aggregation.settings.server_lr == 3.0
    assert fedx.config.data_owner.train.steps == 3 and fed.config.data_owner.train.steps == 2
    assert fedx.config.baseline.steps == fed.config.baseline.steps == 2 * 3 * 2  # its arm's FT: one cache entry
    assert pairs(["federated", "centralized", "fedx"], {"fedx": "federated"}) == [
        ("federated", "zero-shot"), ("federated", "centralized"), ("fedx", "zero-shot"), ("fedx", "centralized"),
        ("fedx", "federated")]
    record = run_study(study, tmp_path / "out", Launcher())
    section = record["summary"]["sections"]["arc_easy/iid"]
    assert {(c["a"], c["b"]) for c in section["comparisons"]} >= {("fedx", "federated"), ("fedx", "zero-shot")}
    assert set(section["kept_of_centralized"]) == {"federated", "fedx"}
    rows = (tmp_path / "out/runs/arc_easy/iid/fedx/seed0/rounds.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in rows]
    assert [(r["aggregation"], r["client_steps"]) for r in rows if "aggregation" in r] == [("fedavgm", 3 * 3)] * 2
    md = (tmp_path / "out/study.md").read_text()
    assert "Arm fedx: the federated arm with aggregation = fedavgm, fedavgm-server-lr = 3.0, steps = 3." in md
    assert "fedx plug-in above zero-shot" in md and "| fedx vs federated |" in md
    curve = section["curve"]  # round 1 on the first 2 questions, round 2 on all 4 and (from its outcomes) on those 2
    assert curve["examples"] == 2 and set(section["arms"]["fedx"]["per_round"]) == {1, 2}
    assert section["arms"]["fedx"]["plugin"]["mean"] == json.loads(
        (tmp_path / "out/runs/arc_easy/iid/fedx/seed0/results.json").read_text())["numbers"]["plugin"]
    assert section["arms"]["fedx"]["per_round"][2]["mean"] == rows[-1]["evaluation"]["curve"]["plugin"]
    assert "OT plug-in per round (mean ± std over seeds), on the first 2 test examples, where zero-shot is" in md


def _loaded(arm, part, correct, zero_shot):
    n = len(correct)
    outcome = {"kind": "multiple_choice", "ids": list(range(n)), "chosen": [0] * n, "acc": correct, "acc_norm": correct}
    zs = {**outcome, "acc": zero_shot, "acc_norm": zero_shot}
    return {"key": f"t/{part}/{arm}/seed0", "task": "t", "partitioning": part, "arm": arm, "seed": 0, "owner": None,
            "numbers": {"plugin": sum(correct) / n, "zero_shot": sum(zero_shot) / n, "emulator_zero_shot": 0.1,
                        "emulator_finetuned": 0.2}, "metric": "acc", "higher_is_better": True, "gap": 0.1,
            "budget": {"optimizer_steps": 1, "tokens": 1, "adapter_bytes": 1}, "per_round": {},
            "outcomes": {"plugin": outcome, "zero_shot": zs}}


def test_every_federated_arm_gets_its_share_of_centralized_and_its_cost_of_skew():
    from fedot.run.study.summary import summarise

    zs = [0] * 20 + [1] * 20
    loaded = [_loaded("centralized", "all", [1] * 30 + [0] * 10, zs)]
    for part, shift in (("iid", 0), ("dirichlet", 5)):
        loaded += [_loaded("federated", part, [1] * (25 - shift) + [0] * (15 + shift), zs),
                   _loaded("fedx", part, [1] * (30 - shift) + [0] * (10 + shift), zs)]
    out = summarise(loaded, [0], 200, {"fedx": "federated"})
    iid = out["sections"]["t/iid"]
    assert iid["kept_of_centralized"]["federated"]["share"] == pytest.approx(0.5)  # (25 - 20) / (30 - 20)
    assert iid["kept_of_centralized"]["fedx"]["share"] == pytest.approx(1.0)
    assert ("fedx", "federated") in {(c["a"], c["b"]) for c in iid["comparisons"]}
    costs = {(c["a"], c["b"]): c["pooled"]["difference"] for c in out["partitioning_cost"]}
    assert costs == {("federated iid", "federated dirichlet"): pytest.approx(0.125),
                     ("fedx iid", "fedx dirichlet"): pytest.approx(0.125)}


def test_a_variant_is_compared_with_the_centralized_arm_it_names():
    from fedot.run.study.report import claim
    from fedot.run.study.summary import pairs, summarise

    bases, references = {"fed40": "federated", "c400": "centralized"}, {"fed40": "c400"}
    assert pairs(["federated", "centralized", "fed40", "c400"], bases, references) == [
        ("federated", "zero-shot"), ("federated", "centralized"), ("fed40", "zero-shot"), ("fed40", "c400"),
        ("fed40", "federated"), ("c400", "centralized")]
    zs = [0] * 20 + [1] * 20
    loaded = [_loaded("centralized", "all", [1] * 30 + [0] * 10, zs), _loaded("c400", "all", [1] * 35 + [0] * 5, zs),
              _loaded("federated", "iid", [1] * 25 + [0] * 15, zs), _loaded("fed40", "iid", [1] * 30 + [0] * 10, zs)]
    kept = summarise(loaded, [0], 200, bases, references)["sections"]["t/iid"]["kept_of_centralized"]
    assert kept["fed40"]["share"] == pytest.approx((30 - 20) / (35 - 20)) and kept["fed40"]["of"] == "c400"
    assert kept["federated"]["share"] == pytest.approx(0.5) and kept["federated"]["of"] == "centralized"
    assert claim("fed40", "c400", bases) == "fed40 plug-in above centralized offsite-tuning (c400)"
    assert claim("c400", "centralized", bases) == "c400 above centralized"


@pytest.mark.parametrize("change, error", [
    (("arm = \"federated\"", "arm = \"federatd\""), "arm = 'federatd'; a variant names the registered arm"),
    (("[arms.fedx]", "[arms.local-only]"), "'local-only' is a registered arm"),
    (("steps = 3", "steps = 3\nseed = 4"), "'seed' is set by the study"),
    (("fedavgm-server-lr = 3.0", "fedavgm-server-lr = -1.0"), "fedavgm-server-lr"),
    (("steps = 3", "steps = 3\ncentralized-arm = \"federated\""), "centralized-arm = 'federated'; name the centr"),
    (("steps = 3", "steps = 3\ncentralized-arm = \"centralized\""), "centralized-arm = 'centralized'; name the"),
])
def test_bad_variants_fail_before_any_run(tiny_models, tmp_path, data, change, error):
    path = write_study(tmp_path, tiny_models["llama"], arms=("federated", "fedx"), extra=VARIANT.replace(*change))
    with pytest.raises((SettingError, StudyError), match=error):
        plan_runs(load_study(path))


def test_variants_and_arms_must_name_each_other(tiny_models, tmp_path, data):
    path = write_study(tmp_path, tiny_models["llama"], arms=("federated",), extra=VARIANT)
    with pytest.raises(SettingError, match=r"\[arms.fedx\] is declared but not in \[study\] arms"):
        load_study(path)
    path = write_study(tmp_path, tiny_models["llama"], arms=("federated", "fedx", "fedy"), extra=VARIANT)
    with pytest.raises(SettingError, match=r"\['fedy'\] are neither registered arms"):
        load_study(path)


def _planned(study, out):
    from fedot.run.study.runner import study_runs

    return [r for phase in study_runs(study, out) for r in phase]


def test_the_rate_choice_reads_each_selection_run(tmp_path):
    from fedot.run.study.rates import chosen
    from fedot.run.study.runs import StudyRun

    study = SimpleNamespace(tasks={"wikitext2": {}}, config=SimpleNamespace(lr_validation_limit=0))
    runs = [StudyRun("wikitext2", "lr-select", "centralized", 0, None, {}, SimpleNamespace(lr=lr), label=f"lr{lr:g}")
            for lr in (1e-4, 3e-4, 1e-3)]
    for run, ppl in zip(runs, (31.0, 30.5, 30.5)):  # lower is better; a tie goes to the first of the grid
        run.folder(tmp_path).mkdir(parents=True)
        (run.folder(tmp_path) / "results.json").write_text(json.dumps(
            {"numbers": {"plugin": ppl}, "higher_is_better": False, "metric": "word_perplexity"}))
    record = chosen(study, runs, tmp_path)["wikitext2"]
    assert record["rate"] == 3e-4 and record["scores"] == {"0.0001": 31.0, "0.0003": 30.5, "0.001": 30.5}
    assert record["examples"] == "all"
    (runs[2].folder(tmp_path) / "results.json").unlink()  # not finished: no choice yet
    assert chosen(study, runs, tmp_path) == {}


STUDIES = sorted((Path(__file__).parent.parent / "studies").glob("*.toml"))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_every_committed_study_file_plans(path, tmp_path):
    from fedot.run.study.runner import study_runs

    study = load_study(path)
    selection, choosing, runs = study_runs(study, tmp_path)
    assert len(selection) == len(study.config.lrs) * len(study.tasks)
    assert runs and all(r.state(tmp_path) == ("waits" if study.config.lrs else "new") for r in runs)
    assert all(r.config.evaluation.split == "test" for r in runs)
    assert all(r.config.evaluation.split == "validation" for r in selection + choosing)
    assert all(r.state(tmp_path) == ("waits" if study.config.lrs else "new") for r in choosing)


def test_the_eta_uses_each_arms_measured_time_and_scales_the_estimate_of_the_others(tmp_path):
    from fedot.run.study.runner import eta
    from fedot.run.study.runs import StudyRun

    runs = [StudyRun("arc_easy", "iid", arm, seed, None, {}, None) for arm in ("a", "b") for seed in (0, 1)]
    runs.append(StudyRun("arc_easy", "iid", "a", 0, None, {}, None, label="select-steps4"))  # a selection run
    est = [100.0, 100.0, 50.0, 50.0, 30.0]
    assert eta(runs, est, tmp_path, 0) == pytest.approx(330.0)  # nothing measured: the estimate
    runs[0].folder(tmp_path).mkdir(parents=True)
    (runs[0].folder(tmp_path) / "results.json").write_text(json.dumps({"wall_seconds": 200.0}))
    # arm a's other run: a's measured 200 s; arm b and a's selection run: their estimate x 200 / 100
    assert eta(runs, est, tmp_path, 0) == pytest.approx(200.0 + 2 * 50.0 * 2 + 30.0 * 2)
    assert eta(runs, est, tmp_path, 2) == pytest.approx(2 * 50.0 * 2 + 30.0 * 2)
