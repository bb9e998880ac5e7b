"""A study file: the experiment a reviewer asks for, declared once in the settings language of the sims.

.. code-block:: toml

    [study]                         # the study's own settings (StudyConfig below)
    sim = "../sims/smollm2_10clients"
    seeds = [0, 1, 2]
    partitionings = ["iid", "dirichlet"]
    arms = ["federated", "federated-median", "local-only", "centralized"]

    [settings]                      # every run: run-config keys, as in a sim's [tool.fedot.sim]
    num-rounds = 4

    [tasks.arc_easy]                # each task and its own settings (and, optionally, its own partitionings)
    lr = 1e-4                       # or [study] lrs = [...]: chosen on the validation split first (.rates)
    [tasks.wikitext2]
    partitionings = ["iid", "document"]

    [arms.federated-server-lr-4]    # a variant: a registered arm (.arms) with settings of its own, listed in arms
    arm = "federated"
    aggregation = "fedavgm"
    fedavgm-server-lr = 4.0

    [arms.federated-server-lr]      # a variant whose setting is chosen on validation, per task and partitioning
    arm = "federated"
    aggregation = "fedavgm"
    choose = { fedavgm-server-lr = [1.0, 2.0, 4.0, 6.0] }

    [arms.federated-40-steps]       # compared with (and its share of) a centralized variant of equal compute
    arm = "federated"
    steps = 40
    centralized-arm = "centralized-400-steps"
    [arms.centralized-400-steps]
    arm = "centralized"
    steps = 400

Every run's settings are ``sim's [tool.fedot.sim] < [settings] < [tasks.<task>] < the arm's < the variant's < seed
and partitioning``, checked through :class:`fedot.run.config.FederatedConfig` before the first run starts. A variant
keeps its arm's budget rules (its FT, its local-only owners are the federation's of the study's settings, not of the
variant's) and is compared with what its arm is compared with, and with the arm itself (:mod:`.summary`). A
variant's ``choose`` names one setting and the values it tries: the value is chosen on the validation split before
the variant's runs (:mod:`.choices`), once per task and partitioning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from ...data_owner.partition import SCHEMES
from ...settings import SettingError, from_flat, setting
from ...tasks import task_names
from .arms import ARMS

CHOOSE = "choose"  # a variant's {setting: [values]} chosen on validation
CENTRAL = "centralized-arm"  # the centralized arm (or variant) a variant is compared with, e.g. at equal compute
RESERVED = ("arm", CHOOSE, CENTRAL)  # a variant table's keys that are not run settings
STUDY_SET = ("task", "seed", "partitioning", "run-dir", "resume", "eval-split")  # what the study sets for each run


@dataclass
class StudyConfig:
    sim: str = setting("", "the sim folder every run starts from (relative to the study file)")
    seeds: list[int] = setting([0, 1, 2], "seeds: each arm runs once per seed (partitioning, sampling, batches)",
                               ge=0)
    partitionings: list[str] = setting(["iid"], "partitionings of the train split among the data owners (a task may "
                                       "name its own)", choices=SCHEMES.names)
    arms: list[str] = setting(["federated", "local-only", "centralized"], "the arms (registered ones, or variants "
                              "declared as [arms.<name>] tables); zero-shot, the emulator's zero-shot and FT come with "
                              "every run")
    local_only_owners: int = setting(3, "data owners trained alone per seed and partitioning (a seeded random "
                                     "subset; 0: all of them)", ge=0)
    resamples: int = setting(2000, "bootstrap resamples of the paired intervals", ge=100)
    lrs: list[float] = setting([], "learning rates tried first, per task, by the centralized arm (first seed) scored "
                               "on the validation split; the best is every arm's rate (empty: the sim's lr)", gt=0)
    lr_validation_limit: int = setting(500, "validation examples (documents for corpora) the rates and the variants' "
                                       "chosen values are chosen on (0: the whole validation split)", ge=0)


@dataclass
class Study:
    path: Path
    config: StudyConfig
    settings: dict
    tasks: dict[str, dict] = field(default_factory=dict)  # task -> its settings (without 'partitionings')
    partitionings: dict[str, list[str]] = field(default_factory=dict)  # task -> its partitionings
    variants: dict[str, dict] = field(default_factory=dict)  # [arms.<name>]: {"arm": registered arm, settings...}

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def sim_path(self) -> Path:
        return (self.path.parent / self.config.sim).resolve()

    @property
    def bases(self) -> dict[str, str]:
        """Each variant's registered arm."""
        return {name: v["arm"] for name, v in self.variants.items()}

    def base(self, arm: str) -> str:
        """The registered arm an arm of the study is (a variant's ``arm``)."""
        return self.bases.get(arm, arm)

    def arm_settings(self, arm: str) -> dict:
        """A variant's own settings (over its arm's); none for a registered arm."""
        return {k: v for k, v in self.variants.get(arm, {}).items() if k not in RESERVED}

    @property
    def references(self) -> dict[str, str]:
        """Each variant compared with a centralized arm other than ``centralized`` (``centralized-arm``)."""
        return {name: v[CENTRAL] for name, v in self.variants.items() if CENTRAL in v}

    def choice(self, arm: str) -> tuple[str, list] | None:
        """``(setting, values)`` a variant chooses on validation (:mod:`.choices`); None when it chooses nothing."""
        choose = self.variants.get(arm, {}).get(CHOOSE)
        return next(iter(choose.items())) if choose else None

    def task_settings(self, task: str) -> dict:
        """The settings every run of ``task`` shares, before the arm's, seed and partitioning."""
        return {**self.settings, **self.tasks[task], "task": task}


