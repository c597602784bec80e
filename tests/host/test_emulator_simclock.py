"""The shared simulated clock: file format, speed, jumps, and the MicroPython reader."""
import os
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, run_micropython
from host_tools.emulator import simclock
from host_tools.emulator.simclock import SimClock, format_line, parse_line, parse_start, sim_ms_at, speed_ratio


def test_line_round_trip_and_is_one_line_of_integers():
    line = format_line(1_700_000_000_123, 204_163_200_000, 2000, 1, 3, 204_100_000_000)
    assert line.endswith("\n") and line.count("\n") == 1
    assert all(p.lstrip("-").isdigit() for p in line.split())
    assert parse_line(line) == (1, 1_700_000_000_123, 204_163_200_000, 2000, 1, 3, 204_100_000_000)


@pytest.mark.parametrize(
    "bad",
    ["", "1 2 3 4 5 6", "1 2 3 4 5 6 7 8 9", "1 0 5 1 1 0 0 4", "2 0 0 1 1 0 0", "1 0 0 -1 1 0 0", "1 0 0 1 0 0 0", "1 a 0 1 1 0 0"],
)
def test_bad_lines_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_line(bad)


def test_a_stop_holds_every_reader_at_the_end_from_the_same_line():
    """The demo's end: the line that starts the clock carries the stop, so no reader ever
    sees a rewrite late (a late reader of a speed-0 line stamped readings served at the end
    with an earlier time, and the integrator dropped their delta as a counter reset)."""
    line = format_line(10_000, 5_000, 1440, 1, 1, 5_000, 5_000 + 1_800_000)
    assert line.split()[-1] == "1805000" and len(line.split()) == 8
    vals = parse_line(line)
    assert sim_ms_at(vals, 10_000) == 5_000
    assert sim_ms_at(vals, 10_001) == 6_440
    assert sim_ms_at(vals, 10_000 + 1250) == 1_805_000  # exactly at the stop
    assert sim_ms_at(vals, 10_000 + 1251) == 1_805_000
    assert sim_ms_at(vals, 10_000 + 10**9) == 1_805_000


def test_the_agents_clock_reader_agrees_with_the_format(tmp_path):
    """firmware/lib/clocks.SimFileClock (what agents and boards read) against sim_ms_at."""
    import sys

    sys.path.insert(0, os.path.join(ROOT, "firmware", "lib"))
    try:
        from clocks import SimFileClock
    finally:
        sys.path.pop(0)
    path = tmp_path / "run.clock"
    for line in (format_line(10_000, 5_000, 1440, 1, 1, 5_000, 1_805_000),
                 format_line(10_000, 5_000, 7, 2, 0, 5_000)):
        path.write_text(line)
        vals = parse_line(line)
        for wall in (9_000, 10_000, 10_001, 11_250, 11_251, 99_999):
            c = SimFileClock(str(path), wall=lambda: wall)
            assert c.sim_ms() == sim_ms_at(vals, wall), (line, wall)
    path.write_text("1 0 0 1 1 0 0 4 5")
    with pytest.raises(OSError):
        SimFileClock(str(path))


def test_the_clock_reader_keeps_its_last_line_when_the_heap_is_full(tmp_path, monkeypatch):
    # On a 48 KB board a MemoryError re-reading the clock file once escaped the runner's
    # last-resort handler and ended the agent: the last good line must serve instead.
    import sys

    sys.path.insert(0, os.path.join(ROOT, "firmware", "lib"))
    try:
        import clocks
    finally:
        sys.path.pop(0)
    path = tmp_path / "run.clock"
    line = format_line(10_000, 5_000, 1440, 1, 1, 5_000)
    path.write_text(line)
    wall = [10_000]
    c = clocks.SimFileClock(str(path), refresh_ms=0, wall=lambda: wall[0])

    def no_heap(*a, **k):
        raise MemoryError("injected")

    monkeypatch.setattr(clocks, "open", no_heap, raising=False)
    wall[0] = 11_000
    assert c.sim_ms() == sim_ms_at(parse_line(line), 11_000)
    with pytest.raises(MemoryError):  # no line yet at all: nothing to keep, say so
        clocks.SimFileClock(str(path))


