"""Estimated spread of register deltas over long gaps and restarts (edge/integrator.py), on
both runtimes: exact values, one record per call, save/restore mid-drain, and on
MicroPython the spread and drain paths under heap_lock().

The heap is for compiling edge/integrator.py from source in the test lane.
"""
# mp-heap: 192K
from edge.compat import IS_MICROPYTHON, heap_lock, heap_unlock
from edge.flags import ESTIMATED, MISSING, PARTIAL, RESET
from edge.integrator import REC_LEN, STATE_LEN, Integrator, IntegratorError
from edge.reading import HAS_IMPORT, HAS_POWER, R_IMP_EXP, R_IMP_HI, R_IMP_LO, R_POWER, R_PRESENT

DAY = 2326 * 86400  # a JST midnight (edge seconds)
S0 = DAY // 1800
RI_WH = 14 + 6  # import register: slot Wh and mWh remainder in the state list
RI_REM = 14 + 7


def reading(mwh, w=None):
    """Import register in mWh (exp -3); with power w (W) if given."""
    r = [0] * 9
    r[R_PRESENT] = HAS_IMPORT
    r[R_IMP_HI] = (mwh >> 16) & 0xFFFF
    r[R_IMP_LO] = mwh & 0xFFFF
    r[R_IMP_EXP] = -3
    if w is not None:
        r[R_PRESENT] |= HAS_POWER
        r[R_POWER] = w
    return r


def warm(it, out, n=101, rate=1000, w=None):
    """n samples 1 s apart from DAY at `rate` mWh/s; returns the last counter."""
    for i in range(n):
        assert it.feed(reading(rate * i, w), DAY + i, 0, out) == 0
    return rate * (n - 1)


def drain(it, call, out):
    recs = []
    while call(out):
        recs.append(list(out))
    return recs


def test_gap_over_slots_is_spread_exactly_and_flagged():
    it = Integrator(max_gap_s=60)
    out = [0] * REC_LEN
    c = warm(it, out)  # 100 Wh in slot 0 so far
    t = DAY + 3 * 1800 + 600  # the device was unreachable until 10 min into slot 3
    assert it.feed(reading(c + 5900000), t, 0, out) == 1
    # 1 Wh/s throughout: slot 0 gets 100 + 1700, slots 1 and 2 1800 each, slot 3 600 so far.
    assert out[:6] == [S0, 1800, 0, ESTIMATED, -1, -1]
    assert it.pending() == 2 and it.open_slot() == S0 + 3
    recs = drain(it, lambda o: it.advance(t, o), out)
    assert [r[:6] for r in recs] == [[S0 + 1, 1800, 0, ESTIMATED, -1, -1], [S0 + 2, 1800, 0, ESTIMATED, -1, -1]]
    assert it.pending() == 0 and it.advance(t, out) == 0
    last = drain(it, it.close, out)
    assert [r[:6] for r in last] == [[S0 + 3, 600, 0, ESTIMATED | PARTIAL | MISSING, -1, -1]]


def test_power_only_direction_keeps_gap_slots_missing():
    # Export is known from power only: over the gap it is unknowable.
    it = Integrator(max_gap_s=60)
    out = [0] * REC_LEN
    c = warm(it, out, w=3600)
    it.feed(reading(c + 2 * 1800 * 1000, 3600), DAY + 100 + 3600, 0, out)
    assert out[3] & ESTIMATED and out[3] & PARTIAL
    assert it.advance(DAY + 3800, out) == 1
    assert out[0] == S0 + 1 and out[1] == 1800 and out[3] == ESTIMATED | PARTIAL | MISSING


def test_restart_after_advance_closed_the_slot_puts_its_tail_in_the_next_slot():
    """The agent's kill: state saved, the restarted agent's first tick closes the slot
    (advance), then the first reading spans hours. Nothing is lost."""
    it = Integrator(max_gap_s=60)
    out = [0] * REC_LEN
    c = warm(it, out)
    saved = it.save()
    it = Integrator(max_gap_s=60)
    it.restore(saved)
    t = DAY + 3 * 1800 + 600
    assert it.advance(t, out) == 1
    assert out[:3] == [S0, 100, 0] and out[3] & PARTIAL and not out[3] & ESTIMATED
    assert it.feed(reading(c + 5900000), t, 0, out) == 1
    # Slot 0 is gone: its 1700 Wh tail lands in slot 1, estimated.
    assert out[:6] == [S0 + 1, 3500, 0, ESTIMATED, -1, -1]
    recs = drain(it, it.close, out)
    assert [r[:3] for r in recs] == [[S0 + 2, 1800, 0], [S0 + 3, 600, 0]]
    assert all(r[3] & ESTIMATED for r in recs)


