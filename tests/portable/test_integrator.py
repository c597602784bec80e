"""Integrator behaviour on both runtimes (edge/integrator.py); properties are in
tests/host/test_integrator_props.py.

The heap is for compiling edge/integrator.py from source (~80 KB peak); a board runs it
frozen, and the replay runs it precompiled in 32 KB.
"""
# mp-heap: 192K
from edge.compat import IS_MICROPYTHON, heap_lock, heap_unlock
from edge.flags import CLOCK_STEP, ESTIMATED, INVALID, MISMATCH, MISSING, PARTIAL, RESET
from edge.integrator import REC_LEN, STATE_LEN, Integrator, IntegratorError
from edge.reading import (
    HAS_EXPORT, HAS_IMPORT, HAS_POWER, R_EXP_EXP, R_EXP_HI, R_EXP_LO, R_IMP_EXP, R_IMP_HI,
    R_IMP_LO, R_POWER, R_POWER_EXP, R_PRESENT, new_reading,
)
from runtime import micropython_only

DAY = 2000 * 86400  # a JST midnight (edge seconds)
U = 72000000  # base units per Wh at the default power_exp = -1


def power(r, w, exp=0):
    r[R_PRESENT] = HAS_POWER
    r[R_POWER] = w
    r[R_POWER_EXP] = exp
    return r


def set_import(r, counter, exp=-3):
    r[R_PRESENT] |= HAS_IMPORT
    r[R_IMP_HI] = (counter >> 16) & 0xFFFF
    r[R_IMP_LO] = counter & 0xFFFF
    r[R_IMP_EXP] = exp


def set_export(r, counter, exp=-3):
    r[R_PRESENT] |= HAS_EXPORT
    r[R_EXP_HI] = (counter >> 16) & 0xFFFF
    r[R_EXP_LO] = counter & 0xFFFF
    r[R_EXP_EXP] = exp


def run(it, samples):
    """samples: (edge_s, ms, reading-maker) -> list of closed records."""
    out = [0] * REC_LEN
    recs = []
    for s, ms, r in samples:
        if it.feed(r, s, ms, out):
            recs.append(list(out))
    if it.close(out):
        recs.append(list(out))
    return recs


