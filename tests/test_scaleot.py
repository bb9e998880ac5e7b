"""ScaleOT's RL score update (Eq. 5) on a hand-checked example, and group-wise selection (Eqs. 8-10)."""

import math
import random

import pytest

from fedot.emulator.scaleot import groups, rewards, sample_kept, select, sigmoid, update_scores


def test_groups_are_adjacent_and_cover():
    g = groups(10, 4)
    assert sum(g, []) == list(range(10)) and {len(x) for x in g} == {2, 3}
    assert groups(8, 4) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    with pytest.raises(ValueError, match="N_g"):
        groups(3, 4)


def test_sampling_keeps_half_of_each_group():
    g = groups(12, 4)
    kept = sample_kept([0.0] * 12, g, random.Random(0))
    assert all(len(set(grp) & kept) == len(grp) // 2 for grp in g)


def test_score_update_by_hand():
    # two candidates: losses 1 and 2 -> e^-1 = 0.3679, e^-2 = 0.1353, mean 0.2516 -> rewards +0.1163, -0.1163
    r = rewards([1.0, 2.0])
    assert r[0] == pytest.approx((math.exp(-1) - math.exp(-2)) / 2) and r[1] == pytest.approx(-r[0])
    scores = [0.0, 1.0, -1.0]
    new = update_scores(scores, [{0, 1}, {1, 2}], [1.0, 2.0])
    d0 = sigmoid(0) * (1 - sigmoid(0))  # 0.25
    d1 = sigmoid(1) * (1 - sigmoid(1))
    assert new[0] == pytest.approx(0 + r[0] * d0)  # only in the better candidate: goes up
    assert new[1] == pytest.approx(1 + r[0] * d1 + r[1] * d1)  # in both: the rewards cancel
    assert new[2] == pytest.approx(-1 + r[1] * sigmoid(-1) * (1 - sigmoid(-1)))  # only in the worse: goes down


def test_selection_per_group():
    scores = [5, 1, 3, 2, 9, 0, 4, 7]  # N_g = 2: blocks 0-3 and 4-7
    grouping = groups(8, 2)
    out = select(scores, grouping, n_adapter=2, alpha=0.25)
    assert out["adapter"] == [0, 4]  # the best of each group (Eq. 8, k = 1)
    assert out["harmonized"] == [1, 5]  # the worst of each group (kappa = 8 * 0.25 / 2 = 1)
    assert out["emulator"] == [2, 3, 6, 7]


@pytest.mark.parametrize("n_adapter,alpha,match", [(3, 0.25, "multiple"), (0, 0.25, "multiple"), (2, 1.0, "alpha"),
                                                   (2, -0.1, "alpha"), (6, 0.5, "cannot hold")])
def test_bad_selection_parameters(n_adapter, alpha, match):
    with pytest.raises(ValueError, match=match):
        select([0.0] * 8, groups(8, 2), n_adapter, alpha)
