"""Differential privacy of the adapter updates: Flower's wrappers and mods behind fedot's checks, the accountant."""

import json
import math
from pathlib import Path

import pytest
import torch

from fedot.aggregation.privacy import DP_MODES, DPConfig
from fedot.settings import SettingError
from support.inprocess import InProcessGrid, run_config, run_server
from support.replies import REF, good, reply, strategy_for


def update(value: float):
    """A reply state whose update (state - REF, REF = 0) has L2 norm |value| * sqrt(8)."""
    return {"w": torch.full((3, 2), float(value)), "b": torch.full((2,), float(value))}


def norm(state) -> float:
    return math.sqrt(sum(float(((v - REF[k]) ** 2).sum()) for k, v in state.items()))


def reference_epsilon(z: float, releases: int, delta: float) -> float:
    """(epsilon at delta) of ``releases`` Gaussian mechanisms at noise multiplier z, straight from dp-accounting."""
    from dp_accounting import dp_event, rdp

    acc = rdp.RdpAccountant()
    acc.compose(dp_event.GaussianDpEvent(z), releases)
    return acc.get_epsilon(delta)


def test_server_side_clipping_bounds_each_update_and_the_accountant_composes_one_release():
    dp = DPConfig(mode="server-fixed", noise_multiplier=1e-6, clip_norm=1.0)
    s, sent = strategy_for(3, dp=dp)
    values = [0.1, 10.0, -50.0]  # norms 0.28 (kept), 28 and 141 (clipped to 1)
    outcome = s.aggregate_round(1, [reply(m, good(update(v), n)) for m, v, n in zip(sent, values, (1, 50, 1000))])
    assert outcome.row["aggregated"]
    clipped = [update(v) for v in values]
    for st in clipped:
        f = min(1.0, 1.0 / norm(st))
        for k in st:
            st[k] = st[k] * f
    expected = {k: sum(st[k] for st in clipped) / 3 for k in REF}  # equal weights, whatever num-examples said
    got = outcome.arrays.to_torch_state_dict()
    for k in REF:
        torch.testing.assert_close(got[k], expected[k], atol=1e-4, rtol=0)
    spent = outcome.row["dp"]
    assert spent["releases"] == 1 and spent["delta"] == dp.delta
    assert spent["epsilon"] == pytest.approx(reference_epsilon(dp.noise_multiplier, 1, dp.delta), rel=1e-6)


def test_noise_has_the_dp_fedavg_scale():
    import numpy as np

    np.random.seed(0)  # Flower draws the noise from numpy's global generator: seeded, so the test cannot flake
    dp = DPConfig(mode="server-fixed", noise_multiplier=2.0, clip_norm=0.5)
    draws = []
    for _ in range(250):  # 250 releases of 8 coordinates: 2,000 draws
        s, sent = strategy_for(4, dp=dp)
        outcome = s.aggregate_round(1, [reply(m, good(update(1e-3), 10)) for m in sent])  # equal, far below C
        draws.append(torch.cat([v.flatten() - 1e-3 for v in outcome.arrays.to_torch_state_dict().values()]))
    noise, sigma = torch.cat(draws).double(), 2.0 * 0.5 / 4  # z * C / n
    assert len(noise) == 2000
    # the sample std of 2,000 normal draws has a relative standard error of 1/sqrt(2 x 2000) = 1.6%: 10% is 6 SE
    assert noise.std().item() == pytest.approx(sigma, rel=0.10)
    assert abs(noise.mean().item()) < 4 * sigma / 2000 ** 0.5  # centred: 4 standard errors of the mean


def test_an_all_zero_update_is_rejected_with_the_reason_not_a_crash():
    s, sent = strategy_for(2, dp=DPConfig(mode="server-fixed"))
    outcome = s.aggregate_round(1, [reply(sent[0], good(update(0.0), 5)), reply(sent[1], good(update(0.1), 5))])
    assert "all-zero update" in outcome.row["rejected"][0]["reason"] and not outcome.row["aggregated"]


def test_a_round_missing_a_sampled_reply_is_not_released():
    dp = DPConfig(mode="server-fixed", noise_multiplier=1.0, clip_norm=1.0)
    s, sent = strategy_for(3, dp=dp)
    outcome = s.aggregate_round(1, [reply(m, good(update(0.1), 5)) for m in sent[:2]])
    assert not outcome.row["aggregated"] and "private release" in outcome.row["not_aggregated_reason"]
    assert outcome.row["dp"]["releases"] == 0 and outcome.row["dp"]["epsilon"] == 0


