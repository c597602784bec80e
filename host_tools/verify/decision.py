"""The decision rule: how a measured error, its tolerance and the reference's uncertainty
become a statement of conformity (hw/accuracy_classes.json "decision_rule", docs/certification.md).

ILAC-G8:09/2019 "Guidelines on Decision Rules and Statements of Conformity", non-binary
statement with a guard band w = U (the expanded uncertainty, k = 2, of the reference):

  |e| <= TL - w            pass              (probability of a false accept below 2.5 %)
  TL - w < |e| <= TL       conditional-pass  (within tolerance, not provably so)
  TL < |e| <= TL + w       conditional-fail  (outside tolerance, not provably so)
  |e| > TL + w             fail

TL is the allowed error (tolerance x max(|reference|, Emin) + one digit). With w = 0 (an
exact reference: computed, or the emulator's truth) only pass and fail occur. Exit status:
pass 0; conditional-pass 3 (INCOMPLETE: the reference is too uncertain to prove it);
conditional-fail and fail 1 (the measured error is outside the tolerance); a plan point that
could not be judged (missing, too short, conditions not met) is incomplete, 3.
"""
from host_tools import exit_codes

PASS = "pass"
COND_PASS = "conditional-pass"
INCOMPLETE = "incomplete"
COND_FAIL = "conditional-fail"
FAIL = "fail"
ORDER = (PASS, COND_PASS, INCOMPLETE, COND_FAIL, FAIL)  # worse to the right
EXIT = {PASS: exit_codes.OK, COND_PASS: exit_codes.INCOMPLETE, INCOMPLETE: exit_codes.INCOMPLETE,
        COND_FAIL: exit_codes.FAILED, FAIL: exit_codes.FAILED}
TEXT = {PASS: "PASS", COND_PASS: "CONDITIONAL PASS", INCOMPLETE: "INCOMPLETE",
        COND_FAIL: "CONDITIONAL FAIL", FAIL: "FAIL"}


def decide(err, allowed, guard):
    """The statement for error err (Wh) against allowed TL and guard band w (all exact)."""
    a = abs(err)
    if a <= allowed - guard:
        return PASS
    if a <= allowed:
        return COND_PASS
    if a <= allowed + guard:
        return COND_FAIL
    return FAIL


def worst(decisions):
    """The worst of several statements (ORDER); PASS for none."""
    out = PASS
    for d in decisions:
        if ORDER.index(d) > ORDER.index(out):
            out = d
    return out


def tur(tol_pct, u_pct):
    """Test uncertainty ratio: the tolerance over the reference's expanded uncertainty (both %
    of the reading); None when the reference is exact (u = 0)."""
    return None if not u_pct else tol_pct / u_pct