def test_constant_power_full_slot_is_exact_and_clean():
    it = Integrator()
    r = power(new_reading(), 1000)
    recs = run(it, ((DAY + i, 0, r) for i in range(0, 1801)))
    assert recs[0][:6] == [DAY // 1800, 500, 0, 0, 500, 0]
    # The closing sample opened slot 2, which then closed uncovered.
    assert recs[1][0] == DAY // 1800 + 1 and recs[1][3] & MISSING


def test_export_goes_to_export_only():
    it = Integrator()
    r = power(new_reading(), -3600)
    recs = run(it, ((DAY + 60 * i, 0, r) for i in range(31)))
    assert recs[0][1:4] == [0, 1800, 0]


def test_remainder_is_carried_to_next_slot():
    it = Integrator()
    r = power(new_reading(), 1001)
    recs = run(it, ((DAY + 10 * i, 0, r) for i in range(361)))
    # 1001 W * 0.5 h = 500.5 Wh: 500 in slot 1, the half carried; slot 2 gets 500 + 0.5 = 501.
    assert recs[0][1] == 500 and recs[1][1] == 501 and recs[1][3] == 0


def test_boundary_split_is_exact():
    it = Integrator(max_gap_s=1800)
    r = new_reading()
    out = [0] * REC_LEN
    end = DAY + 1800
    it.feed(power(r, 0), DAY, 0, out)
    it.feed(power(r, 3600), end - 1, 0, out)  # ramp 0 -> 3600 W
    assert it.feed(power(r, 7200), end + 1, 0, out) == 1  # ramp 3600 -> 7200 W across the boundary
    st = it.save()
    # Slot 1: ramp 0..3600 W over 1799 s = 1800*1799 Ws plus 1 s from 3600 to 5400 W = 4500 Ws.
    total1 = 1800 * 1799 + 4500  # Ws
    assert out[1] == total1 // 3600
    # Slot 2 so far: 5400 -> 7200 over 1 s = 6300 Ws; the carry holds the slot-1 remainder too.
    carried = (total1 % 3600 + 6300) * 20000  # Ws -> base units (U / 3600)
    assert st[10] * U + st[11] == carried


def test_zero_crossing_splits_directions_and_keeps_net_exact():
    it = Integrator()
    r = new_reading()
    out = [0] * REC_LEN
    it.feed(power(r, 1000), DAY, 0, out)
    it.feed(power(r, -3000), DAY + 1, 0, out)
    st = it.save()
    # Import triangle: 1000 W for 0.25 s / 2 = 125 Ws; export: 3000 W * 0.75 s / 2 = 1125 Ws.
    assert st[11] == 125 * 20000 and st[13] == 1125 * 20000
    assert st[10] == 0 and st[12] == 0


def test_register_rollover_is_counted():
    it = Integrator()
    r = new_reading()
    c = 0xFFFFFFFF - 400  # mWh, 401 mWh before the wrap
    samples = []
    for i in range(4):
        rr = new_reading()
        rr[R_PRESENT] = 0
        set_import(rr, (c + 300 * i) & 0xFFFFFFFF)
        samples.append((DAY + i, 0, rr))
    recs = run(it, samples)
    assert recs[0][1] == 0 and it.save()[14 + 7] == 900  # 900 mWh carried
    del r


def test_register_backwards_and_jump_flag_reset_without_energy():
    for jump in (-1000, 50000):  # backwards 1 Wh; +50 Wh in 1 s at 20 kW max (5.6 Wh)
        it = Integrator()
        samples = []
        base = 10000000
        for i, delta in enumerate((0, 1000, 1000 + jump, 2000 + jump)):
            rr = new_reading()
            set_import(rr, base + delta)
            samples.append((DAY + i, 0, rr))
        recs = run(it, samples)
        assert recs[0][3] & RESET
        assert recs[0][1] * 1000 + it.save()[21] == 2000  # the two plausible 1 Wh steps


def test_scale_factor_change_is_exact():
    it = Integrator()
    seq = ((123456, -3), (12346, -2), (12350, -2), (123600, -3), (124, 0))
    samples = []
    for i, (v, e) in enumerate(seq):
        rr = new_reading()
        set_export(rr, v, e)
        samples.append((DAY + 60 * i, 0, rr))
    recs = run(it, samples)
    # mWh deltas: +4, +40, +100, +400 = 544 mWh
    assert recs[0][2] == 0 and it.save()[22 + 7] == 544 and recs[0][3] & RESET == 0


def test_coarser_scale_truncation_is_not_a_reset():
    it = Integrator()
    seq = ((123456, -3), (12345, -2), (12347, -2), (1235, -1))  # 123.456 Wh shown as 123.45
    samples = []
    for i, (v, e) in enumerate(seq):
        rr = new_reading()
        set_import(rr, v, e)
        samples.append((DAY + i, 0, rr))
    recs = run(it, samples)
    # -6 mWh of truncation counts as 0; then +20 mWh; then 123.47 -> 123.5 Wh: +30 mWh.
    assert recs[0][3] & RESET == 0
    assert it.save()[14 + 7] == 0 + 20 + 30


def test_register_is_authoritative_and_mismatch_is_flagged():
    for meter_mwh_per_s, expect_mismatch in ((1000, False), (2000, True)):
        it = Integrator()
        rr = new_reading()

        def samples():
            for i in range(1801):
                power(rr, 3600)  # 3600 W -> 1 Wh/s by power
                set_import(rr, 5000000 + meter_mwh_per_s * i)
                yield DAY + i, 0, rr

        rec = run(it, samples())[0]
        assert rec[1] == 1800 * meter_mwh_per_s // 1000 and rec[4] == 1800
        assert bool(rec[3] & MISMATCH) == expect_mismatch


def test_register_missing_at_the_boundary_makes_the_slot_partial():
    it = Integrator()
    out = [0] * REC_LEN
    recs = []
    for i in range(1805):
        r = power(new_reading(), 3600)
        if not 1795 <= i <= 1802:  # the register is not read around the boundary
            set_import(r, 1000 * i)
        if it.feed(r, DAY + i, 0, out):
            recs.append(list(out))
    # Power covered the whole slot, but its register energy after 1794 s is not in it.
    assert recs[0][3] & PARTIAL and recs[0][1] == 1794 and not recs[0][3] & ESTIMATED
    # Slot 1 closed before the delta 1794 -> 1803 s was known: all 9 Wh land in slot 2,
    # flagged estimated (total exact, split unknown), plus 1 Wh for 1803 -> 1804 s.
    it.close(out)
    assert out[1] * 1000 + it.save()[21] == 10000 and out[3] & ESTIMATED


def test_advance_and_clock_step_note():
    it = Integrator(max_gap_s=60)
    out = [0] * REC_LEN
    r = power(new_reading(), 1000)
    for i in range(100):
        it.feed(r, DAY + i, 0, out)
    it.note_clock_step()
    assert it.advance(DAY + 1800 + 59, out) == 0
    assert it.advance(DAY + 1800 + 60, out) == 1
    assert out[0] == DAY // 1800 and out[3] & CLOCK_STEP and out[3] & MISSING
    assert out[1] == 99 * 1000 // 3600 and it.open_slot() == -1
    assert it.feed(r, DAY + 1900, 0, out) == 0 and it.open_slot() == DAY // 1800 + 1


def test_boot_mid_slot_is_partial():
    it = Integrator()
    r = power(new_reading(), 1000)
    rec = run(it, ((DAY + 600 + i, 0, r) for i in range(1201)))[0]
    assert rec[3] & PARTIAL and rec[3] & MISSING and rec[1] == 1200 * 1000 // 3600


def test_gap_across_boundary_flags_both_slots():
    it = Integrator(max_gap_s=60)
    r = power(new_reading(), 1000)
    recs = run(it, ((DAY + i, 0, r) for i in range(1903) if i < 1700 or i >= 1900))
    assert recs[0][3] & PARTIAL and recs[0][3] & MISSING
    assert recs[0][1] == 1699 * 1000 // 3600
    assert recs[1][3] & PARTIAL


def test_short_gap_is_partial_not_missing():
    it = Integrator(max_gap_s=60, missing_ms=90000)
    r = power(new_reading(), 1000)
    rec = run(it, ((DAY + i, 0, r) for i in range(1801) if i < 1000 or i >= 1070))[0]
    assert rec[3] & PARTIAL and not rec[3] & MISSING


def test_clock_backwards_flags_clock_step():
    it = Integrator()
    r = power(new_reading(), 1000)
    recs = run(it, [(DAY + 100, 0, r), (DAY + 101, 0, r), (DAY + 50, 0, r), (DAY + 51, 0, r)])
    assert len(recs) == 1 and recs[0][0] == DAY // 1800  # the slot once, not closed early
    assert recs[0][3] & CLOCK_STEP and recs[0][3] & ESTIMATED


def _stepped_back_run(step_at, back_s):
    """3.6 kW on an export register read every 10 s for 3700 s; at real second step_at the
    clock goes back back_s s without the integrator being told (a restart that lost the
    clock's correction, an RTC stepped by someone else)."""
    it = Integrator()
    samples = []
    for real in range(0, 3701, 10):
        r = new_reading()
        set_export(r, real * 1000)  # mWh: 1 Wh per second
        stamp = DAY + real - (back_s if real >= step_at else 0)
        samples.append((stamp, 0, r))
    return run(it, samples)


def test_clock_back_inside_a_slot_keeps_every_wh_in_slots_given_once():
    """Before: the open slot was closed at the reading stamped earlier and opened again,
    so the same slot came out twice (the second one dropped as stale by the queue) and
    the delta across the step was dropped."""
    recs = _stepped_back_run(1000, 300)
    slots = [x[0] for x in recs]
    assert slots == sorted(set(slots)), slots  # each slot once, in order
    assert sum(x[2] for x in recs) == 3700  # every Wh counted, none twice
    first = DAY // 1800
    assert recs[0][0] == first and recs[0][3] & CLOCK_STEP and recs[0][3] & ESTIMATED
    assert not any(x[3] & RESET for x in recs)
    assert not recs[1][3] & CLOCK_STEP  # the clock was past the base again in slot 2


def test_clock_back_across_a_boundary_lands_in_the_open_slot():
    recs = _stepped_back_run(1850, 300)  # stamps fall back into the slot already closed
    slots = [x[0] for x in recs]
    assert slots == sorted(set(slots)), slots
    assert sum(x[2] for x in recs) == 3700
    first = DAY // 1800
    assert recs[0][0] == first and recs[0][2] == 1800 and not recs[0][3] & CLOCK_STEP
    assert recs[1][0] == first + 1 and recs[1][3] & CLOCK_STEP and recs[1][3] & ESTIMATED
    assert not any(x[3] & RESET for x in recs)


def test_counter_backwards_across_a_clock_step_back_is_still_a_reset():
    it = Integrator()
    out = [0] * REC_LEN
    a, b, c = new_reading(), new_reading(), new_reading()
    set_export(a, 50000)
    set_export(b, 60000)
    set_export(c, 40000)  # lower than the base: a reset whatever the clock did
    it.feed(a, DAY + 100, 0, out)
    it.feed(b, DAY + 110, 0, out)
    it.feed(c, DAY + 50, 0, out)
    assert it.close(out) and out[3] & RESET and out[3] & CLOCK_STEP and out[2] == 10


def test_duplicate_timestamp_is_ignored_and_flagged():
    it = Integrator()
    r = power(new_reading(), 1000)
    recs = run(it, [(DAY, 0, r), (DAY + 1, 0, r), (DAY + 1, 0, power(new_reading(), 9999))])
    assert recs[0][3] & INVALID


def test_out_of_range_power_is_invalid():
    it = Integrator(max_power_w=5000)
    recs = run(it, [(DAY, 0, power(new_reading(), 1000)), (DAY + 1, 0, power(new_reading(), 6000))])
    assert recs[0][3] & INVALID and recs[0][1] == 0


def test_bad_config_and_state_raise_typed_errors():
    for kw in ({"power_exp": -3}, {"max_gap_s": 0}, {"max_power_w": 200000}):
        try:
            Integrator(**kw)
        except IntegratorError as e:
            assert e.kind == "integrator"
        else:
            assert False, kw
    it = Integrator()
    for bad in ([0] * 3, [9] * STATE_LEN):
        try:
            it.restore(bad)
        except IntegratorError:
            pass
        else:
            assert False


def test_save_restore_mid_slot_gives_identical_records():
    rr = new_reading()

    def reading(i):
        r = power(rr, (i * 37) % 9000 - 3000)
        set_import(r, 4000000000 + 700 * i)
        set_export(r, 1000 * i)
        return r

    times = [(DAY + 7 * i, (i * 13) % 1000) for i in range(600)]
    whole = run(Integrator(), ((s, ms, reading(i)) for i, (s, ms) in enumerate(times)))
    first = Integrator()
    out = [0] * REC_LEN
    recs = []
    for i, (s, ms) in enumerate(times[:333]):
        if first.feed(reading(i), s, ms, out):
            recs.append(list(out))
    saved = first.save()
    second = Integrator()
    second.restore(saved)
    recs += run(second, ((s, ms, reading(i + 333)) for i, (s, ms) in enumerate(times[333:])))
    assert recs == whole
    assert len(whole) >= 2


def test_extremes_stay_inside_31_bits():
    # Max power both ways, longest allowed gap, sign flips and boundary crossings.
    lim = 1 << 30
    it = Integrator(max_power_w=20000, power_exp=-1, max_gap_s=1800)
    out = [0] * REC_LEN
    s = DAY + 1799
    vals = (20000, -20000, 20000, 20000, -20000, -20000, 0, 20000)
    for i in range(40):
        r = power(new_reading(), vals[i % len(vals)])
        set_import(r, 0xFFFFFFFF - i)
        set_export(r, (i * 20000000) & 0xFFFFFFFF, -3)
        it.feed(r, s, 999 if i % 2 else 0, out)
        for v in it.save():
            assert -lim <= v < lim
        for v in out:
            assert -lim <= v < lim
        s += 1800 if i % 3 else 1
    assert it.open_slot() > 0


def test_steady_state_feed_and_close_allocate_nothing():
    micropython_only()
    steady_state_feed_and_close()


def test_steady_state_feed_and_close():
    steady_state_feed_and_close()


def steady_state_feed_and_close():
    """200 feeds across a slot boundary under heap_lock() (a no-op on CPython)."""
    it = Integrator()
    r = power(new_reading(), 2500)
    set_import(r, 10)
    set_export(r, 10)
    out = [0] * REC_LEN
    s = DAY + 1700
    it.feed(r, s, 0, out)
    closed = 0
    n = 0
    heap_lock()
    try:
        while n < 200:  # crosses a slot boundary at n = 100
            s += 1
            r[R_POWER] = 2500 - 37 * n
            r[R_IMP_LO] += 1
            r[R_EXP_LO] += 0 if n % 3 else 1
            closed += it.feed(r, s, 500, out)
            n += 1
    finally:
        heap_unlock()
    assert closed == 1
    assert out[0] == (DAY + 1700) // 1800
    if IS_MICROPYTHON:
        assert out[1] >= 0
