import pytest

from fedot.emulator.split import Split, SplitError, sandwich, uniform_layer_drop


@pytest.mark.parametrize("m,k,expected", [
    (8, 8, list(range(8))),
    (20, 8, [0, 2, 5, 8, 10, 13, 16, 19]),  # stride 19/7, floor(j * stride)
    (26, 2, [0, 25]),
    (5, 3, [0, 2, 4]),
    (1, 1, [0]),
    (7, 0, []),
])
def test_algorithm_1(m, k, expected):
    assert uniform_layer_drop(m, k) == expected


def test_algorithm_1_keeps_first_and_last_and_is_increasing():
    for m in range(2, 40):
        for k in range(2, m + 1):
            kept = uniform_layer_drop(m, k)
            assert kept[0] == 0 and kept[-1] == m - 1 and len(set(kept)) == k and kept == sorted(kept)


def test_sandwich_indices():
    s = sandwich(30, 2, 2, 8)
    assert s.adapter == (0, 1, 28, 29)
    assert s.emulator == tuple(2 + i for i in uniform_layer_drop(26, 8))
    assert s.kept == (0, 1, *s.emulator, 28, 29)
    assert s.to_original()[len(s.kept) - 1] == 29


@pytest.mark.parametrize("args,match", [
    ((6, 2, 2, 3), "cannot keep 3"),
    ((6, 3, 3, 0), "covers the whole"),
    ((6, -1, 2, 1), "non-negative"),
    ((6, 0, 0, 1), "at least one block"),
    ((8, 2, 2, 1), "k=1"),
    ((8, 2, 2, -2), "non-negative"),
])
def test_impossible_splits_rejected(args, match):
    with pytest.raises(SplitError, match=match):
        sandwich(*args)


def test_split_validation():
    with pytest.raises(SplitError, match="both adapter and emulator"):
        Split(6, (0, 5), (0, 2)).validate()
    with pytest.raises(SplitError, match="outside"):
        Split(6, (0, 6), (2,)).validate()