def test_before_wall_start_the_clock_waits():
    vals = parse_line(format_line(10_000, 5_000, 7, 2, 0, 5_000))
    assert sim_ms_at(vals, 9_000) == 5_000
    assert sim_ms_at(vals, 10_000) == 5_000
    assert sim_ms_at(vals, 10_002) == 5_007


@given(
    st.integers(0, 2**42),
    st.integers(-(2**40), 2**40),
    st.integers(0, 10**6),
    st.integers(1, 10**6),
    st.integers(0, 10**7),
    st.integers(0, 10**7),
)
def test_sim_time_is_exact_and_monotonic(w0, s0, num, den, a, b):
    vals = (1, w0, s0, num, den, 0, s0)
    lo, hi = sorted((a, b))
    t_lo = sim_ms_at(vals, w0 + lo)
    t_hi = sim_ms_at(vals, w0 + hi)
    assert t_lo <= t_hi
    assert t_hi == s0 + (hi * num) // den  # integer arithmetic, no float drift over long runs


@settings(max_examples=50)
@given(st.fractions(min_value=0, max_value=10**6, max_denominator=1000))
def test_speed_ratio_accepts_fractions_and_decimals(f):
    num, den = speed_ratio(str(f))
    assert Fraction(num, den) == f
    assert speed_ratio(float(f)) == speed_ratio(repr(float(f)))


@pytest.mark.parametrize("bad", ["-1", "fast", "", "1/0"])
def test_bad_speeds_are_rejected(bad):
    with pytest.raises(ValueError):
        speed_ratio(bad)


def test_parse_start_is_jst_by_default():
    assert parse_start("2020-01-01") == 0
    assert parse_start("2020-01-01T00:30") == 1_800_000
    assert parse_start("2019-12-31T15:00:00+00:00") == 0
    assert parse_start("@86400") == 86_400_000
    with pytest.raises(ValueError):
        parse_start("yesterday")


def test_owner_and_reader_share_one_time_and_speed_accelerates(tmp_path):
    path = str(tmp_path / "run.clock")
    owner = SimClock.create(path, sim_start_ms=1_000_000, speed=1000)
    reader = SimClock.open(path)
    t0 = time.monotonic()
    a = reader.now_ms()
    time.sleep(0.2)
    b = reader.now_ms()
    real_ms = (time.monotonic() - t0) * 1000
    # 0.2 s real at speed 1000 is >= 200 s simulated (and not far more than the real time taken).
    assert 200_000 <= b - a <= real_ms * 1000 + 1000
    assert abs(owner.now_ms() - reader.now_ms()) < 50 * 1000
    assert reader.origin_ms == 1_000_000
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_frozen_clock_steps_and_jumps_are_seen_by_readers(tmp_path):
    path = str(tmp_path / "run.clock")
    owner = SimClock.create(path, sim_start_ms=50_000, speed=0)
    reader = SimClock.open(path)
    time.sleep(0.02)
    assert reader.now_ms() == 50_000
    owner.advance(1_800_000)
    assert reader.now_ms() == 1_850_000 and reader.gen == 1
    owner.jump(-600_000)
    assert reader.now_ms() == 1_250_000 and reader.gen == 2
    assert reader.origin_ms == 50_000  # the origin survives jumps: fault times stay put
    owner.set(speed="1/2")
    assert reader.speed == (1, 2)
    assert reader.real_seconds_for(1000) == pytest.approx(2.0)


def test_private_clock_has_no_file():
    c = SimClock.private(123_000, 0)
    assert c.path is None and c.now_ms() == 123_000
    c.advance(1000)
    assert c.now_ms() == 124_000


def test_micropython_reads_the_same_file(tmp_path):
    path = str(tmp_path / "run.clock")
    owner = SimClock.create(path, sim_start_ms=204_163_200_000, speed=0)
    owner.advance(1_234_000)
    code = "import clockline; print(clockline.read_sim_ms(%r))" % path
    proc = run_micropython(["-c", code], extra_paths=[os.path.join(ROOT, "host_tools", "emulator")])
    assert proc.returncode == 0, proc.stderr.decode()
    assert int(proc.stdout.split()[-1]) == 204_163_200_000 + 1_234_000


def test_default_start_is_a_jst_midnight():
    ms = simclock.today_jst_midnight_ms()
    assert ms % 86_400_000 == 0
    assert simclock.edge_ms_to_iso(ms).endswith("T00:00:00+09:00")
