"""Completion and settlement at scale: vectorised kernels beside per-resource Python loops.

Normal suite (--benchmark-disable): 2,000 resources, each side runs once and the results
must be identical. With --benchmark-enable the 100,000-resource x 48-slot day runs too:
the vectorised kernels on all of it (target <= 1 s), the loops on a 2,000-resource subset
scaled by 50 in extra_info (they are linear in resources), both compared on that subset.

Completion: 8 days of device values, 5 % of the last day's rows missing (a third of those
with a day total from a cumulative reading, bracketed), profile over the 7 days before.
Settlement: negawatt volumes and fees per resource from correction Inputs (every resource
dispatched for 4 slots), plus the per-BG imbalance charges of the day.
"""
import time

import numpy as np
import pytest

from host_tools.tso import completion as comp
from host_tools.tso import correction, pricing, settlement

SUBSET = 2000
BIG = 100000
FEE = 1710


def completion_case(n, seed=1):
    rng = np.random.default_rng(seed)
    nd = 8
    values = rng.integers(-3000, 3000, (nd, n, 48))
    present = np.ones((nd, n), bool)
    present[:-1] = rng.random((nd - 1, n)) > 0.02
    present[-1] = rng.random(n) > 0.05
    tot = rng.integers(-50000, 50000, (nd, n))
    known = ~present & (rng.random((nd, n)) < 0.33)
    return values, present, (tot, known)


def settlement_case(n, seed=2):
    rng = np.random.default_rng(seed)
    events = np.zeros((n, 48), bool)
    events[:, 34:38] = True
    is_device = rng.random(n) < 0.8
    inp = correction.Inputs(
        receiving=rng.integers(-4000, 4000, (n, 48)), meter=rng.integers(-4000, 4000, (n, 48)),
        baseline=rng.integers(-4000, 4000, (n, 48)), base_ge=np.broadcast_to(
            is_device[:, None], (n, 48)).copy(), loss_ppm=rng.integers(0, 50000, n),
        is_device=is_device, events=events, pair=rng.integers(0, 8, n),
        pair_has_gen=np.ones(8, bool))
    imbalance = rng.integers(-10**9, 10**9, (8, 48))
    price = pricing.scarcity_curve(rng.integers(0, 2500, 48), 30000, 5000,
                                   [[1000, 0], [800, "D"], [300, "C"]])
    return inp, imbalance, np.maximum(price, 900)


def settle_vectorised(inp, imbalance, price):
    vol = settlement.negawatt_volume(inp)
    fees = settlement.negawatt_fees(vol, FEE)
    sf = settlement.shortfall(imbalance, np.arange(8) < 5)
    return vol, fees, settlement.charges(sf, price)


def settle_loop(inp, imbalance, price):
    vol, fees = settlement.negawatt_loop(inp, FEE)
    sf = settlement.shortfall(imbalance, np.arange(8) < 5)
    return vol, fees, np.array(settlement.charges_loop(sf.tolist(), price.tolist()))


def sub_completion(case, rows):
    values, present, (tot, known) = case
    return values[:, rows], present[:, rows], (tot[:, rows], known[:, rows])


def sub_inputs(inp, rows):
    kw = {k: getattr(inp, k)[rows] for k in correction.Inputs.__slots__ if k != "pair_has_gen"}
    kw["pair_has_gen"] = inp.pair_has_gen
    return correction.Inputs(**kw)


def same_completion(a, b):
    return (a.values == b.values).all() and (a.method == b.method).all()


def same_settlement(a, b):
    return all((x == y).all() for x, y in zip(a, b))


@pytest.fixture(scope="module")
def small():
    return completion_case(SUBSET), settlement_case(SUBSET)


def test_bench_completion_vectorised_small(benchmark, small):
    case = small[0]
    got = benchmark(comp.complete_rows, *case)
    assert same_completion(got, comp.complete_rows_loop(*case))
    assert (got.method == comp.METHOD_BRACKETED).sum() > 0


def test_bench_completion_loop_small(benchmark, small):
    case = small[0]
    got = benchmark.pedantic(comp.complete_rows_loop, args=case, rounds=1, iterations=1)
    assert same_completion(got, comp.complete_rows(*case))


def test_bench_settlement_vectorised_small(benchmark, small):
    case = small[1]
    got = benchmark(settle_vectorised, *case)
    assert same_settlement(got, settle_loop(*case))
    assert got[0].sum() > 0


def test_bench_settlement_loop_small(benchmark, small):
    case = small[1]
    got = benchmark.pedantic(settle_loop, args=case, rounds=1, iterations=1)
    assert same_settlement(got, settle_vectorised(*case))


def _ratio(benchmark, vec_s, loop_sub_s):
    loop_s = loop_sub_s * BIG / SUBSET
    benchmark.extra_info.update({"vectorised_s": round(vec_s, 4),
                                 "loop_subset_s": round(loop_sub_s, 4),
                                 "loop_scaled_s": round(loop_s, 2),
                                 "ratio_loop_over_vectorised": round(loop_s / vec_s, 1)})
    print("\n100,000 x 48: vectorised %.3f s, loop (x50 of %d) %.1f s, ratio %.0f"
          % (vec_s, SUBSET, loop_s, loop_s / vec_s))


def test_bench_completion_100000(benchmark):
    if benchmark.disabled:
        pytest.skip("100,000-resource case runs with --benchmark-enable")
    case = completion_case(BIG)
    out = case[0].copy()  # completed in place: only missing rows are written, so reruns agree
    got = benchmark.pedantic(comp.complete_rows, args=case, kwargs={"out": out}, rounds=3,
                             iterations=1)
    vec_s = benchmark.stats.stats.min
    assert vec_s <= 1.0
    rows = np.arange(SUBSET)
    t0 = time.perf_counter()
    want = comp.complete_rows_loop(*sub_completion(case, rows))
    loop_sub = time.perf_counter() - t0
    assert (got.values[:, rows] == want.values).all()
    assert (got.method[:, rows] == want.method).all()
    _ratio(benchmark, vec_s, loop_sub)


def test_bench_settlement_100000(benchmark):
    if benchmark.disabled:
        pytest.skip("100,000-resource case runs with --benchmark-enable")
    inp, imbalance, price = settlement_case(BIG)
    got = benchmark.pedantic(settle_vectorised, args=(inp, imbalance, price), rounds=3,
                             iterations=1)
    vec_s = benchmark.stats.stats.min
    assert vec_s <= 1.0
    rows = np.arange(SUBSET)
    t0 = time.perf_counter()
    vol, fees = settlement.negawatt_loop(sub_inputs(inp, rows), FEE)
    loop_sub = time.perf_counter() - t0
    assert (got[0][rows] == vol).all() and (got[1][rows] == fees).all()
    _ratio(benchmark, vec_s, loop_sub)
