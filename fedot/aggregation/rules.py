"""Aggregation rules: Flower's own strategies, registered by name, behind fedot's reply checks.

fedot does not re-implement robust aggregation. Each rule below is one of ``flwr.serverapp.strategy``'s strategies,
registered in :data:`RULES` with its own settings group (keys ``<rule>-<option>``, e.g. ``trimmed-mean-beta``) and its
limits: ``streaming`` (folded into a running sum as replies arrive), ``min_replies`` (how many replies a round needs,
from its settings: Krum's n >= 2f + 3, Bulyan's n >= 4f + 3) and ``client_config`` (what the data owners must be told).
fedot's strategy (``strategies.offsite``) validates, bounds and accounts every reply first, then hands the clean
replies to the rule's ``aggregate_train``. FedAvg and FedProx are folded into a running sum as replies arrive
(streaming, :mod:`fedot.aggregation.average`); the others need every reply of the round at once (a median, a Krum
score or a trimmed mean is not a running quantity), so the server holds the round's adapters.

Rules that act on the clients: FedProx sends ``proximal-mu`` in the train config and each data owner adds
(mu / 2) * ||w - w_global||^2 to its loss (Li et al. 2020, Eq. 2). FedAdam keeps Adam moments of the server update
across rounds (Reddi et al. 2021, Algorithm 2); its state is part of the checkpoint. FedAvgM here is FedAvg with a
server learning rate and no momentum (Reddi et al. 2021's FedOpt with server SGD): the round's mean update times
``fedavgm-server-lr``. N data owners taking k Adam steps each move the mean about k steps' worth, where one owner
holding all the data moves N x k in the same optimizer steps; a server rate above 1 is the equal-compute way to give
the federation more of centralized's sequential progress. Too large diverges (N = 10 did in the headline study; 4 was
chosen on validation questions: docs/results/study-headline/server-lr-selection). Momentum is not offered: over a
handful of rounds it barely builds up, and it is state a resumed run would have to carry.

Each rule names the reference point its server optimiser reads (``reference``): Flower's FedOpt family keeps the
round's global adapter as a dict of arrays, FedAvgM as an ArrayRecord; the strategy sets it every round.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry
from ..settings import Choice, SettingError, registry_group, selector, setting

RULES: Registry = Registry("aggregation rule")
_COMMON = {"fraction_evaluate": 0.0, "min_train_nodes": 1, "min_available_nodes": 1, "min_evaluate_nodes": 0}


def _flower(name: str):
    import flwr.serverapp.strategy as s

    return getattr(s, name)


@dataclass
class TrimmedMeanSettings:
    beta: float = setting(0.2, "trimmed-mean: fraction cut from each end per coordinate", ge=0, lt=0.5)


@dataclass
class KrumSettings:
    malicious: int = setting(1, "malicious clients assumed per round (f)", ge=0)


@dataclass
class MultiKrumSettings:
    malicious: int = setting(1, "multikrum: malicious clients assumed per round (f)", ge=0)
    select: int = setting(2, "multikrum: updates with the best Krum scores that are averaged", ge=1)


@dataclass
class FedProxSettings:
    mu: float = setting(0.01, "fedprox: weight of the proximal term", ge=0)


@dataclass
class FedAdamSettings:
    eta: float = setting(0.1, "fedadam: server learning rate", gt=0)
    tau: float = setting(1e-3, "fedadam: adaptivity", gt=0)


@dataclass
class FedAvgMSettings:
    server_lr: float = setting(1.0, "fedavgm: server learning rate the round's mean update is multiplied by (1: "
                               "FedAvg; above 1 moves further per round at the same compute; choose it on validation "
                               "data, too large diverges)", gt=0)


def _as_dicts(arrays) -> dict:
    return {k: a.numpy() for k, a in arrays.items()}


RULES.register("fedavg", lambda o: _flower("FedAvg")(**_COMMON), streaming=True,
               help="example-weighted mean (McMahan et al. 2017), folded in as replies arrive")
RULES.register("median", lambda o: _flower("FedMedian")(**_COMMON), help="coordinate-wise median (Yin et al. 2018)")
RULES.register("trimmed-mean", lambda o: _flower("FedTrimmedAvg")(**_COMMON, beta=o.beta), settings=TrimmedMeanSettings,
               help="coordinate-wise mean after cutting trimmed-mean-beta of each end (Yin et al. 2018)")
RULES.register("krum", lambda o: _flower("Krum")(**_COMMON, num_malicious_nodes=o.malicious), settings=KrumSettings,
               min_replies=lambda o: 2 * o.malicious + 3,
               help="the one update closest to its n - f - 2 neighbours (Blanchard et al. 2017)")
RULES.register("multikrum", lambda o: _flower("MultiKrum")(**_COMMON, num_malicious_nodes=o.malicious,
                                                           num_nodes_to_select=o.select),
               settings=MultiKrumSettings, min_replies=lambda o: max(2 * o.malicious + 3, o.select),
               help="mean of the multikrum-select best Krum updates")
RULES.register("bulyan", lambda o: _flower("Bulyan")(**_COMMON, num_malicious_nodes=o.malicious), settings=KrumSettings,
               min_replies=lambda o: 4 * o.malicious + 3,
               help="Krum selection then trimmed mean around the median (El Mhamdi et al. 2018); n >= 4f + 3")
RULES.register("fedprox", lambda o: _flower("FedProx")(**_COMMON, proximal_mu=o.mu), settings=FedProxSettings,
               streaming=True, client_config=lambda o: {"proximal-mu": float(o.mu)},
               help="FedAvg with a proximal term in each data owner's loss (Li et al. 2020)")
RULES.register("fedadam", lambda o: _flower("FedAdam")(**_COMMON, eta=o.eta, tau=o.tau), settings=FedAdamSettings,
               reference=_as_dicts, help="FedAvg's update applied with server-side Adam (Reddi et al. 2021)")
RULES.register("fedavgm", lambda o: _flower("FedAvgM")(**_COMMON, server_learning_rate=o.server_lr),
               settings=FedAvgMSettings, reference=lambda arrays: arrays,
               help="FedAvg's update times fedavgm-server-lr (FedOpt with server SGD, Reddi et al. 2021; Flower's "
                    "FedAvgM without momentum)")


@dataclass
class AggregationConfig(Choice):
    rule: str = selector(RULES, "fedavg", "how accepted replies become the global adapter (Flower's strategies)",
                         key="aggregation", members=False)
    max_example_weight: float = setting(0.0, "cap on the num-examples a reply is weighted by; 0: the largest a "
                                        "client legitimately holds is unknown, so 1e6", ge=0)
    max_update_norm: float = setting(0.0, "L2 distance from the global adapter above which an update is rejected "
                                     "or clipped (update-norm-action); 0: off", ge=0)
    update_norm_action: str = setting("reject", "what happens to an update beyond max-update-norm or max-norm-ratio",
                                      choices=("reject", "clip"))
    max_weight_ratio: float = setting(10.0, "a reply's example weight is capped at this many times the round's "
                                      "lower-median count (bounded influence by default); 0: off", ge=0)
    max_norm_ratio: float = setting(10.0, "with at least 3 accepted replies, an update farther from the global "
                                    "adapter than this many times the round's lower-median distance is rejected or "
                                    "clipped (update-norm-action); 0: off", ge=0)
    options: dict = registry_group(RULES.settings_groups, prefix="")

    @property
    def weight_cap(self) -> float:
        return self.max_example_weight or 1e6

    @property
    def settings(self):
        """The chosen rule's own settings (None for a rule without options)."""
        return self.options.get(self.rule)

    @property
    def relative_bounds(self) -> bool:
        return bool(self.max_weight_ratio or self.max_norm_ratio)

    @property
    def rule_streams(self) -> bool:
        """The rule is a weighted mean that can be folded reply by reply (FedAvg, FedProx)."""
        return bool(RULES.entry(self.rule).limit("streaming", False))

    @property
    def streaming(self) -> bool:
        """Replies folded in as they arrive: a streaming rule, unless the relative bounds need the whole round."""
        return self.rule_streams and not self.relative_bounds

    def build(self):
        """The rule's Flower strategy."""
        return RULES[self.rule](self.settings)

    def client_config(self) -> dict:
        """Extra train-config entries the data owners need (FedProx's mu)."""
        return RULES.entry(self.rule).limit("client_config", lambda o: {})(self.settings)

    def reference(self, arrays):
        """The round's global adapter as the rule's server optimiser keeps it (None: the rule keeps none)."""
        convert = RULES.entry(self.rule).limit("reference", None)
        return convert(arrays) if convert else None

    def min_replies(self) -> int:
        return RULES.entry(self.rule).limit("min_replies", lambda o: 1)(self.settings)

    def check_sampled(self, sampled: int) -> None:
        """Refuse before start a rule that cannot work with this many replies per round."""
        need = self.min_replies()
        if sampled < need:
            raise SettingError(f"aggregation = {self.rule!r} with its settings ({self.settings}) needs at least "
                               f"{need} replies per round, but only {sampled} clients are sampled; sample more "
                               "clients (num-clients, fraction-train) or assume fewer malicious clients")
