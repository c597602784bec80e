"""edge/clock_sync.py: the metering clock, its NTP-style estimate from the collector's acks,
slew and step, and the growth of its error bound. Plain asserts: runs under CPython and the
MicroPython unix port (tests/mp_runner.py)."""
# mp-heap: 64K
from edge.clock_sync import S_REJECTED, S_SLEW, S_STEP, ClockSync, grow_ms

T0 = 219000000  # edge seconds, 2026-12-10


def meter(c, s, ms):
    out = [0, 0]
    c.meter_into(s, ms, out)
    return out[0] * 1000 + out[1]


def exchange(c, seq, m1, rtt_ms, true_at_t4_ms, collector_at_ms=None):
    """Send frame seq at metering ms m1, ack back rtt_ms later (metering), carrying the
    collector time collector_at_ms (default: the true time halfway)."""
    c.sent(seq, m1 // 1000, m1 % 1000)
    m4 = m1 + rtt_ms
    if collector_at_ms is None:
        collector_at_ms = true_at_t4_ms - rtt_ms // 2
    return c.sample(seq, collector_at_ms // 1000, collector_at_ms % 1000, m4 // 1000, m4 % 1000)


def test_unsynced_until_the_first_sync():
    c = ClockSync()
    assert c.bound_ms(T0) == -1 and not c.synced(T0) and c.want_time(T0)
    assert meter(c, T0, 5) == T0 * 1000 + 5  # no correction yet


def test_a_large_offset_is_stepped_with_the_bound_of_half_the_round_trip():
    c = ClockSync(max_error_ms=1000, drift_ppm=100, step_ms=128, slew_ppm=500, server_error_ms=50)
    m1 = meter(c, T0, 0)
    # true time is 300.25 s ahead of the board's clock; round trip 400 ms
    r = exchange(c, 7, m1, 400, m1 + 400 + 300250)
    assert r == S_STEP and c.steps == 1
    assert (c.jump_s, c.jump_ms) == (300, 250)
    # half the round trip + 1 ms resolution + the collector's 50 ms + the rate error
    assert 200 + 50 <= c.bound_ms(T0 + 300) <= 200 + 50 + 5
    assert c.synced(T0 + 300) and not c.want_time(T0 + 300)
    assert meter(c, T0 + 10, 0) == (T0 + 10) * 1000 + 300250


def test_the_step_lands_within_the_bound_wherever_the_collector_stamped():
    # The collector's time may be anything between receipt and reply: the estimate is
    # within the bound of the truth at both extremes.
    for where in (0, 1, 2):
        c = ClockSync(server_error_ms=0, drift_ppm=0)
        m1 = meter(c, T0, 0)
        true4 = m1 + 900 + 5000000
        col = true4 - 900 + where * 450  # at receipt, halfway, at the reply
        exchange(c, 1, m1, 900, true4, col)
        err = meter(c, T0 + 1, 0) - ((T0 + 1) * 1000 + 5000000)
        assert -c.bound_ms(T0) <= err <= c.bound_ms(T0), (where, err)


def test_a_small_offset_is_slewed_at_the_bounded_rate_and_never_goes_back():
    c = ClockSync(step_ms=128, slew_ppm=500)
    m1 = meter(c, T0, 0)
    assert exchange(c, 1, m1, 100, m1 + 100 - 100) == S_SLEW  # clock 100 ms ahead
    assert -101 <= c.pend <= -99
    p0 = c.pend
    prev = meter(c, T0, 100)
    # 500 ppm of 100 s = 50 ms applied, the clock still advanced 99.95 s
    now = meter(c, T0 + 100, 100)
    assert now - prev == 100000 - 50 and c.pend == p0 + 50
    for i in range(1, 400):  # fine steps: monotonic, and the slew completes
        t = meter(c, T0 + 100 + i, 100)
        assert t > now
        now = t
    assert c.pend == 0


def test_the_bound_grows_with_the_drift_and_unsyncs_past_the_limit():
    c = ClockSync(max_error_ms=1000, drift_ppm=100, server_error_ms=0)
    m1 = meter(c, T0, 0)
    exchange(c, 1, m1, 200, m1 + 200)
    e0 = c.bound_ms(T0)
    assert e0 <= 110
    assert c.bound_ms(T0 + 3600) == e0 + 360  # 100 ppm of an hour
    assert not c.want_time(T0 + 3600)
    assert c.want_time(T0 + 3600 * 2)  # past half the limit: ask for time again
    k = (1000 - e0) * 10  # seconds until the drift uses up the limit
    assert c.synced(T0 + k) and not c.synced(T0 + k + 10)
    assert grow_ms(1, 100) == 1 and grow_ms(10000, 100) == 1000 and grow_ms(0, 100) == 0


def test_samples_that_are_not_valid_are_rejected():
    c = ClockSync()
    m1 = meter(c, T0, 0)
    c.sent(5, T0, 0)
    assert c.sample(4, T0, 0, T0, 100) == S_REJECTED  # ack of another frame's seq
    assert c.sample(5, T0, 1000, T0, 100) == S_REJECTED  # ms out of range
    c.sent(6, T0, 500)
    assert c.sample(6, T0, 0, T0, 100) == S_REJECTED  # negative round trip
    c.sent(7, T0, 0)
    assert c.sample(7, T0, 0, T0 + 601, 0) == S_REJECTED  # longer than any ack timeout
    # a round trip spanning a step measures nothing
    c.sent(8, T0, 0)
    c.sent(9, T0, 0)
    exchange(c, 9, m1, 100, m1 + 100 + 600000)
    assert c.steps == 1
    c.sent(10, T0 + 600, 0)
    c.gen += 1  # as a step would
    assert c.sample(10, T0 + 700, 0, T0 + 600, 100) == S_REJECTED
    assert c.rejected == 5 and c.samples == 1


def test_two_samples_intersect_and_a_contradicting_one_is_taken_and_counted():
    c = ClockSync(server_error_ms=0, drift_ppm=0, step_ms=10000)

    def off():  # metering - true, ms (the truth here is the raw clock)
        return c.off_s * 1000 + c.off_ms

    m1 = meter(c, T0, 0)
    # round trip 1000 ms, the collector stamped at receipt: true time at t4 is in [T, T + rtt]
    exchange(c, 1, m1, 1000, m1 + 1000, m1)
    b1 = c.bound_ms(T0) - abs(c.pend)
    assert 500 <= b1 <= 503
    assert abs(c.pend) <= b1  # the truth (0) is inside
    # a second exchange stamped at the reply: the two intervals overlap in a narrow band
    m1 = meter(c, T0 + 10, 0)
    exchange(c, 2, m1, 1000, m1 + 1000 - off(), m1 + 1000 - off())
    b2 = c.bound_ms(T0 + 10) - abs(c.pend)
    assert b2 < 10 and abs(c.pend + off()) <= b2
    assert c.inconsistent == 0
    # truth moved 5 s (a collector clock step): outside everything known, taken anyway
    m1 = meter(c, T0 + 20, 0)
    exchange(c, 3, m1, 100, m1 + 100 - off() + 5000)
    assert c.inconsistent == 1 and c.steps == 0
    assert abs(c.pend + off() - 5000) <= c.bound_ms(T0 + 20)


def test_a_board_clock_reset_to_2000_is_stepped_by_seconds():
    c = ClockSync()
    raw = -631119600 + 3600  # the board epoch 2000-01-01 plus an hour, in edge seconds
    m1 = meter(c, raw, 0)
    c.sent(1, raw, 0)
    assert c.sample(1, T0, 100, raw, 300) == S_STEP
    assert meter(c, raw + 1, 300) // 1000 == T0 + 1
    assert c.synced(T0 + 1)
    assert m1 == raw * 1000


def test_external_mode_trusts_the_caller():
    c = ClockSync(external=True, external_error_ms=20)
    assert c.synced(T0) and c.bound_ms(T0) == 20 and not c.want_time(T0)
    c.external_ok = False  # e.g. a board's RTC reads its reset year
    assert not c.synced(T0) and c.bound_ms(T0) == -1
    c.sent(1, T0, 0)
    assert c.sample(1, T0 + 100, 0, T0, 10) == S_REJECTED


def test_meter_into_allocates_nothing():
    from edge.compat import IS_MICROPYTHON, heap_lock, heap_unlock

    c = ClockSync()
    m1 = meter(c, T0, 0)
    exchange(c, 1, m1, 100, m1 + 100 - 90)  # a slew in progress
    out = [0, 0]
    c.meter_into(T0 + 1, 0, out)
    heap_lock()
    try:
        for i in range(100):
            c.meter_into(T0 + 2 + i, i, out)
            c.bound_ms(T0 + 2 + i)
            c.synced(T0 + 2 + i)
    finally:
        heap_unlock()
    assert out[0] == T0 + 101 or not IS_MICROPYTHON


def test_offset_restored_after_a_power_cut_is_kept_but_unsynced():
    c = ClockSync()
    c.set_offset(-3, 250)
    assert meter(c, T0, 900) == T0 * 1000 + 900 - 2750
    assert not c.synced(T0)
    c.set_offset(0, -1)
    assert (c.off_s, c.off_ms) == (-1, 999)
