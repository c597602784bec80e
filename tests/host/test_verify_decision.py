"""The decision rule (host_tools/verify/decision.py): ILAC-G8:09/2019 guard band w = U."""
from fractions import Fraction

from hypothesis import given, settings, strategies as st

from host_tools import exit_codes
from host_tools.verify import compare as cmp, decision as dec


def test_zones_hand_computed():
    tl, w = Fraction(20), Fraction(3)
    assert dec.decide(Fraction(17), tl, w) == dec.PASS          # on the acceptance limit
    assert dec.decide(Fraction(-17), tl, w) == dec.PASS
    assert dec.decide(Fraction(171, 10), tl, w) == dec.COND_PASS
    assert dec.decide(Fraction(20), tl, w) == dec.COND_PASS     # on the tolerance limit
    assert dec.decide(Fraction(201, 10), tl, w) == dec.COND_FAIL
    assert dec.decide(Fraction(-23), tl, w) == dec.COND_FAIL
    assert dec.decide(Fraction(231, 10), tl, w) == dec.FAIL
    # an exact reference: plain pass/fail at the tolerance
    assert dec.decide(Fraction(20), tl, 0) == dec.PASS and dec.decide(Fraction(2001, 100), tl, 0) == dec.FAIL
    # a guard band wider than the tolerance never proves a pass
    assert dec.decide(Fraction(0), Fraction(1), Fraction(2)) == dec.COND_PASS


def test_exit_status_per_statement():
    assert [dec.EXIT[s] for s in dec.ORDER] == [exit_codes.OK, exit_codes.INCOMPLETE,
                                                exit_codes.INCOMPLETE, exit_codes.FAILED,
                                                exit_codes.FAILED]
    assert dec.worst([]) == dec.PASS
    assert dec.worst([dec.COND_PASS, dec.PASS, dec.INCOMPLETE]) == dec.INCOMPLETE
    assert dec.worst([dec.INCOMPLETE, dec.COND_FAIL]) == dec.COND_FAIL
    assert dec.tur(Fraction(2), Fraction(1, 10)) == 20 and dec.tur(2, 0) is None


def test_rule_is_configuration_with_a_source():
    rule = cmp.load_classes()["decision_rule"]
    assert "ILAC-G8:09/2019" in rule["source"] and rule["checked"] and rule["min_tur"] > 0


fr = st.fractions(min_value=-1000, max_value=1000, max_denominator=1000)
pos = st.fractions(min_value=0, max_value=500, max_denominator=1000)


@settings(deadline=None)  # exact arithmetic; a loaded CI host must not fail it on time
@given(fr, pos, pos)
def test_statement_is_monotonic_in_the_error(e, tl, w):
    """A larger |error| never gives a better statement; w = 0 gives only pass/fail; the
    statement is a pass exactly when |e| + w <= TL (the guarded acceptance limit)."""
    s = dec.decide(e, tl, w)
    bigger = dec.decide(abs(e) + 1, tl, w)
    assert dec.ORDER.index(bigger) >= dec.ORDER.index(s)
    assert (s == dec.PASS) == (abs(e) + w <= tl)
    assert (s in (dec.PASS, dec.COND_PASS)) == (abs(e) <= tl)
    assert dec.decide(e, tl, 0) in (dec.PASS, dec.FAIL)