def test_reading_in_the_slot_after_the_closed_one_lumps_without_a_record():
    it = Integrator(max_gap_s=60)
    out = [0] * REC_LEN
    c = warm(it, out)
    assert it.advance(DAY + 1800 + 60, out) == 1 and out[1] == 100
    assert it.feed(reading(c + 1800000), DAY + 1900, 0, out) == 0
    assert it.pending() == 0 and it.close(out) == 1
    assert out[:3] == [S0 + 1, 1800, 0] and out[3] & ESTIMATED


def test_feed_drains_first_and_skips_a_reading_that_would_close():
    it = Integrator(max_gap_s=60)
    out = [0] * REC_LEN
    c = warm(it, out)
    recs = []
    t = DAY + 4 * 1800 + 1790
    c += (t - DAY - 100) * 1000

    def feed(dc, dt):
        n = it.feed(reading(c + dc), t + dt, 0, out)
        if n:
            recs.append(list(out))
        return n

    assert feed(0, 0) == 1 and it.pending() == 3
    # Same slot: a pending record comes out and the reading is integrated too.
    assert feed(5000, 5) == 1 and recs[-1][0] == S0 + 1
    assert it.coverage() == 1795000
    # Next slot: a pending record comes out, the reading waits (not integrated).
    assert feed(15000, 15) == 1 and recs[-1][0] == S0 + 2
    assert it.open_slot() == S0 + 4 and it.pending() == 1
    assert feed(20000, 20) == 1 and recs[-1][0] == S0 + 3 and it.pending() == 0
    # Now the reading (15 s after the integrated one, split exactly) closes slot 4.
    assert feed(21000, 21) == 1 and recs[-1][0] == S0 + 4
    assert recs[-1][3] & ESTIMATED  # slot 4 holds the spread's tail
    recs += drain(it, it.close, out)
    assert [r[0] for r in recs] == list(range(S0, S0 + 6))
    assert sum(r[1] for r in recs) * 1000 + it.save()[RI_REM] == c + 21000


def test_conservation_across_a_mid_drain_save_and_restore():
    def run(cut):
        it = Integrator(max_gap_s=300)
        out = [0] * REC_LEN
        c = warm(it, out, rate=777)
        c += 123456789
        recs = []
        if it.feed(reading(c), DAY + 30 * 1800 + 1234, 567, out):
            recs.append(list(out))
        k = 0
        while it.pending():
            if k == cut:
                saved = it.save()
                it = Integrator(max_gap_s=300)
                it.restore(saved)
            assert it.advance(DAY + 30 * 1800 + 1235, out) == 1
            recs.append(list(out))
            k += 1
        recs += drain(it, it.close, out)
        return recs, it.save()

    whole, st = run(-1)
    assert len(whole) == 31
    assert [r[0] for r in whole] == list(range(S0, S0 + 31))
    assert sum(r[1] for r in whole) * 1000 + st[RI_REM] == 777 * 100 + 123456789
    assert all(r[3] & ESTIMATED for r in whole)
    for cut in (0, 7, 28):
        assert run(cut) == (whole, st)


