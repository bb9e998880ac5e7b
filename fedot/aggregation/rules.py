"""Aggregation rules: Flower's own strategies, registered by name, behind fedot's reply checks.

fedot does not re-implement robust aggregation. Each rule below is one of ``flwr.serverapp.strategy``'s strategies;
fedot's strategy (``strategies.offsite``) validates, bounds and accounts every reply first, then hands the clean
replies to the rule's ``aggregate_train``. FedAvg alone is folded into a running sum as replies arrive (streaming,
:mod:`fedot.aggregation.average`); the others need every reply of the round at once (a median, a Krum score or a
trimmed mean is not a running quantity), so the server holds the round's adapters.

Rules that act on the clients: FedProx sends ``proximal-mu`` in the train config and each data owner adds
(mu / 2) * ||w - w_global||^2 to its loss (Li et al. 2020, Eq. 2). FedAdam keeps Adam moments of the server update
across rounds (Reddi et al. 2021, Algorithm 2); its state is part of the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..settings import setting

RULES: dict[str, Rule] = {}


@dataclass(frozen=True)
class Rule:
    name: str
    build: Callable  # AggregationConfig -> a flwr.serverapp.strategy.Strategy
    streaming: bool = False  # replies folded in as they arrive (the server never holds a round's replies)
    help: str = ""
    client_config: Callable = lambda cfg: {}  # extra train-config entries the data owners need


def register(rule: Rule) -> Rule:
    RULES[rule.name] = rule
    return rule


@dataclass
class AggregationConfig:
    rule: str = setting("fedavg", "how accepted replies become the global adapter (Flower's strategies: "
                        "flwr.serverapp.strategy)", key="aggregation", choices=lambda: sorted(RULES))
    max_example_weight: float = setting(0.0, "cap on the num-examples a reply is weighted by; 0: the largest a "
                                        "client legitimately holds is unknown, so 1e6", ge=0)
    max_update_norm: float = setting(0.0, "L2 distance from the global adapter above which an update is rejected "
                                     "or clipped (update-norm-action); 0: off", ge=0)
    update_norm_action: str = setting("reject", "what happens to an update beyond max-update-norm",
                                      choices=("reject", "clip"))
    trim_beta: float = setting(0.2, "trimmed-mean: fraction cut from each end per coordinate", ge=0, lt=0.5)
    malicious: int = setting(1, "krum, multikrum, bulyan: malicious clients assumed per round (f)", ge=0)
    multikrum_select: int = setting(2, "multikrum: updates with the best Krum scores that are averaged", ge=1)
    proximal_mu: float = setting(0.01, "fedprox: weight of the proximal term", ge=0)
    server_lr: float = setting(0.1, "fedadam: server learning rate (eta)", gt=0)
    server_tau: float = setting(1e-3, "fedadam: adaptivity (tau)", gt=0)

    @property
    def weight_cap(self) -> float:
        return self.max_example_weight or 1e6

    def check(self) -> None:
        if self.rule == "multikrum" and self.multikrum_select < 1:
            raise ValueError("multikrum-select must be at least 1")

    def check_sampled(self, sampled: int) -> None:
        """Refuse before start a rule that cannot work with this many replies per round."""
        need = {"bulyan": 4 * self.malicious + 3, "krum": 2 * self.malicious + 3,
                "multikrum": max(2 * self.malicious + 3, self.multikrum_select)}.get(self.rule, 1)
        if sampled < need:
            raise ValueError(f"aggregation = {self.rule!r} with malicious = {self.malicious} needs at least {need} "
                             f"replies per round, but only {sampled} clients are sampled; sample more clients "
                             "(num-clients, fraction-train) or lower malicious")


def _flower(name: str):
    import flwr.serverapp.strategy as s

    return getattr(s, name)


_COMMON = {"fraction_evaluate": 0.0, "min_train_nodes": 1, "min_available_nodes": 1, "min_evaluate_nodes": 0}

register(Rule("fedavg", lambda c: _flower("FedAvg")(**_COMMON), streaming=True,
              help="example-weighted mean (McMahan et al. 2017), folded in as replies arrive"))
register(Rule("median", lambda c: _flower("FedMedian")(**_COMMON), help="coordinate-wise median (Yin et al. 2018)"))
register(Rule("trimmed-mean", lambda c: _flower("FedTrimmedAvg")(**_COMMON, beta=c.trim_beta),
              help="coordinate-wise mean after cutting trim-beta of each end (Yin et al. 2018)"))
register(Rule("krum", lambda c: _flower("Krum")(**_COMMON, num_malicious_nodes=c.malicious),
              help="the one update closest to its n - f - 2 neighbours (Blanchard et al. 2017)"))
register(Rule("multikrum", lambda c: _flower("MultiKrum")(**_COMMON, num_malicious_nodes=c.malicious,
                                                          num_nodes_to_select=c.multikrum_select),
              help="mean of the multikrum-select best Krum updates"))
register(Rule("bulyan", lambda c: _flower("Bulyan")(**_COMMON, num_malicious_nodes=c.malicious),
              help="Krum selection then trimmed mean around the median (El Mhamdi et al. 2018); n >= 4f + 3"))
register(Rule("fedprox", lambda c: _flower("FedProx")(**_COMMON, proximal_mu=c.proximal_mu), streaming=True,
              help="FedAvg with a proximal term in each data owner's loss (Li et al. 2020)",
              client_config=lambda c: {"proximal-mu": float(c.proximal_mu)}))
register(Rule("fedadam", lambda c: _flower("FedAdam")(**_COMMON, eta=c.server_lr, tau=c.server_tau),
              help="FedAvg's update applied with server-side Adam (Reddi et al. 2021)"))
