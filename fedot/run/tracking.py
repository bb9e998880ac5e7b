"""Experiment tracking: each run's config, every round's metrics and its five numbers, in the trackers people watch.

``report-to`` names one or more trackers (comma-separated). Each writes into the run directory with the library's
own writer, offline, no server: TensorBoard event files in ``<run>/tensorboard`` (``tensorboard --logdir runs/``
shows every run side by side), an MLflow store in ``<run>/mlflow.db`` (sqlite, MLflow 3's local backend:
``mlflow ui --backend-store-uri sqlite:///<run>/mlflow.db``), a W&B offline run in ``<run>/wandb`` (``wandb sync``
uploads it later). What is logged at each round's step: every numeric field of the round's row in ``rounds.jsonl``,
nested fields joined by ``/`` (``evaluation/plugin``, its interval as ``evaluation/plugin_ci95/low`` and ``/high``,
``train_loss`` aggregated and ``train_loss_by_owner/<node>`` per data owner, ``accepted``/``rejected``/``timed_out``
as counts, ``rejected_by_reason/<reason>``, bytes up and down, ``dp/epsilon``, alignment distances, seconds); at the
end the five numbers, the recovered share and the conditions, with the flat run config as hyperparameters.
"""

from __future__ import annotations

import importlib.util
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..registry import Registry
from ..settings import SettingError, setting

TRACKERS: Registry = Registry("tracker")
COUNTED = ("sampled", "accepted", "rejected", "timed_out", "clipped", "faults")  # lists logged as their length


def _names() -> list[str]:
    return ["none", *TRACKERS.names()]


@dataclass
class TrackingConfig:
    report_to: str = setting("tensorboard", "experiment trackers the run writes to, comma-separated: none, "
                             "tensorboard (<run>/tensorboard), mlflow (sqlite store <run>/mlflow.db), wandb "
                             "(offline run in <run>/wandb); all offline, no server")

    @property
    def trackers(self) -> list[str]:
        return [n.strip() for n in self.report_to.split(",") if n.strip() and n.strip() != "none"]

    def check(self) -> None:
        """Before anything expensive: every tracker is known and its package importable."""
        unknown = [n for n in self.trackers if n not in TRACKERS]
        if unknown:
            raise SettingError(f"report-to names unknown tracker(s) {unknown}; choose from {_names()}, "
                               "comma-separated")
        missing = [n for n in self.trackers if importlib.util.find_spec(TRACKERS.entry(n).limit("package")) is None]
        if missing:
            packages = " ".join(TRACKERS.entry(n).limit("package") for n in missing)
            raise SettingError(f"report-to names {missing}, whose package is not installed: pip install {packages} "
                               "(or drop it from report-to; 'none' logs to no tracker)")


def scalars(record: dict, prefix: str = "") -> dict[str, float]:
    """Every finite number in ``record``, nested keys joined by '/', lists of ids as counts, intervals as low/high."""
    out: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)):
            if math.isfinite(value) and abs(value) < 2 ** 53:  # node ids and such are labels, not metrics
                out[name] = float(value)
        elif isinstance(value, dict):
            out.update(scalars(value, f"{name}/"))
        elif isinstance(value, (list, tuple)):
            if key in COUNTED:
                out[name] = float(len(value))
            elif len(value) == 2 and all(isinstance(v, (int, float)) for v in value) and key.endswith("ci95"):
                out.update({f"{name}/low": float(value[0]), f"{name}/high": float(value[1])})
    return out


def round_metrics(row: dict) -> dict[str, float]:
    """What a round's row contributes: its numbers, plus the rejected replies counted by reason. A round scored
    for the per-round curve only (eval-curve-limit) is logged under evaluation/curve/, beside the last round's and
    zero-shot's points on the same examples, so no series mixes the curve's examples with the whole split."""
    evaluation = row.get("evaluation")
    if evaluation and "curve_examples" in evaluation:
        row = {**row, "evaluation": {"curve": evaluation}}
    metrics = scalars({k: v for k, v in row.items() if k not in ("round", "influence", "runtime")})
    for r in row.get("rejected") or []:
        reason = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(r.get("reason", "")).split(":")[0].split(" (")[0])[:60]
        key = f"rejected_by_reason/{reason}"
        metrics[key] = metrics.get(key, 0.0) + 1
    return metrics