def test_gap_beyond_max_spread_goes_to_its_last_part():
    it = Integrator(max_power_w=1000, max_gap_s=60, max_spread_s=7200)
    out = [0] * REC_LEN
    c = warm(it, out, rate=50)
    t = DAY + 72 * 3600  # 3 days
    d = 2500000  # 2.5 kWh: plausible within max power x 150 % over the 2 h cap (3 kWh)
    recs = []
    if it.feed(reading(c + d), t, 0, out):
        recs.append(list(out))
    recs += drain(it, it.close, out)
    assert recs[0][0] == S0 and recs[0][1] == 5  # slot 0 keeps its own 5 Wh, gets nothing
    assert [r[0] for r in recs[1:]] == list(range(t // 1800 - 4, t // 1800 + 1))
    assert sum(r[1] for r in recs) * 1000 + it.save()[RI_REM] == c + d
    assert all(r[3] & ESTIMATED for r in recs)


def test_implausible_gap_delta_is_a_reset_not_energy():
    it = Integrator(max_power_w=1000, max_gap_s=60)
    out = [0] * REC_LEN
    c = warm(it, out, rate=200)  # 720 W
    # 10 kWh in one hour from a 1 kW device: a reset/replacement
    assert it.feed(reading(c + 10000000), DAY + 3700, 0, out) == 1
    assert out[:3] == [S0, 20, 0] and out[3] & RESET and not out[3] & ESTIMATED
    assert it.pending() == 0 and it.close(out) == 1
    assert out[:3] == [S0 + 2, 0, 0] and out[3] & RESET and not out[3] & ESTIMATED


def test_config_bounds_of_the_spread():
    assert Integrator().max_spread_s == 86400
    big = {"max_power_w": 200000, "power_exp": 1, "reg_margin_pct": 100}
    fit = Integrator(**big).max_spread_s  # the most that 31 bits allow: about 5.4 h
    assert 18000 < fit < 20000
    assert Integrator(max_spread_s=fit, **big).max_spread_s == fit
    big["max_spread_s"] = fit + 1
    for kw in ({"max_spread_s": 1799}, {"max_spread_s": 259201}, big,
               {"max_power_w": 20000, "max_spread_s": 200000}):
        try:
            Integrator(**kw)
        except IntegratorError as e:
            assert e.kind == "integrator"
        else:
            assert False, kw


def test_longest_spread_at_max_power_stays_inside_31_bits():
    lim = 1 << 30
    for kw in ({"max_power_w": 20000, "max_gap_s": 1800, "max_spread_s": 126000},
               {"max_power_w": 200000, "power_exp": 1, "reg_margin_pct": 100, "max_gap_s": 60},
               {"max_power_w": 1000, "reg_margin_pct": 100, "max_spread_s": 259200}):
        it = Integrator(**kw)
        out = [0] * REC_LEN
        span = it.max_spread_s
        top = kw["max_power_w"] * span * 10 // 36  # mWh at max power over the spread
        hi = 0xFFFFFFFF
        it.feed(reading(hi - 5), DAY + 1799, 999, out)
        n = 0
        while n < 3:  # a 32-bit rollover inside the gap, then again
            s = DAY + 1799 + (n + 1) * span
            it.feed(reading((hi - 5 + (n + 1) * top) & hi), s, 0, out)
            for v in out + it.save():
                assert -lim <= v < lim
            while it.advance(s, out):
                for v in out:
                    assert -lim <= v < lim
            n += 1
        assert len(it.save()) == STATE_LEN


def test_spread_and_drain_allocate_nothing():
    it = Integrator(max_gap_s=60)
    out = [0] * REC_LEN
    c = warm(it, out, w=2000)
    r = reading(c, 2000)
    got = [0, 0, 0]  # feed records, drained records, Wh
    heap_lock()
    try:
        r[R_IMP_LO] = (c + 20000000) & 0xFFFF
        r[R_IMP_HI] = ((c + 20000000) >> 16) & 0xFFFF
        got[0] = it.feed(r, DAY + 12 * 1800 + 7, 250, out)
        got[2] = out[1]
        while it.advance(DAY + 12 * 1800 + 8, out):
            got[1] += 1
            got[2] += out[1]
        while it.close(out):
            got[1] += 1
            got[2] += out[1]
    finally:
        heap_unlock()
    assert got[0] == 1 and got[1] == 12
    assert got[2] * 1000 + it.save()[RI_REM] == c + 20000000
    if IS_MICROPYTHON:
        assert it.pending() == 0


def test_replay_writes_every_spread_slot_in_order():
    import io

    from edge import replay_core

    lines = ["C 20000 -1 60 90000 150 2 5"]
    # 1 Wh/s; the device is silent from 100 s until 10 min into slot 3
    for i in list(range(101)) + [3 * 1800 + 600, 3 * 1800 + 601, 3 * 1800 + 602]:
        mwh = 1000 * i
        lines.append("S %d %d 0 2 0 0 %d %d -3 0 0 0" % (i + 1, DAY + i, mwh >> 16, mwh & 0xFFFF))
    lines.append("E")
    out = io.StringIO()
    replay_core.run(io.BytesIO("\n".join(lines).encode()), out)
    rows = [r.split(",") for r in out.getvalue().splitlines()[1:]]
    assert [int(r[1]) for r in rows] == [1, 2, 3, 4]  # slot of the day
    assert [int(r[2]) for r in rows] == [1800, 1800, 1800, 602]
    assert [r[4] for r in rows[:3]] == ["estimated"] * 3
    assert rows[3][4] == "partial|missing|estimated"


def test_a_late_reply_stamped_in_a_slot_already_closed_moves_its_energy_later():
    # advance() closed slot 0 (the device seemed silent), then the reply of a poll sent
    # inside slot 0 is handled: its delta is energy the closed slot lacks. It goes to the
    # next slot, flagged estimated, and slot 0 is never written twice (before the fix the
    # reading re-opened slot 0 and the delta since the base was lost).
    it = Integrator(max_gap_s=60)
    out = [0] * REC_LEN
    c = warm(it, out)  # 100 Wh in slot 0, last reading at DAY + 100
    assert it.advance(DAY + 1800 + 60, out) == 1 and out[0] == S0 and out[1] == 100
    recs = []
    if it.feed(reading(c + 1500000), DAY + 1600, 0, out):  # the late reply, stamped in slot 0
        recs.append(list(out))
    for i in range(1, 40):  # then on time again in slot 1, at 1 Wh/s
        if it.feed(reading(c + 1500000 + 1000 * (i * 30)), DAY + 1800 + i * 30, 0, out):
            recs.append(list(out))
    while it.close(out):
        recs.append(list(out))
    assert [r[0] for r in recs] == [S0 + 1]
    assert recs[0][1] == 1500 + 39 * 30 and recs[0][3] & ESTIMATED
