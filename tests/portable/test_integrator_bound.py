"""The attribution bound (docs/integrator.md "Attribution bound"), on both runtimes: over
random power profiles, poll failures, outages, late and uncertain polls and kills, every
slot's value is within its bound of the exact truth, and every slot not flagged
`estimated` is within the configured share of the class tolerance (tests/portable/
bound_sim.py is the simulation). On MicroPython the bound paths run under heap_lock().

The heap is for compiling edge/integrator.py from source in the test lane.
"""
# mp-heap: 192K
from bound_sim import T0, check, simulate
from edge.compat import IS_MICROPYTHON, heap_lock, heap_unlock
from edge.flags import (
    BOUND_SHIFT, BOUND_UNKNOWN, ESTIMATED, bound_code, bound_wh, flag_bound, names,
)
from edge.integrator import REC_BOUND, REC_LEN, Integrator
from edge.reading import HAS_IMPORT, R_IMP_EXP, R_IMP_HI, R_IMP_LO, R_PRESENT

SEEDS = 12 if IS_MICROPYTHON else 60


def test_every_value_within_its_bound_and_unflagged_within_the_share():
    n = 0
    for seed in range(SEEDS):
        recs, truth, cfg = simulate(seed)
        k, _ = check(recs, truth, cfg)
        n += k
    assert n > SEEDS * 2  # the cases produced slots to check


def _reading(mwh):
    r = [0] * 9
    r[R_PRESENT] = HAS_IMPORT
    r[R_IMP_HI] = mwh >> 16
    r[R_IMP_LO] = mwh & 0xFFFF
    r[R_IMP_EXP] = -3
    return r


def _run(polls, unc=0, est_bp=50):
    """1 Wh/s import (3.6 kW), readings at the given seconds from T0; the records."""
    it = Integrator(max_power_w=10000, max_gap_s=600, est_bp=est_bp)
    out = [0] * REC_LEN
    recs = []
    for s in polls:
        if it.feed(_reading(s * 1000), T0 + s, 0, out, unc):
            recs.append(list(out))
    return recs


def test_boundary_reading_gives_a_small_bound_a_missed_one_a_large_flagged_one():
    exact = _run(list(range(0, 3601, 30)))
    assert exact[0][:4] == [T0 // 1800, 1800, 0, 0]
    assert 0 <= exact[0][REC_BOUND] <= 2  # resolution and flooring only
    # The boundary poll at 1800 failed: readings at 1770 and 1830 straddle it.
    missed = _run([s for s in range(0, 3601, 30) if s != 1800])
    assert missed[0][1] == 1800  # constant power: the split is right...
    # ...but the 60 Wh counted between 1770 and 1830 could have fallen on either side
    # (30 s at 10 kW is more than that, so the delta itself is the bound).
    assert 60 <= missed[0][REC_BOUND] <= 63
    assert missed[0][3] & ESTIMATED
    # Without the rule the bound is still there, the flag is not.
    plain = _run([s for s in range(0, 3601, 30) if s != 1800], est_bp=0)
    assert plain[0][REC_BOUND] == missed[0][REC_BOUND] and not plain[0][3] & ESTIMATED


def _idle(bidir, carry_split):
    """Two slots of 1-Wh counters (exp 0) read every 30 s (records: the two, and the one
    the last reading opened); with carry_split the boundary reading fails and 1 Wh counted
    between 1770 and 1830 is split at 1800, moving the carried remainder."""
    from edge.reading import HAS_EXPORT, R_EXP_EXP, R_EXP_HI, R_EXP_LO

    it = Integrator(max_power_w=5000, max_gap_s=600, est_bp=50)
    out = [0] * REC_LEN
    r = [0] * 9
    r[R_PRESENT] = HAS_IMPORT | (HAS_EXPORT if bidir else 0)
    recs = []
    wh = 100
    for s in range(0, 3601, 30):
        if carry_split and s == 1830:
            wh += 1
        r[R_IMP_HI], r[R_IMP_LO], r[R_IMP_EXP] = 0, wh, 0
        r[R_EXP_HI], r[R_EXP_LO], r[R_EXP_EXP] = 0, 7, 0
        if carry_split and s == 1800:
            continue  # the boundary reading failed: 1770..1830 is split at 1800
        if it.feed(r, T0 + s, 0, out, 0):
            recs.append(list(out))
    it.close(out)
    recs.append(list(out))
    return recs


def test_an_idle_slot_read_at_its_boundaries_is_exact_to_a_digit_per_register():
    # A counter that does not move hides less than its resolution; nothing else is in
    # doubt (no carried remainder moved): the bound is one digit per register, within
    # the rule (which allows one digit per register direction, as certification does).
    for bidir in (0, 1):
        recs = _idle(bidir, 0)
        assert [r[1] + r[2] for r in recs] == [0, 0, 0]
        assert recs[0][REC_BOUND] == 1 + bidir and not recs[0][3] & ESTIMATED, recs[0]
    # A split moves the carried remainder: flooring enters the bound (and here the
    # straddling delta, 1 Wh, itself).
    recs = _idle(0, 1)
    assert recs[0][REC_BOUND] >= 2 and recs[0][1] + recs[1][1] == 1


def test_round_trip_uncertainty_widens_the_bound():
    a = _run(list(range(0, 3601, 30)), unc=0)[0][REC_BOUND]
    b = _run(list(range(0, 3601, 30)), unc=2000)[0][REC_BOUND]
    # 2 s before the first reading (boot) and 2 s after the boundary reading's stamp, at
    # 10 kW (the earlier reading's uncertainty does not matter: the later one is nearer).
    assert b > a and 4 * 10000 // 3600 <= b <= 4 * 10000 // 3600 + 3


def test_bound_code_scale_rounds_up_and_survives_the_flags():
    for wh in (0, 1, 2, 3, 5, 7, 100, 1000, 49152):
        c = bound_code(wh)
        assert bound_wh(c) >= wh and (c == 0 or bound_wh(c - 1) < wh)
    assert bound_code(49153) == BOUND_UNKNOWN and bound_code(-1) == BOUND_UNKNOWN
    fl = ESTIMATED | bound_code(5) << BOUND_SHIFT
    assert fl < 0x10000 and flag_bound(fl) == 6 and names(fl) == "estimated"
    assert flag_bound(ESTIMATED | BOUND_UNKNOWN << BOUND_SHIFT) == -1


def test_bound_paths_allocate_nothing():
    it = Integrator(max_power_w=10000, max_gap_s=600, est_bp=50)
    out = [0] * REC_LEN
    r = _reading(0)
    it.feed(r, T0, 0, out, 10)
    for s in (30, 60):
        r[R_IMP_LO] = s * 1000 & 0xFFFF
        r[R_IMP_HI] = s * 1000 >> 16
        it.feed(r, T0 + s, 0, out, 10)
    polls = (1790, 1830, 3700, 9000)  # a crossing, a missed boundary, a spread
    heap_lock()
    try:
        n = 0
        for s in polls:
            v = s * 1000
            r[R_IMP_LO] = v & 0xFFFF
            r[R_IMP_HI] = v >> 16
            n += it.feed(r, T0 + s, 0, out, 10)
            while it.pending():
                n += it.advance(T0 + s, out)
    finally:
        heap_unlock()
    assert n >= 3 and out[REC_BOUND] >= 0
