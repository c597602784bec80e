"""Byte-identical replay output on CPython and inside MicroPython, on generated traces
that reach every path: gaps, sign changes, slot boundaries, counter rollover and resets,
clock steps and duplicates (lenient), absent cells."""
import argparse
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import micropython_or_fail
from host_tools.replay import (
    DEFAULTS, build_mpy, compact_lines, config_line, replay_cpython, replay_micropython,
)

T0 = 1778770800000  # 2026-05-15T00:00:00+09:00 in epoch ms


@pytest.fixture(scope="module")
def mpy_dir():
    micropython_or_fail()
    with tempfile.TemporaryDirectory(prefix="smeter-test-mpy-") as d:
        build_mpy(d)
        yield d


@st.composite
def traces(draw):
    n = draw(st.integers(2, 120))
    t = T0 + draw(st.integers(0, 3_600_000))
    imp = draw(st.integers(0, 2**32 + 10**6))  # mWh; the CSV value can exceed the 32-bit counter
    exp = draw(st.integers(0, 10**9))
    cols = draw(st.sampled_from(("ts,power_w", "ts,import_wh,export_wh", "ts,power_w,import_wh,export_wh",
                                 "ts,power_w,export_wh")))
    step = st.one_of(st.integers(1, 5000), st.integers(1, 120_000), st.sampled_from((0, -1500, 1_800_000)))
    lines = [cols]
    for _ in range(n):
        t += draw(step)
        p = draw(st.one_of(st.integers(-200000, 200000), st.sampled_from((0, 1, -1))))
        imp += draw(st.one_of(st.integers(0, 3000), st.sampled_from((-5000, 10**8))))
        exp += draw(st.integers(0, 5000))
        cells = ["%d" % t if draw(st.booleans()) else _iso(t)]
        if "power_w" in cols:
            cells.append("" if draw(st.integers(0, 15)) == 0 else "%d.%d" % divmod(p, 10) if p >= 0
                         else "-%d.%d" % divmod(-p, 10))
        if "import_wh" in cols:
            cells.append("%d.%03d" % divmod(max(imp, 0), 1000))
        if "export_wh" in cols:
            cells.append("" if draw(st.integers(0, 15)) == 0 else "%d.%03d" % divmod(exp, 1000))
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _iso(t_ms):
    import datetime

    jst = datetime.timezone(datetime.timedelta(hours=9))
    dt = datetime.datetime.fromtimestamp(t_ms / 1000, jst).replace(microsecond=(t_ms % 1000) * 1000)
    return dt.isoformat(timespec="milliseconds")


def args(max_gap_s):
    ns = argparse.Namespace(**DEFAULTS)
    ns.max_gap_s = max_gap_s
    ns.power_exp = -1
    return ns


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(traces(), st.sampled_from((5, 60, 1800)))
def test_runtimes_agree_byte_for_byte(mpy_dir, text, max_gap_s):
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write(text)
    try:
        lines = list(compact_lines(f.name, config_line(args(max_gap_s), 20000), lenient=True))
    finally:
        os.unlink(f.name)
    cp = replay_cpython(lines)
    mp = replay_micropython(lines, mpy_dir=mpy_dir)
    assert cp == mp
    assert cp.startswith("slot_start,slot,import_wh,export_wh,flags\n")
