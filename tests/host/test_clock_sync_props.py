"""edge/clock_sync.py by property, on a checked build (tests/host/small_int_check.py: every
arithmetic result must stay inside 31-bit small ints).

A board clock with a drift inside the configured bound and any boot error, exchanges at
random moments with random uplink/downlink latencies, a collector that stamps anywhere
between receipt and reply and is itself off by up to server_error_ms: whenever the clock
says it is synced, |metering - true| <= its bound <= max_error_ms; the metering clock never
goes back except by a reported step; a reported step is exactly the jump seen.
"""
import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from small_int_check import SEEN, load_checked  # noqa: E402

cs = load_checked(os.path.join("edge", "clock_sync.py"))
T0 = 219000000  # edge seconds, 2026-12


class World:
    def __init__(self, c, ppm, err_ms, server_err_ms):
        self.c = c
        self.ppm = ppm
        self.err = err_ms
        self.server_err = server_err_ms
        self.true = T0 * 1000
        self.out = [0, 0]
        self.last = None
        self.problems = []

    def meter(self):
        r = self.true + self.err + (self.true - T0 * 1000) * self.ppm // 1000000
        self.c.meter_into(r // 1000, r % 1000, self.out)
        m = self.out[0] * 1000 + self.out[1]
        return m

    def observe(self, stepped=False):
        m = self.meter()
        if self.last is not None and m < self.last and not stepped:
            self.problems.append(("went back", self.last, m))
        self.last = m
        s = m // 1000
        if self.c.synced(s):
            b = self.c.bound_ms(s)
            if abs(m - self.true) > b or b > self.c.max_error_ms:
                self.problems.append(("outside bound", m - self.true, b))
        return m

    def wait(self, ms):
        step = max(60000, ms // 20)
        while ms > 0:  # observe along the way: slews happen in meter_into
            d = min(ms, step)
            self.true += d
            ms -= d
            self.observe()

    def exchange(self, seq, up, down, where, cerr):
        m1 = self.observe()
        self.c.sent(seq, m1 // 1000, m1 % 1000)
        self.true += up
        col = self.true + where * down // 1000 + cerr  # stamped between receipt and reply
        self.true += down
        m4 = self.meter()
        before = self.c.steps
        r = self.c.sample(seq, col // 1000, col % 1000, m4 // 1000, m4 % 1000)
        if r == cs.S_STEP:
            assert self.c.steps == before + 1
            m = self.meter()
            jump = self.c.jump_s * 1000 + self.c.jump_ms
            if m - m4 != jump:
                self.problems.append(("step not as reported", m - m4, jump))
        self.observe(stepped=(r == cs.S_STEP))
        return r


configs = st.fixed_dictionaries({
    "max_error_ms": st.integers(200, 600000),
    "drift_ppm": st.integers(0, 1000),
    "step_ms": st.integers(1, 600000),
    "slew_ppm": st.integers(1, 1000),
    "server_error_ms": st.integers(0, 60000),
})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs, data=st.data())
def test_synced_means_within_the_bound_and_arithmetic_stays_in_31_bits(cfg, data):
    if cfg["step_ms"] > cfg["max_error_ms"]:
        cfg["step_ms"] = cfg["max_error_ms"]
    c = cs.ClockSync(**cfg)
    ppm = data.draw(st.integers(-cfg["drift_ppm"], cfg["drift_ppm"]))
    err = data.draw(st.one_of(st.integers(-3600000, 3600000),
                              st.integers(-(T0 + 631119600) * 1000, 10**9)))  # a reset RTC
    cerr = data.draw(st.integers(-cfg["server_error_ms"], cfg["server_error_ms"]))
    w = World(c, ppm, err, cfg["server_error_ms"])
    for seq in range(data.draw(st.integers(1, 8))):
        w.wait(data.draw(st.integers(0, 6 * 3600 * 1000)))
        up = data.draw(st.integers(0, 300000))
        down = data.draw(st.integers(0, 300000 - up))
        w.exchange(seq, up, down, data.draw(st.integers(0, 1000)), cerr)
        assert not w.problems, w.problems
    assert c.samples >= 1 and c.synced(w.observe() // 1000) == (c.bound_ms(w.out[0]) <= cfg["max_error_ms"])
    w.wait(data.draw(st.integers(0, 10**8)) * 1000)  # long silence: the bound only grows
    assert not w.problems, w.problems


def test_the_extremes_stay_in_31_bits():
    before = SEEN["checks"]
    c = cs.ClockSync(max_error_ms=600000, drift_ppm=1000, step_ms=600000, slew_ppm=1000,
                     server_error_ms=60000)
    w = World(c, 1000, -(T0 + 631119600) * 1000, 60000)  # a board clock reset to 2000
    w.exchange(1, 300000, 300000, 1000, 60000)  # the longest round trip an ack may take
    w.wait(10**8 * 1000 + 1000)  # past three years: unknown
    assert c.bound_ms(w.out[0]) >= 1 << 29 or not c.synced(w.out[0])
    w.exchange(2, 0, 0, 0, -60000)
    assert SEEN["checks"] > before and SEEN["max"] < 1 << 30
    assert not w.problems, w.problems


def test_a_slow_clock_over_a_long_round_trip_is_covered_by_the_rate_term():
    # 1000 ppm slow, 600 s round trip, stamped at receipt right after sending: the round
    # trip measured on this clock is 600 ms short of the true one; the rate term covers it
    for where in (0, 1000):
        c = cs.ClockSync(max_error_ms=600000, drift_ppm=1000, step_ms=1, slew_ppm=1,
                         server_error_ms=0)  # stepped at once: the bound is the estimate's
        w = World(c, -1000, 0, 0)
        w.exchange(1, 0 if where == 0 else 600000, 600000 if where == 0 else 0, where, 0)
        assert not w.problems, w.problems
