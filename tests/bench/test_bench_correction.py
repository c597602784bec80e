"""Imbalance correction: the vectorised kernel beside a per-resource Python loop.

Normal suite (--benchmark-disable): 2,000 resources, each side runs once and the results
must be identical. With --benchmark-enable a 100,000-resource x 48-slot day is measured
too: the vectorised kernel on all of it (target <= 1 s), the loop on a 2,000-resource
subset, scaled by 50 in extra_info (the loop is linear in resources), and both compared
on that subset.
"""
import time

import numpy as np
import pytest

from host_tools.tso import config, correction, generate

RULES = config.load_rules()
SUBSET = 2000


def kernel(inp, pattern):
    return correction.round_shares(*correction.shares_micro(inp, pattern))


def loop(inp, pattern):
    return correction.round_shares(*correction.shares_micro_loop(inp, pattern))


def subset(inp, rows):
    kw = {k: getattr(inp, k)[rows] for k in correction.Inputs.__slots__ if k != "pair_has_gen"}
    kw["pair_has_gen"] = inp.pair_has_gen
    return correction.Inputs(**kw)


def day_inputs(n, pattern=2):
    data = generate.generate(n, days=8, seed=11)
    inp, _, _ = correction.prepare_day(data, len(data.days) - 1, RULES, pattern)
    return inp


@pytest.fixture(scope="module")
def small():
    return day_inputs(SUBSET)


@pytest.mark.parametrize("pattern", [1, 2])
def test_bench_vectorised_small(benchmark, small, pattern):
    got = benchmark(kernel, small, pattern)
    want = loop(small, pattern)
    assert all((a == b).all() for a, b in zip(got, want))


@pytest.mark.parametrize("pattern", [1, 2])
def test_bench_loop_small(benchmark, small, pattern):
    got = benchmark.pedantic(loop, args=(small, pattern), rounds=1, iterations=1)
    assert all((a == b).all() for a, b in zip(got, kernel(small, pattern)))


@pytest.mark.parametrize("pattern", [1, 2])
def test_bench_vectorised_100000(benchmark, pattern):
    if benchmark.disabled:
        pytest.skip("100,000-resource case runs only with --benchmark-enable")
    inp = day_inputs(100000, pattern)
    assert inp.events.sum() > 100000
    benchmark.pedantic(kernel, args=(inp, pattern), rounds=5, iterations=1, warmup_rounds=1)
    rows = np.arange(SUBSET)
    part = subset(inp, rows)
    t0 = time.perf_counter()
    want = loop(part, pattern)
    loop_s = time.perf_counter() - t0
    got = kernel(part, pattern)
    assert all((a == b).all() for a, b in zip(got, want))
    median = benchmark.stats.stats.median
    benchmark.extra_info.update({
        "resources": 100000, "slots": 48,
        "loop_subset_resources": SUBSET, "loop_subset_s": round(loop_s, 3),
        "loop_scaled_to_100000_s": round(loop_s * 100000 / SUBSET, 1),
        "speedup": round(loop_s * 100000 / SUBSET / median, 1)})
    assert median <= 1.0, "100,000 x 48 correction took %.3f s" % median
