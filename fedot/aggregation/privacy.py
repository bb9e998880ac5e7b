"""Differential privacy of the adapter updates: Flower's DP wrappers and clientapp mods, Flower's RDP accountant.

DP-FedAvg with client-level privacy (McMahan et al. 2018): each data owner's update (its adapter minus the global
one) is clipped to L2 norm C, the clipped updates are averaged with equal weights, and Gaussian noise of standard
deviation z * C / n is added to the average (n: sampled data owners, z: ``dp-noise-multiplier``). fedot does not
implement any of it: each mode below is one of ``flwr.serverapp.strategy``'s wrappers around Flower's FedAvg, and
the data owners clip with the matching ``flwr.clientapp.mod`` (their ClientApp applies it when the training
Message carries a clipping norm, i.e. only in client-side modes):

- ``server-fixed``: ``DifferentialPrivacyServerSideFixedClipping`` (the owner clips, so it sees raw updates);
- ``client-fixed``: ``DifferentialPrivacyClientSideFixedClipping`` + ``fixedclipping_mod`` (updates leave the data
  owner already clipped);
- ``client-adaptive``: ``DifferentialPrivacyClientSideAdaptiveClipping`` + ``adaptiveclipping_mod``: C follows the
  ``dp-client-adaptive-target-quantile`` of the update norms, learnt privately from one noisy bit per client (Andrew
  et al. 2021).

Accounting: Flower's ``RdpAccountant`` (``flwr.supercore.privacy_accounting``, Google's dp-accounting underneath)
composes one Gaussian release per aggregated round, with no amplification by sampling and add-or-remove-one
neighbouring data owners: the only model Flower's fixed-clipping wrappers accept, and a conservative one. The fixed
modes pass the accountant to the wrapper (``accountant=``), which also refuses a round whose replies are not exactly
the sampled data owners (a release with fewer would be noisier than accounted for, so the round is not released).
Flower's adaptive wrapper takes no accountant in 1.41; fedot composes its releases with the same accountant at
noise multiplier z, which is the privacy of the adaptive mechanism (its update noise and its norm-bit noise are set
so that together they cost what one Gaussian release at z costs; Andrew et al. 2021, Theorem 1). The (epsilon,
delta) spent goes to every round's row and the results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..registry import Registry
from ..settings import Choice, SettingError, registry_group, selector, setting


class BudgetExhausted(RuntimeError):
    """The next release would spend more than dp-max-epsilon: the run stops with what it has."""


@dataclass(frozen=True)
class DPMode:
    wrapper: str = ""  # the flwr.serverapp.strategy class; empty: no DP
    client_mod: str = ""  # the flwr.clientapp.mod the data owners apply
    accountant_in_wrapper: bool = True


@dataclass
class AdaptiveSettings:
    target_quantile: float = setting(0.5, "client-adaptive: share of updates the clipping norm should leave "
                                     "unclipped", ge=0, le=1)
    clip_lr: float = setting(0.2, "client-adaptive: learning rate of the clipping norm", gt=0)
    count_stddev: float = setting(0.0, "client-adaptive: noise standard deviation of the clipped count (sigma_b); "
                                  "0: Flower's default, sampled clients / 20", ge=0)


def _adaptive_sampled(o: AdaptiveSettings, noise_multiplier: float, sampled: int) -> None:
    """Adaptive clipping splits the privacy cost between the update and the count: 2 sigma_b must exceed z."""
    sigma_b = o.count_stddev or sampled / 20
    if 2 * sigma_b <= noise_multiplier:
        raise SettingError(f"dp = 'client-adaptive' with {sampled} sampled clients: the clipped-count noise "
                           f"sigma_b = {sigma_b:g} must exceed dp-noise-multiplier / 2 = {noise_multiplier / 2:g}; "
                           "set dp-client-adaptive-count-stddev above that")


DP_MODES: Registry[DPMode] = Registry("dp mode")
DP_MODES.register("none", DPMode(), help="no differential privacy")
DP_MODES.register("server-fixed", DPMode("DifferentialPrivacyServerSideFixedClipping"), rule="fedavg",
                  help="the owner clips each update to dp-clip-norm, averages and adds Gaussian noise")
DP_MODES.register("client-fixed", DPMode("DifferentialPrivacyClientSideFixedClipping", "fixedclipping_mod"),
                  rule="fedavg", help="data owners clip their updates to dp-clip-norm (fixedclipping_mod); the owner "
                  "averages and adds Gaussian noise")
DP_MODES.register("client-adaptive", DPMode("DifferentialPrivacyClientSideAdaptiveClipping", "adaptiveclipping_mod",
                                            accountant_in_wrapper=False),
                  settings=AdaptiveSettings, rule="fedavg", check_sampled=_adaptive_sampled,
                  help="as client-fixed, the clipping norm adapting to dp-client-adaptive-target-quantile of the "
                  "update norms (adaptiveclipping_mod)")


@dataclass
class DPConfig(Choice):
    mode: str = selector(DP_MODES, "none", "differential privacy of the adapter updates (Flower's wrappers and mods)",
                         key="dp")
    noise_multiplier: float = setting(1.0, "Gaussian noise standard deviation as a multiple of the clipping norm "
                                      "(z)", gt=0)
    clip_norm: float = setting(0.5, "L2 norm each data owner's update is clipped to (client-adaptive: the initial "
                               "norm)", gt=0)
    delta: float = setting(1e-5, "the delta of the reported (epsilon, delta)", gt=0, lt=1)
    max_epsilon: float = setting(0.0, "refuse a round whose release would take epsilon above this; 0: no limit",
                                 ge=0)
    options: dict = registry_group(DP_MODES.settings_groups, prefix="")

    @property
    def on(self) -> bool:
        return bool(DP_MODES[self.mode].wrapper)

    @property
    def settings(self):
        return self.options.get(self.mode)

    def check_sampled(self, sampled: int) -> None:
        check = DP_MODES.entry(self.mode).limit("check_sampled")
        if check is not None:
            check(self.settings, self.noise_multiplier, sampled)

    def check_rule(self, rule: str) -> None:
        needs = DP_MODES.entry(self.mode).limit("rule")
        if needs is not None and rule != needs:
            raise SettingError(f"dp = {self.mode!r} wraps Flower's FedAvg (the accountant assumes equal-weight "
                               f"averaging of clipped updates), not aggregation = {rule!r}; use aggregation = "
                               f"{needs!r}, or dp = 'none' for a robust rule")

    def accountant(self, population: int):
        """Flower's RDP accountant for client-level privacy over ``population`` data owners."""
        from flwr.supercore.privacy_accounting import NeighboringRelation, PrivacyConfig, SamplingMethod
        from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

        try:
            return RdpAccountant(PrivacyConfig(target_delta=self.delta, population_size=population,
                                               neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                                               sampling_method=SamplingMethod.NO_AMPLIFICATION,
                                               max_epsilon=self.max_epsilon or None))
        except ImportError as e:
            raise SettingError(f"dp = {self.mode!r} needs Flower's accountant backend: {e}") from None

    def wrap(self, inner, sampled: int, accountant):
        """Flower's DP wrapper around ``inner`` (a FedAvg), or None without DP."""
        mode = DP_MODES[self.mode]
        if not mode.wrapper:
            return None
        import flwr.serverapp.strategy as s

        cls = getattr(s, mode.wrapper)
        if mode.client_mod == "adaptiveclipping_mod":
            o = self.settings
            return cls(inner, self.noise_multiplier, sampled, initial_clipping_norm=self.clip_norm,
                       target_clipped_quantile=o.target_quantile, clip_norm_lr=o.clip_lr,
                       clipped_count_stddev=o.count_stddev or None)
        return cls(inner, self.noise_multiplier, self.clip_norm, sampled, accountant=accountant)


