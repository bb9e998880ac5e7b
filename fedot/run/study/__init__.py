"""``fedot study``: the single-client vs federated comparison a reviewer expects, in one command.

A study file (:mod:`.config`) declares tasks, partitionings, seeds and arms (:mod:`.arms`); every (task,
partitioning, arm, seed[, owner]) becomes an ordinary ``fedot sim`` run (:mod:`.runs`), run, skipped when finished
or resumed when interrupted (:mod:`.runner`, with its estimate in :mod:`.estimate`), and the finished runs are
summarised with paired statistics (:mod:`.summary`) into study.json, study.md and plots (:mod:`.report`).
"""

from .arms import ARMS
from .config import Study, StudyConfig, load_study
from .runner import run_study
from .runs import StudyError, plan_runs

__all__ = ["ARMS", "Study", "StudyConfig", "StudyError", "load_study", "plan_runs", "run_study"]