@TRACKERS.register("tensorboard", help="TensorBoard event files in <run>/tensorboard (torch's SummaryWriter)",
                   package="tensorboard")
class TensorBoard:
    def __init__(self, out: Path, name: str, config: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))
        self.config = config
        self.writer.add_text("config", "\n".join(f"    {k} = {v!r}" for k, v in config.items()), 0)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finish(self, summary: dict[str, float]) -> None:
        hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in self.config.items()}
        self.writer.add_hparams(hparams, {f"final/{k}": v for k, v in summary.items()}, run_name=".")
        self.writer.close()


@TRACKERS.register("mlflow", help="an MLflow run in the sqlite store <run>/mlflow.db (experiment 'fedot')",
                   package="mlflow")
class MLflow:
    def __init__(self, out: Path, name: str, config: dict):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        out.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=mlflow_uri(out))
        experiment = self.client.get_experiment_by_name("fedot")
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment("fedot")
        self.run_id = self.client.create_run(experiment_id, run_name=name).info.run_id
        params = [Param(k, str(v)[:500]) for k, v in config.items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(_mlflow_key(k), v, now, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i:i + 1000])

    def finish(self, summary: dict[str, float]) -> None:
        self.log({f"final/{k}": v for k, v in summary.items()}, 0)
        self.client.set_terminated(self.run_id)


def mlflow_uri(out: Path) -> str:
    return f"sqlite:///{(Path(out) / 'mlflow.db').resolve()}"


def _mlflow_key(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", key)


@TRACKERS.register("wandb", help="a Weights & Biases run in offline mode in <run>/wandb (`wandb sync` uploads it)",
                   package="wandb")
class WandB:
    def __init__(self, out: Path, name: str, config: dict):
        import wandb

        self.run = wandb.init(project="fedot", name=name, dir=str(out), config=config, mode="offline",
                              settings=wandb.Settings(silent=True, console="off"))

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def finish(self, summary: dict[str, float]) -> None:
        import wandb

        self.run.summary.update({f"final/{k}": v for k, v in summary.items()})
        self.run.finish()
        try:  # finish() can return before wandb-core has written the offline log; teardown waits for it
            wandb.teardown()
        except SystemExit as e:  # teardown exits the process when wandb-core failed: make it a tracker failure
            raise RuntimeError(f"wandb-core exited with status {e.code}") from None


class Tracking:
    """The run's trackers together; a tracker that fails to write is reported once and dropped, never the run."""

    def __init__(self, cfg: TrackingConfig, out: Path, name: str, config: dict, report=print):
        self.report, self.trackers = report, []
        cfg.check()
        self.trackers = [TRACKERS[tracker](Path(out), name, config) for tracker in cfg.trackers]

    def _each(self, call) -> None:
        for tracker in list(self.trackers):
            try:
                call(tracker)
            except Exception as e:  # tracking is a view of the run, never a reason for it to fail
                self.report(f"tracker {type(tracker).__name__} failed ({type(e).__name__}: {e}); no longer logging")
                self.trackers.remove(tracker)

    def log_row(self, row: dict) -> None:
        metrics = round_metrics(row)
        self._each(lambda t: t.log(metrics, int(row["round"])))

    def log(self, values: dict, step: int, prefix: str = "") -> None:
        metrics = scalars(values, prefix)
        self._each(lambda t: t.log(metrics, step))

    def finish(self, record: dict) -> None:
        summary = scalars({"numbers": record.get("numbers", {}), "recovered": record.get("recovered"),
                           "conditions": record.get("conditions", {})})
        summary = {k.removeprefix("numbers/"): v for k, v in summary.items()}
        self._each(lambda t: t.finish(summary))