def release_event(noise_multiplier: float, sampled: int, population: int):
    """One Gaussian release, as Flower's wrappers compose it (for the adaptive mode, composed by fedot)."""
    from flwr.supercore.privacy_accounting import GaussianPrivacyEvent

    return GaussianPrivacyEvent(noise_multiplier=noise_multiplier, sample_size=sampled, population_size=population)


def client_mod(config) -> Callable | None:
    """The Flower clientapp mod a training Message asks for: client-side modes send a clipping norm and the mode."""
    from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

    if KEY_CLIPPING_NORM not in config:
        return None
    name = str(config.get("dp", ""))
    mode = DP_MODES[name] if name in DP_MODES else None
    if mode is None or not mode.client_mod:
        return None
    import flwr.clientapp.mod as mods

    return getattr(mods, mode.client_mod)


class Privacy:
    """A run's DP: Flower's wrapper (around a FedAvg sampling as the strategy does) and the accountant."""

    def __init__(self, cfg: DPConfig, population: int, fraction_train: float, min_available_nodes: int = 1):
        from flwr.serverapp.strategy import FedAvg

        self.cfg, self.name, self.mode, self.population = cfg, cfg.mode, DP_MODES[cfg.mode], population
        self.sampled = max(int(population * fraction_train), 1)  # as FedAvg samples (and FederatedConfig checks)
        self.accountant = cfg.accountant(population)
        inner = FedAvg(fraction_train=fraction_train, fraction_evaluate=0.0, min_train_nodes=1,
                       min_available_nodes=min_available_nodes)
        self.wrapper = cfg.wrap(inner, self.sampled, self.accountant if self.mode.accountant_in_wrapper else None)

    def configure_train(self, server_round: int, arrays, config, grid) -> list:
        from flwr.serverapp.exception import PrivacyBudgetExhausted

        config["dp"] = self.name  # the data owners' ClientApp picks the clipping mod by it
        event = release_event(self.cfg.noise_multiplier, self.sampled, self.population)
        if self.cfg.max_epsilon and self.accountant.would_exceed(event):  # the fixed wrappers check this too
            spent = self.accountant.get_privacy_spent().epsilon
            raise BudgetExhausted(f"round {server_round}'s release would take epsilon above dp-max-epsilon "
                                  f"{self.cfg.max_epsilon:g} (spent: {spent:.4g})")
        try:
            return list(self.wrapper.configure_train(server_round, arrays, config, grid))
        except PrivacyBudgetExhausted as e:
            raise BudgetExhausted(str(e)) from None

    def aggregate_train(self, server_round: int, messages: list):
        arrays, metrics = self.wrapper.aggregate_train(server_round, messages)
        if arrays is not None and not self.mode.accountant_in_wrapper:
            self.accountant.compose(release_event(self.cfg.noise_multiplier, len(messages), self.population))
        return arrays, metrics

    def reply_metrics(self, metrics: dict) -> dict:
        """What the wrapper reads from a reply besides the weight (equal for all: DP-FedAvg is unweighted).

        Adaptive clipping: Flower 1.41's mod reports 1 when the update *was clipped*, and its wrapper updates
        C <- C * exp(-lr * (fraction - target)) with that fraction, which moves C the wrong way (more clipping shrinks
        C further) and diverges. Andrew et al. 2021 (Algorithm 1) use the *unclipped* indicator b = [||update|| <= C]
        in that formula; fedot hands the wrapper b = 1 - clipped, so ``dp-client-adaptive-target-quantile`` is the
        share of updates left unclipped, as in the paper. The count's noise and sensitivity are the same for b and
        1 - b.
        """
        from flwr.supercore.differential_privacy import KEY_NORM_BIT

        out = {"num-examples": 1.0}
        if self.mode.client_mod == "adaptiveclipping_mod":
            out[KEY_NORM_BIT] = 0 if metrics.get(KEY_NORM_BIT, 0) else 1
        return out

    def spent(self) -> dict:
        s = self.accountant.get_privacy_spent()
        return {"mode": self.name, "epsilon": s.epsilon, "delta": s.delta, "releases": s.num_releases,
                "noise_multiplier": self.cfg.noise_multiplier, "clip_norm": float(self.wrapper.clipping_norm)}

    def state(self) -> dict:
        return {"accountant": self.accountant.state_dict(), "clip_norm": float(self.wrapper.clipping_norm)}

    def load_state(self, state: dict) -> None:
        self.accountant.load_state_dict(state["accountant"])
        self.wrapper.clipping_norm = state["clip_norm"]