def load_study(path: str | Path) -> Study:
    """Read and check a study file (its runs' settings are checked by :func:`fedot.run.study.runs.plan_runs`)."""
    path = Path(path)
    if path.is_dir():
        path = path / "study.toml"
    if not path.exists():
        raise SettingError(f"{path} does not exist: pass a study file (see studies/ for examples)")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SettingError(f"{path} is not valid TOML: {e}") from e
    unknown = set(doc) - {"study", "settings", "tasks", "arms"}
    if unknown:
        raise SettingError(f"{path}: unknown table(s) {sorted(unknown)}; a study file has [study], [settings], "
                           "[tasks.<name>] and [arms.<variant>]")
    config = from_flat(StudyConfig, doc.get("study", {}), where=f"{path.name} [study]")
    if not config.sim:
        raise SettingError(f"{path.name} [study]: name the sim every run starts from, e.g. sim = "
                           "\"../sims/smollm2_10clients\"")
    tasks_doc = doc.get("tasks") or {}
    if not tasks_doc:
        raise SettingError(f"{path.name}: declare at least one task as a [tasks.<name>] table (e.g. [tasks.arc_easy])")
    tasks, partitionings = {}, {}
    for task, table in tasks_doc.items():
        if task not in task_names():
            raise SettingError(f"{path.name}: unknown task {task!r}; choose among {', '.join(task_names())}")
        table = dict(table)
        parts = table.pop("partitionings", config.partitionings)
        bad = [p for p in parts if p not in SCHEMES]
        if bad or not parts:
            raise SettingError(f"{path.name} [tasks.{task}]: partitionings {parts!r}; choose among "
                               f"{', '.join(SCHEMES.names())}")
        tasks[task], partitionings[task] = table, list(parts)
    variants = _variants(path, doc.get("arms") or {}, config.arms)
    chosen = ("lr",) if config.lrs else ()
    chooses = [v[CHOOSE] for v in variants.values() if CHOOSE in v]
    for key in (*STUDY_SET, *chosen):
        if key in doc.get("settings", {}) or any(key in t for t in [*tasks.values(), *variants.values(), *chooses]):
            raise SettingError(f"{path.name}: {key!r} is set by the study for each run"
                              f"{' (chosen from [study] lrs)' if key == 'lr' else ''}; remove it from the settings")
    study = Study(path.resolve(), config, dict(doc.get("settings", {})), tasks, partitionings, variants)
    if not (study.sim_path / "pyproject.toml").exists():
        raise SettingError(f"{path.name} [study]: sim = {config.sim!r} is not a sim folder ({study.sim_path} has no "
                           "pyproject.toml)")
    return study


def _variants(path: Path, tables: dict, arms: list[str]) -> dict[str, dict]:
    """The [arms.<name>] tables, checked: each names a registered arm and is one of [study] arms; every arm listed is
    registered or declared."""
    registered = ", ".join(ARMS.names())
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise SettingError(f"{path.name}: arms.{name} must be a table ([arms.{name}] with arm = \"federated\" and "
                               "the settings it changes)")
        if name in ARMS:
            raise SettingError(f"{path.name} [arms.{name}]: {name!r} is a registered arm; give the variant a name "
                               "of its own")
        if table.get("arm") not in ARMS:
            raise SettingError(f"{path.name} [arms.{name}]: arm = {table.get('arm')!r}; a variant names the "
                               f"registered arm it changes, one of {registered}")
        if name not in arms:
            raise SettingError(f"{path.name} [arms.{name}] is declared but not in [study] arms; add it there or "
                               "remove the table")
        _check_choice(path, name, table)
        central = table.get(CENTRAL)
        if central is not None and not (central in arms and (tables.get(central, {}).get("arm", central)
                                                             == "centralized")):
            raise SettingError(f"{path.name} [arms.{name}]: {CENTRAL} = {central!r}; name the centralized arm or a "
                               "centralized variant listed in [study] arms")
    unknown = [a for a in arms if a not in ARMS and a not in tables]
    if unknown:
        raise SettingError(f"{path.name} [study] arms: {unknown} are neither registered arms ({registered}) nor "
                           "declared as [arms.<name>] tables")
    return {name: dict(table) for name, table in tables.items()}


def _check_choice(path: Path, name: str, table: dict) -> None:
    """A variant's ``choose``: one setting, at least two distinct values, not also set by the variant itself."""
    if CHOOSE not in table:
        return
    choose = table[CHOOSE]
    example = "choose = { fedavgm-server-lr = [1.0, 2.0, 4.0] }"
    if not isinstance(choose, dict) or len(choose) != 1:
        raise SettingError(f"{path.name} [arms.{name}]: choose = {choose!r}; name one setting and the values to try, "
                           f"e.g. {example} (declare one variant per setting to choose several)")
    key, values = next(iter(choose.items()))
    if not isinstance(values, list) or len(values) < 2 or len(set(map(repr, values))) != len(values):
        raise SettingError(f"{path.name} [arms.{name}]: choose.{key} = {values!r}; give a list of at least two "
                           f"distinct values, e.g. {example}")
    if key in table:
        raise SettingError(f"{path.name} [arms.{name}]: {key!r} is both set ({table[key]!r}) and chosen; remove one")
