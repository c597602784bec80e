"""Missing-data completion kernels: exact gap totals, largest-remainder split, profiles."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from host_tools.tso import completion as comp


@st.composite
def segments(draw):
    m = draw(st.integers(1, 6))
    total = draw(st.lists(st.integers(0, 10**9), min_size=m, max_size=m))
    seg = draw(st.lists(st.integers(0, m - 1), min_size=1, max_size=40))
    w = draw(st.lists(st.integers(0, 10**6), min_size=len(seg), max_size=len(seg)))
    return total, w, seg


@settings(max_examples=300, deadline=None)
@given(segments())
def test_split_sums_exactly_and_stays_within_one_unit(case):
    total, w, seg = case
    got = comp.split_total(total, w, seg)
    assert got.tolist() == comp.split_total_loop(total, w, seg)
    seg = np.array(seg)
    for j, t in enumerate(total):
        idx = np.nonzero(seg == j)[0]
        if not len(idx):
            continue
        assert got[idx].sum() == t
        ww = [w[i] for i in idx] if sum(w[i] for i in idx) else [1] * len(idx)
        for i, x in zip(idx, ww):
            exact = Fraction(t * x, sum(ww))
            assert exact - 1 < got[i] < exact + 1


def test_split_examples():
    # 10 Wh over a profile 1:1:1 -> 4,3,3 (remainder to the earliest); zeros split evenly
    assert comp.split_total([10], [5, 5, 5], [0, 0, 0]).tolist() == [4, 3, 3]
    assert comp.split_total([7], [0, 0], [0, 0]).tolist() == [4, 3]
    assert comp.split_total([100], [1, 3], [0, 0]).tolist() == [25, 75]
    with pytest.raises(ValueError):
        comp.split_total([-1], [1], [0])
    with pytest.raises(ValueError):
        comp.split_total([2**40], [2**30], [0])


def test_profile_mean_uses_previous_days_only():
    v = np.array([[[10] * 48, [20] * 48, [31] * 48, [0] * 48]])
    p = np.array([[[True] * 48, [True] * 48, [True] * 48, [False] * 48]])
    mean, count = comp.profile_mean(v, p, days=2)
    assert count[0, :, 0].tolist() == [0, 1, 2, 2]
    # day 3: days 1,2 -> (20+31)/2 = 25.5 -> 26 (half up); day 2: (10+20)/2 = 15
    assert mean[0, :, 0].tolist() == [0, 10, 15, 26]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_complete_rows_vectorised_equals_loop(seed, p_missing, p_total):
    rng = np.random.default_rng(seed)
    nd, n = 9, 7
    v = rng.integers(-5000, 5000, (nd, n, 48))
    present = rng.random((nd, n)) >= p_missing
    tot = rng.integers(-100000, 100000, (nd, n))
    known = rng.random((nd, n)) < p_total
    a = comp.complete_rows(v, present, (tot, known))
    b = comp.complete_rows_loop(v, present, (tot, known))
    assert (a.values == b.values).all()
    assert (a.method == b.method).all() and (a.present == b.present).all()
    # measured rows untouched; bracketed rows add up to their day total exactly
    assert (a.values[present] == v[present]).all()
    br = a.method == comp.METHOD_BRACKETED
    assert (a.values[br].sum(axis=1) == tot[br]).all()


def test_bracketed_day_follows_the_profile_shape():
    nd = 3
    v = np.zeros((nd, 1, 48), np.int64)
    v[:2, 0, 20:28] = -100  # consumption in slots 21-28 on the two earlier days
    present = np.array([[True], [True], [False]])
    tot = np.array([[0], [0], [-1000]])
    known = np.array([[False], [False], [True]])
    c = comp.complete_rows(v, present, (tot, known))
    assert c.method[2, 0] == comp.METHOD_BRACKETED
    assert c.values[2, 0, 20:28].tolist() == [-125] * 8 and c.values[2, 0].sum() == -1000
    p = comp.complete_rows(v, present)
    assert p.method[2, 0] == comp.METHOD_PROFILE and p.values[2, 0, 20:28].tolist() == [-100] * 8
    none = comp.complete_rows(v[:1], np.array([[False]]))
    assert none.method[0, 0] == comp.METHOD_NONE and not none.present[0, 0]


def test_bracket_gaps_exact_total_and_problems():
    present = np.ones((2, 10), bool)
    present[0, 3:6] = False
    values = np.full((2, 10), 10, np.int64)
    profile = np.zeros((2, 10), np.int64)
    profile[0, 3:6] = [1, 2, 1]
    # device 0: read 1000 at slot 2, 1077 at slot 8: delivered 2..7 except gap = 30 -> 47
    # device 1: no gap, but the readings disagree with the delivered values by 5
    reads = [[(2, 1000), (8, 1077)], [(0, 0), (10, 105)]]
    out, mask, problems = comp.bracket_gaps(values, present, reads, profile)
    assert out[0, 3:6].tolist() == [12, 23, 12] and out[0, 3:6].sum() == 47
    assert mask[0].tolist() == [False] * 3 + [True] * 3 + [False] * 4
    assert problems == [(1, 0, 10, "no gap but readings differ from the delivered values "
                                    "by 5 Wh")]
    # a register reset (reading goes down) is never bracketed
    out, mask, problems = comp.bracket_gaps(values, present, [[(2, 1000), (8, 900)], []],
                                            profile)
    assert not mask.any() and "register reset" in problems[0][3]
