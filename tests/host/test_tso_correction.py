"""Correction kernel: vectorised == per-resource loop, exact conservation, rounding,
the counterfactual identity of pattern 2, and the int64 bound at 100,000 resources."""
import numpy as np
from hypothesis import given, settings, strategies as st

from host_tools.tso import config, correction, generate, rounding
from host_tools.tso.correction import MICRO

RULES = config.load_rules()
MAX_WH = RULES["correction"]["max_abs_wh_per_slot"]


@st.composite
def inputs(draw, max_wh=5000):
    n = draw(st.integers(1, 12))
    n_pairs = draw(st.integers(1, min(n, 4)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    big = draw(st.booleans())
    lim = MAX_WH if big else max_wh
    return correction.Inputs(
        receiving=rng.integers(-lim, lim + 1, (n, 48)),
        meter=rng.integers(-lim, lim + 1, (n, 48)),
        baseline=rng.integers(-lim, lim + 1, (n, 48)),
        base_ge=rng.random((n, 48)) < 0.5,
        loss_ppm=rng.integers(0, 100000, n),
        is_device=rng.random(n) < 0.7,
        events=rng.random((n, 48)) < 0.6,
        pair=np.concatenate([np.arange(n_pairs), rng.integers(0, n_pairs, n - n_pairs)]),
        pair_has_gen=rng.random(n_pairs) < 0.7)


@settings(max_examples=150, deadline=None)
@given(inputs(), st.sampled_from([1, 2, 3]))
def test_vectorised_equals_loop(inp, pattern):
    dem, gen = correction.shares_micro(inp, pattern)
    dem_l, gen_l = correction.shares_micro_loop(inp, pattern)
    assert (dem == dem_l).all() and (gen == gen_l).all()


@settings(max_examples=150, deadline=None)
@given(inputs(), st.sampled_from([1, 2, 3]))
def test_shares_add_up_to_the_delivered_adjustment_exactly(inp, pattern):
    dem, gen = correction.shares_micro(inp, pattern)
    delta = correction.delivered_micro(inp)
    per_pair = np.zeros_like(dem)
    np.add.at(per_pair, inp.pair, delta)
    assert (dem + gen == per_pair).all()
    # shares never point against the adjustment
    assert ((dem * np.sign(per_pair) >= 0) | (pattern == 2)).all()
    if pattern == 3:
        assert (gen == 0).all()


@settings(max_examples=150, deadline=None)
@given(inputs(), st.sampled_from([1, 2, 3]))
def test_rounding_conserves_each_slot_total(inp, pattern):
    dem, gen = correction.shares_micro(inp, pattern)
    dem_wh, gen_wh = correction.round_shares(dem, gen)
    exact = dem.sum(axis=0) + gen.sum(axis=0)
    assert ((dem_wh.sum(axis=0) + gen_wh.sum(axis=0)) ==
            rounding.round_half_up(exact, MICRO)).all()
    assert (np.abs(dem_wh * MICRO - dem) < MICRO).all()
    assert (np.abs(gen_wh * MICRO - gen) < MICRO).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(-10**13, 10**13), min_size=3, max_size=3),
                min_size=1, max_size=8))
def test_largest_remainder_matches_oracle(rows):
    arr = np.array(rows, np.int64)
    assert rounding.largest_remainder(arr, MICRO).tolist() == \
        rounding.largest_remainder_loop(rows, MICRO)


@settings(max_examples=150, deadline=None)
@given(inputs())
def test_pattern_2_leaves_each_site_its_counterfactual_flow(inp):
    # one pair per site, all with a generation BG: the corrected import/export equal the
    # flows the site would have had without the dispatch (N0 = N - delta), exactly.
    n = len(inp.pair)
    inp.pair = np.arange(n)
    inp.pair_has_gen = np.ones(n, bool)
    dem, gen = correction.shares_micro(inp, 2)
    net = inp.receiving * MICRO
    n0 = net - correction.delivered_micro(inp)
    imp, exp = np.maximum(-net, 0), np.maximum(net, 0)
    assert (imp + dem == np.maximum(-n0, 0)).all()
    assert (exp - gen == np.maximum(n0, 0)).all()


def test_int64_bound_at_100000_resources_of_maximal_values():
    n, k = 100000, 2  # the kernel is shape-generic: 2 slot columns keep this test fast
    inp = correction.Inputs(
        receiving=np.full((n, k), -MAX_WH, np.int64), meter=np.full((n, k), MAX_WH, np.int64),
        baseline=np.full((n, k), -MAX_WH, np.int64), base_ge=np.zeros((n, k), bool),
        loss_ppm=np.zeros(n, np.int64), is_device=np.ones(n, bool),
        events=np.ones((n, k), bool), pair=np.zeros(n, np.int64),
        pair_has_gen=np.ones(1, bool))
    for pattern in (1, 2, 3):
        dem, gen = correction.shares_micro(inp, pattern)
        total = n * 2 * MAX_WH * MICRO  # Python int, exact
        assert total < 2**63
        assert int(dem[0, 0]) + int(gen[0, 0]) == total
    # pattern 2: each site moved from importing 3e7 to importing 1e7: all demand
    dem, gen = correction.shares_micro(inp, 2)
    assert int(dem[0, 0]) == total and int(gen[0, 0]) == 0


def test_generated_day_vectorised_equals_loop():
    data = generate.generate(600, days=8, seed=3)
    for pattern in (1, 2):
        inp, _, _ = correction.prepare_day(data, 7, RULES, pattern)
        assert inp.events.any()
        a = correction.shares_micro(inp, pattern)
        b = correction.shares_micro_loop(inp, pattern)
        assert (a[0] == b[0]).all() and (a[1] == b[1]).all()


def test_generated_bg_tables_are_consistent():
    data = generate.generate(800, days=8, seed=4)
    (res,) = correction.correct(data, RULES, 2)
    assert (res.imbalance == res.actual + res.correction - res.plan).all()
    demand = data.bgs["kind"] == "demand"
    # demand corrections sum the demand shares; generation corrections minus the others
    assert res.correction[demand].sum() == res.dem_share.sum()
    assert res.correction[~demand].sum() == -res.gen_share.sum()
    # the dispatch is visible and the correction pulls every BG towards its plan
    before = np.abs(res.actual - res.plan).sum(axis=1)
    after = np.abs(res.imbalance).sum(axis=1)
    assert (after[~demand] < before[~demand]).all()
    assert after.sum() < before.sum()


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_bg_sums_exact_on_both_paths(seed, huge):
    rng = np.random.default_rng(seed)
    n, nb = 50, 4
    hi = 2**56 if huge else MAX_WH  # huge: sums beyond 2**53 (int64 path), below 2**63
    values = rng.integers(0, hi, (n, 48))
    codes = rng.integers(0, nb, n)
    want = np.zeros((nb, 48), np.int64)
    np.add.at(want, codes, values)
    assert (correction._sum_rows_by(values, codes, nb) == want).all()