@pytest.mark.parametrize("clipped, direction", [(0, "shrinks"), (1, "grows")])
def test_client_adaptive_clipping_moves_the_norm_toward_the_quantile_and_is_accounted(clipped, direction):
    """Andrew et al. 2021: if fewer than the target share of updates are clipped, C shrinks; if more, it grows."""
    dp = DPConfig.of("client-adaptive", noise_multiplier=1.5, clip_norm=1.0, target_quantile=0.5, count_stddev=2.0)
    s, sent = strategy_for(40, dp=dp)  # 40 clients: the count's noise (2 / 40 = 0.05) cannot flip the direction
    assert all(m.content["config"]["clipping_norm"] == 1.0 and m.content["config"]["dp"] == "client-adaptive"
               for m in sent)
    outcome = s.aggregate_round(1, [reply(m, good(update(0.01), 5, norm_bit=clipped)) for m in sent])
    new = outcome.row["dp"]["clip_norm"]
    assert outcome.row["aggregated"] and (new < 0.95 if direction == "shrinks" else new > 1.05)
    assert outcome.row["dp"]["epsilon"] == pytest.approx(reference_epsilon(1.5, 1, dp.delta), rel=1e-6)


def test_the_run_stops_before_a_release_beyond_max_epsilon(tiny_models, tmp_path):
    one = reference_epsilon(1.0, 1, 1e-5)
    rc = run_config(tiny_models["llama"], tmp_path / "run", **{"dp": "server-fixed", "dp-noise-multiplier": 1.0,
                                                               "dp-max-epsilon": one * 1.2, "num-rounds": 3})
    rows, results = run_server(rc, InProcessGrid(2, rc))
    assert [r["round"] for r in rows] == [0, 1] and rows[1]["aggregated"]  # round 2 would have exceeded it
    assert results["privacy"]["releases"] == 1 and results["privacy"]["epsilon"] <= one * 1.2


def test_privacy_state_survives_a_checkpoint():
    dp = DPConfig(mode="server-fixed", noise_multiplier=1.0, clip_norm=1.0)
    s, sent = strategy_for(2, dp=dp)
    s.aggregate_round(1, [reply(m, good(update(0.1), 5)) for m in sent])
    state = json.loads(json.dumps(s.privacy.state()))
    fresh, _ = strategy_for(2, dp=dp)
    fresh.privacy.load_state(state)
    assert fresh.privacy.spent() == s.privacy.spent()


def test_adaptive_clipping_that_cannot_reach_its_noise_is_refused_before_start():
    from fedot.run.config import FederatedConfig

    with pytest.raises(SettingError, match="dp-client-adaptive-count-stddev"):
        FederatedConfig.from_run_config({"dp": "client-adaptive", "num-clients": 4, "dp-noise-multiplier": 1.0})
    FederatedConfig.from_run_config({"dp": "client-adaptive", "num-clients": 4, "dp-noise-multiplier": 1.0,
                                     "dp-client-adaptive-count-stddev": 1.0})


@pytest.mark.parametrize("rule", ["median", "krum", "fedadam"])
def test_dp_with_another_rule_is_refused_before_start(rule):
    from fedot.run.config import FederatedConfig

    with pytest.raises(SettingError, match="fedavg"):
        FederatedConfig.from_run_config({"dp": "server-fixed", "aggregation": rule, "num-clients": 6})


def test_every_dp_mode_is_one_of_flowers_wrappers_and_mods():
    import flwr.clientapp.mod as mods
    import flwr.serverapp.strategy as strategies

    for mode in (e.value for e in DP_MODES.entries()):
        assert not mode.wrapper or hasattr(strategies, mode.wrapper)
        assert not mode.client_mod or hasattr(mods, mode.client_mod)


def test_client_side_clipping_happens_at_the_data_owner(tiny_models, tmp_path):
    """With client-fixed DP, every update leaves the data owner already within the clipping norm."""
    sizes = []

    class Watching(InProcessGrid):
        def _reply(self, msg):
            out = super()._reply(msg)
            if msg.metadata.message_type == "train" and not out.has_error():
                sent, back = msg.content["arrays"].to_torch_state_dict(), out.content["arrays"].to_torch_state_dict()
                sizes.append(math.sqrt(sum(float(((back[k] - sent[k]) ** 2).sum()) for k in sent)))
            return out

    rc = run_config(tiny_models["llama"], tmp_path / "run", **{"dp": "client-fixed", "dp-clip-norm": 1e-3,
                                                               "dp-noise-multiplier": 0.5, "lr": 1e-2})
    rows, results = run_server(rc, Watching(3, rc))
    assert len(sizes) == 6 and max(sizes) <= 1e-3 * (1 + 1e-5)
    assert [r["dp"]["releases"] for r in rows[1:]] == [1, 2]
    assert rows[2]["dp"]["epsilon"] == pytest.approx(reference_epsilon(0.5, 2, 1e-5), rel=1e-6)
    assert results["privacy"] == rows[2]["dp"]
    assert "Differential privacy (client-fixed" in (Path(rc["run-dir"]) / "results.md").read_text()
