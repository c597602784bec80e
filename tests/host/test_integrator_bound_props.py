"""The attribution bound under hypothesis, with the 31-bit checked integrator of
test_integrator_props.py: random cases of tests/portable/bound_sim.py (power profiles,
failed and retried polls, outages, late and uncertain stamps, kills); every value within
its bound of the exact truth (compared as Fractions of a Wh), every slot not flagged
`estimated` within the configured share, and no arithmetic outside the small-int range."""
import sys
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PORTABLE_TESTS

if PORTABLE_TESTS not in sys.path:
    sys.path.insert(0, PORTABLE_TESTS)
from bound_sim import MJ_PER_WH, T0, check, simulate  # noqa: E402
from edge.flags import ESTIMATED  # noqa: E402
from test_integrator_props import SEEN, checked  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 4))
def test_bound_holds_31_bit_safe(seed, slots):
    recs, truth, cfg = simulate(seed, integ=checked.Integrator, slots=slots)
    check(recs, truth, cfg)
    for rec in recs:
        k, imp, exp, fl, bound = rec[0], rec[1], rec[2], rec[3], rec[6]
        if k not in truth or k * 1800 < T0:
            continue
        err = abs(imp - Fraction(truth[k][0], MJ_PER_WH)) + abs(exp - Fraction(truth[k][1], MJ_PER_WH))
        assert bound < 0 or err <= bound
        assert bound >= 0 or fl & ESTIMATED  # an unknown bound is always flagged
    assert SEEN["max"] < 2**30
