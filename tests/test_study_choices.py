"""A variant's setting chosen on validation (``choose``): planned after the learning rate, scored per task and
partitioning, the winner given to the variant's runs; refused when it cannot work."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from fedot.run.study import StudyError, load_study, plan_runs, run_study
from fedot.run.study.runs import StudyRun
from fedot.settings import SettingError
from support.studies import Launcher, study_data, write_study  # noqa: F401 (study_data: the data fixture)

CHOOSING = """
[arms.fedx]
arm = "federated"
aggregation = "fedavgm"
choose = { fedavgm-server-lr = [0.5, 3.0] }
"""


def test_a_variant_chooses_its_setting_on_validation_before_its_runs(tiny_models, tmp_path, data):
    path = write_study(tmp_path, tiny_models["llama"], arms=("fedx",), extra=CHOOSING)
    path.write_text(path.read_text().replace("seeds = [0, 1]", "seeds = [1]\nlr-validation-limit = 6"))
    study = load_study(path)
    out = tmp_path / "out"
    launcher = Launcher()
    record = run_study(study, out, launcher)
    keys = [Path(c[0]).relative_to(out / "runs").as_posix() for c in launcher.calls]
    assert keys == ["arc_easy/iid/fedx/select-fedavgm-server-lr0.5", "arc_easy/iid/fedx/select-fedavgm-server-lr3",
                    "arc_easy/iid/fedx/seed1"]
    rate = 1e-3  # the sim's (no [study] lrs)
    scores = {}
    for value in ("0.5", "3"):
        r = json.loads((out / f"runs/arc_easy/iid/fedx/select-fedavgm-server-lr{value}/results.json").read_text())
        rc = r["run_config"]
        assert rc["eval-split"] == "validation" and rc["eval-limit"] == 6 and not rc["full-ft"] and rc["seed"] == 1
        assert rc["lr"] == rate and rc["aggregation"] == "fedavgm" and rc["fedavgm-server-lr"] == float(value)
        scores[value] = r["numbers"]["plugin"]
    choice = record["choices"]["arc_easy/iid/fedx"]
    winner = 0.5 if scores["0.5"] >= scores["3"] else 3.0
    assert choice["value"] == winner and choice["scores"] == scores and choice["setting"] == "fedavgm-server-lr"
    run = json.loads((out / "runs/arc_easy/iid/fedx/seed1/results.json").read_text())["run_config"]
    assert run["fedavgm-server-lr"] == winner and run["eval-split"] == "test" and run["lr"] == rate
    md = (out / "study.md").read_text()
    assert "Arm fedx: the federated arm with aggregation = fedavgm, fedavgm-server-lr chosen from [0.5, 3.0]" in md
    assert f"fedavgm-server-lr of arm fedx on arc_easy / iid: {winner:g}, chosen" in md
    # a second call finds everything finished: nothing runs again, the same record
    again = Launcher()
    assert run_study(study, out, again)["choices"] == record["choices"] and not again.calls


def test_the_choice_is_the_best_mean_over_the_arms_runs_per_partitioning(tmp_path):
    from fedot.run.study.choices import picked

    study = SimpleNamespace(choice=lambda arm: ("steps", [2, 8]), config=SimpleNamespace(lr_validation_limit=0))
    runs, ppl = [], {(2, 0): 30.0, (2, 1): 32.0, (8, 0): 29.0, (8, 1): 33.0, }  # lower is better; 31.0 each: a tie
    for (value, owner), score in ppl.items():
        run = StudyRun("wikitext2", "document", "solo", 0, owner, {}, None, label=f"select-steps{value}")
        run.folder(tmp_path).mkdir(parents=True)
        (run.folder(tmp_path) / "results.json").write_text(json.dumps(
            {"numbers": {"plugin": score}, "higher_is_better": False, "metric": "word_perplexity"}))
        runs.append(run)
    record = picked(study, runs, tmp_path)["wikitext2/document/solo"]
    assert record["value"] == 2 and record["scores"] == {"2": 31.0, "8": 31.0} and record["runs_per_value"] == 2
    (runs[1].folder(tmp_path) / "results.json").write_text(json.dumps(
        {"numbers": {"plugin": 34.0}, "higher_is_better": False, "metric": "word_perplexity"}))
    assert picked(study, runs, tmp_path)["wikitext2/document/solo"]["value"] == 8
    (runs[3].folder(tmp_path) / "results.json").unlink()  # not finished: no choice yet
    assert picked(study, runs, tmp_path) == {}


def test_each_partitioning_gets_its_own_choice_and_waits_for_it(tiny_models, tmp_path, data):
    from fedot.run.study.choices import choice_runs
    from fedot.run.study.runner import plan_text, study_runs

    path = write_study(tmp_path, tiny_models["llama"], arms=("fedx",), extra=CHOOSING)
    path.write_text(path.read_text().replace('partitionings = ["iid"]', 'partitionings = ["iid", "dirichlet"]'))
    study = load_study(path)
    _, choosing, runs = study_runs(study, tmp_path)
    assert [r.key for r in choosing] == [f"arc_easy/{p}/fedx/select-fedavgm-server-lr{v}"
                                         for p in ("iid", "dirichlet") for v in ("0.5", "3")]
    assert all(r.seed == 0 and r.state(tmp_path) == "new" for r in choosing)  # the first seed; no rate to wait for
    with_rates = load_study(path)
    with_rates.config.lrs = [1e-4, 3e-3]
    selection, waiting, _ = study_runs(with_rates, tmp_path)
    assert len(selection) == 2 and all(r.state(tmp_path) == "waits" and r.config.lr == 1e-4 for r in waiting)
    assert [r.config.lr for r in choice_runs(with_rates, {"arc_easy": 3e-3})] == [3e-3] * 4  # at the chosen rate
    assert not any(r.waits for r in choice_runs(with_rates, {"arc_easy": 3e-3}))
    assert all(r.state(tmp_path) == "waits" for r in runs) and len(runs) == 4
    assert "runs that wait" in plan_text(study, choosing + runs, tmp_path)
    picks = {"arc_easy/iid/fedx": 3.0, "arc_easy/dirichlet/fedx": 0.5}
    planned = {r.key: r.config.aggregation.settings.server_lr for r in plan_runs(study, picks=picks)}
    assert planned == {"arc_easy/iid/fedx/seed0": 3.0, "arc_easy/iid/fedx/seed1": 3.0,
                       "arc_easy/dirichlet/fedx/seed0": 0.5, "arc_easy/dirichlet/fedx/seed1": 0.5}
    calls = []  # a launcher whose runs leave no results: the variant's runs cannot start
    with pytest.raises(StudyError, match="selection on validation it waits for has not finished"):
        run_study(study, tmp_path / "out", lambda sim, overrides, fresh: calls.append(overrides["run-dir"]))
    assert len(calls) == len(choosing)


@pytest.mark.parametrize("choose, error", [
    ("choose = { fedavgm-server-lr = [2.0] }", "at least two distinct values"),
    ("choose = { fedavgm-server-lr = [2.0, 2.0] }", "at least two distinct values"),
    ("choose = { fedavgm-server-lr = [2.0, 4.0], steps = [1, 2] }", "name one setting"),
    ("choose = [2.0, 4.0]", "name one setting"),
    ("fedavgm-server-lr = 1.0\nchoose = { fedavgm-server-lr = [2.0, 4.0] }", "both set"),
    ("choose = { seed = [1, 2] }", "'seed' is set by the study"),
    ("choose = { fedavgm-server-lr = [2.0, -1.0] }", "fedavgm-server-lr"),
])
def test_a_choice_that_cannot_work_is_refused_before_any_run(tiny_models, tmp_path, data, choose, error):
    from fedot.run.study.runner import study_runs

    extra = CHOOSING.replace("choose = { fedavgm-server-lr = [0.5, 3.0] }", choose)
    path = write_study(tmp_path, tiny_models["llama"], arms=("fedx",), extra=extra)
    with pytest.raises((SettingError, StudyError), match=error):
        study_runs(load_study(path), tmp_path)
