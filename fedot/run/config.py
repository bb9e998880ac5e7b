"""The settings of a federated run: every run-config key of every sim, declared once in the parts it configures.

The tree mirrors who uses what: the model owner's emulator (``EmulatorSpec``), the data owners' task, data and
training (``DataOwnerConfig``, the only part a ClientApp reads), the rounds and the strategy (here), the owner's
evaluation and FT baseline. ``fedot.settings`` derives the flat keys, checks and docs from it; this module adds the
checks that relate parts to each other, so an experiment that cannot work fails before Flower or Ray start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..aggregation.privacy import DPConfig
from ..aggregation.rules import AggregationConfig
from ..aggregation.schedule import SCHEDULES
from ..data_owner.partition import check_scheme
from ..data_owner.worker import DataOwnerConfig
from ..delivery import DeliveryConfig
from ..emulator.alignment import AlignmentConfig
from ..emulator.spec import EmulatorSpec
from ..emulator.tiers import TierConfig
from ..evaluation.config import EvalConfig
from ..settings import SettingError, from_flat, group, selector, setting
from .tracking import TrackingConfig


@dataclass
class BaselineConfig:
    enabled: bool = setting(False, "also fine-tune the full model centrally on the union of the data owners' data "
                            "(the FT baseline of the five numbers; not private)", key="full-ft")
    steps: int = setting(0, "FT baseline optimizer steps; 0: as many as all data owners took together", ge=0)


RENAMED = {"local-steps": "steps", "local-epochs": "epochs", "trim-beta": "trimmed-mean-beta",
           "malicious": "krum-malicious", "proximal-mu": "fedprox-mu", "server-lr": "fedadam-eta",
           "server-tau": "fedadam-tau", "dp-target-quantile": "dp-client-adaptive-target-quantile",
           "dp-clip-lr": "dp-client-adaptive-clip-lr", "dp-count-stddev": "dp-client-adaptive-count-stddev"}


@dataclass
class OwnerPlacement:
    device: str = setting("", "the model owner's torch device (cpu, cuda, cuda:1); empty: cuda when available. In a "
                          "simulation the memory plan counts the data owners Ray puts on the same GPU")
    device_map: str = setting("none", "none: the owner's full model on owner-device; auto: spread over every visible "
                              "GPU by accelerate (device_map='auto', at most owner-max-memory-gb each)",
                              choices=("none", "auto"))
    max_memory_gb: float = setting(0.0, "owner-device-map auto: GiB of each GPU the owner's full model may take; 0: "
                                   "accelerate's default", ge=0)


@dataclass
class FederatedConfig:
    renamed: ClassVar[dict] = RENAMED  # keys of earlier fedot versions: refused naming the new key, migrated on resume
    run_dir: str = setting("", "absolute output directory (`fedot sim` fills in runs/<sim>-<time>; empty, as in a "
                                "plain flwr run: $FEDOT_RUNS/<sim>-<run id>, FEDOT_RUNS defaulting to ~/fedot-runs)")
    command: str = setting("", "the command that started the run, recorded in results (`fedot sim` fills it in)")
    num_clients: int = setting(2, "data owners the experiment needs: `fedot sim` starts this many SuperNodes, and a "
                               "ServerApp given another number stops with the command that runs it right", ge=1)
    wait_for_clients_s: float = setting(10.0, "seconds the ServerApp waits for num-clients SuperNodes to connect "
                                        "before it stops (a deployment may need longer)", ge=0)
    num_rounds: int = setting(3, "federated rounds", ge=1)
    fraction_train: float = setting(1.0, "share of the data owners sampled each round", gt=0, le=1)
    min_replies: int = setting(1, "valid replies a round needs to aggregate; with fewer the adapter stays as it was",
                               ge=1)
    lr: float = setting(1e-4, "data owners' learning rate (of round 1 when lr-schedule decays it)", gt=0)
    lr_schedule: str = selector(SCHEDULES, "constant", "learning rate across rounds")
    on_divergence: str = setting("rollback", "when a round's adapter evaluates to NaN/Inf (or every reply is "
                                 "non-finite): go back to the last finite adapter and carry on (rollback), or stop "
                                 "there with results of that adapter and a non-zero exit (stop)",
                                 choices=("rollback", "stop"))
    round_timeout_s: float = setting(0.0, "seconds the owner waits for a round's replies; later ones are logged as "
                                     "timed out; 0: wait for all", ge=0)
    resume: bool = setting(False, "continue the run in run-dir from its last checkpointed round (`fedot sim "
                           "--resume --run-dir RUN_DIR`)")
    keep_replies: bool = setting(False, "write every reply of every round (its adapter tensors and metrics, or its "
                                 "error) and the round's global adapter to <run>/replies/round-<r>/: an audit trail, "
                                 "and what a replay aggregates again under other rules (strategies/replay.py)")
    aggregation: AggregationConfig = group(AggregationConfig)
    dp: DPConfig = group(DPConfig, prefix="dp")
    emulator: EmulatorSpec = group(EmulatorSpec)
    tiers: TierConfig = group(TierConfig, prefix="emulator")
    alignment: AlignmentConfig = group(AlignmentConfig, prefix="emulator-alignment")
    delivery: DeliveryConfig = group(DeliveryConfig, prefix="emulator")
    allow_lossless_emulator: bool = setting(False, "ship an emulator that keeps every middle block exactly (the full "
                                            "model): only for ceiling experiments")
    data_owner: DataOwnerConfig = group(DataOwnerConfig)
    evaluation: EvalConfig = group(EvalConfig, prefix="eval")
    baseline: BaselineConfig = group(BaselineConfig, prefix="full-ft")
    owner: OwnerPlacement = group(OwnerPlacement, prefix="owner")
    tracking: TrackingConfig = group(TrackingConfig)

    def refuse_lossless(self, lossless: bool) -> None:
        if lossless and not self.allow_lossless_emulator:
            raise SettingError("this emulator keeps every middle block exactly, so shipping it ships the full model "
                               "to every data owner; set emulator-blocks below the number of middle blocks (or "
                               "choose a compressing emulator-method), or allow-lossless-emulator = true for a "
                               "deliberate ceiling experiment")

    @property
    def sampled_per_round(self) -> int:
        """Data owners sampled each round, as Flower's FedAvg samples them (at least one)."""
        return max(int(self.num_clients * self.fraction_train), 1)

    def check(self) -> None:
        if self.min_replies > self.sampled_per_round:
            raise SettingError(f"min-replies = {self.min_replies} can never be met: each round samples "
                               f"{self.sampled_per_round} of {self.num_clients} data owners (fraction-train "
                               f"{self.fraction_train:g}); lower min-replies or raise num-clients / fraction-train")
        try:
            check_scheme(self.data_owner.partition.scheme, self.data_owner.task)
            self.data_owner.partition.check_owners(self.num_clients)
        except ValueError as e:
            raise SettingError(str(e)) from None
        self.check_alignment()
        self.dp.check_rule(self.aggregation.rule)
        self.dp.check_sampled(self.sampled_per_round)
        self.aggregation.check_sampled(self.sampled_per_round)

    def check_alignment(self) -> None:
        if not self.alignment.enabled:
            return
        if self.delivery.mode == "url":
            raise SettingError(f"emulator-alignment = {self.alignment.method!r} sends the data owners a re-aligned "
                               "emulator every round, but url delivery serves the one artifact published at "
                               "emulator-url; use emulator-delivery = 'message' (or 'path' in a one-machine sim)")
        if self.tiers.levels:
            raise SettingError(f"emulator-alignment = {self.alignment.method!r} re-aligns one emulator; with "
                               f"emulator-tiers = {self.tiers.tiers!r} each tier would need its own alignment, "
                               "which fedot does not do yet: drop one of the two settings")

    @classmethod
    def from_run_config(cls, run_config) -> FederatedConfig:
        return from_flat(cls, dict(run_config), where="run config")
