"""Trace CSV parsing and validation (host_tools/trace.py)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.reading import (
    HAS_EXPORT, HAS_IMPORT, HAS_POWER, R_EXP_HI, R_EXP_LO, R_IMP_EXP, R_IMP_HI, R_IMP_LO,
    R_POWER, R_POWER_EXP, R_PRESENT,
)
from host_tools.trace import TraceError, parse_energy, parse_lines, parse_power, parse_ts


def rows(text, lenient=False):
    return list(parse_lines(text.splitlines(True), "t.csv", lenient))


def test_ts_iso_and_epoch_ms_agree():
    assert parse_ts("2020-01-01T00:00:00+09:00") == (0, 0)
    assert parse_ts("2019-12-31T15:00:00Z") == (0, 0)
    assert parse_ts("2026-05-15T00:00:00.250+09:00") == (2326 * 86400, 250)
    assert parse_ts(str(1577804400000 + 2326 * 86400000 + 250)) == (2326 * 86400, 250)


@pytest.mark.parametrize("bad", ["2026-05-15T00:00:00", "yesterday", "2026-05-15T00:00:00.0001+09:00",
                                 "2019-12-31T14:59:59Z", "1.5"])
def test_ts_rejects(bad):
    with pytest.raises(ValueError):
        parse_ts(bad)


def test_power_keeps_decimals_up_to_mw():
    assert parse_power("1500") == (1500, 0)
    assert parse_power("-1234.5") == (-12345, -1)
    assert parse_power("0.0005") == (0, -3)  # half-even to mW
    assert parse_power("1.0015") == (1002, -3)
    with pytest.raises(ValueError):
        parse_power("nan")
    with pytest.raises(ValueError):
        parse_power("12345678901234")


def test_energy_is_mwh_wrapping_at_32_bits():
    assert parse_energy("1.234", "x") == 1234
    assert parse_energy("4294967.296", "x") == 0
    assert parse_energy("4294967.297", "x") == 1
    with pytest.raises(ValueError):
        parse_energy("-1", "x")


@settings(max_examples=200)
@given(st.integers(0, 10**12))
def test_energy_counter_halves_round_trip(mwh):
    r = rows("ts,import_wh\n2026-05-15T00:00:00+09:00,%d.%03d\n" % divmod(mwh, 1000))[0].reading
    assert ((r[R_IMP_HI] << 16) | r[R_IMP_LO]) == mwh % 2**32 and r[R_IMP_EXP] == -3


def test_reading_fields_and_absent_cells():
    text = ("ts,power_w,import_wh,export_wh\n"
            "2026-05-15T00:00:00+09:00,-12.5,1.5,\n"
            "1778770801000,,,70000\n")
    a, b = rows(text)
    assert a.reading[R_PRESENT] == HAS_POWER | HAS_IMPORT
    assert (a.reading[R_POWER], a.reading[R_POWER_EXP]) == (-125, -1)
    assert b.reading[R_PRESENT] == HAS_EXPORT and b.line == 3
    assert (b.reading[R_EXP_HI] << 16 | b.reading[R_EXP_LO]) == 70000000


@pytest.mark.parametrize("text, line, words", [
    ("", 1, "empty"),
    ("ts,volts\n", 1, "unknown column"),
    ("power_w\n", 1, "missing the ts"),
    ("ts\n", 1, "at least one"),
    ("ts,power_w\n2026-05-15T00:00:00+09:00,1\n2026-05-15T00:00:01+09:00,x\n", 3, "not a number"),
    ("ts,power_w\n2026-05-15T00:00:00+09:00,1,2\n", 2, "expected 2 fields"),
    ("ts,power_w\n2026-05-15T00:00:01+09:00,1\n2026-05-15T00:00:00+09:00,1\n", 3, "backwards"),
    ("ts,power_w\n2026-05-15T00:00:01+09:00,1\n2026-05-15T00:00:01+09:00,2\n", 3, "duplicate"),
])
def test_bad_traces_name_the_line(text, line, words):
    with pytest.raises(TraceError) as e:
        rows(text)
    assert e.value.line == line and words in str(e.value) and str(e.value).startswith("t.csv:%d:" % line)


def test_lenient_passes_backwards_time_on():
    text = "ts,power_w\n2026-05-15T00:00:01+09:00,1\n2026-05-15T00:00:00+09:00,1\n"
    assert len(rows(text, lenient=True)) == 2


@settings(max_examples=300)
@given(st.decimals(min_value=-10**6, max_value=10**6, places=3, allow_nan=False))
def test_fast_paths_agree_with_decimal(d):
    """Plain decimals take the parser's fast path; the same number in exponent notation
    ("E0") takes the general Decimal path: both give the same value."""
    from decimal import Decimal

    text = str(d)
    v, e = parse_power(text)
    assert Decimal(v).scaleb(e) == Decimal(text).quantize(Decimal("0.001"))
    assert parse_power(text + "E0") == (v, e)
    if d >= 0:
        assert parse_energy(text, "x") == int(Decimal(text) * 1000) % 2**32
        assert parse_energy(text + "E0", "x") == parse_energy(text, "x")


@pytest.mark.parametrize(
    "raw, line, words",
    [
        (b"ts,power_w\n2026-01-01T00:00:00+09:00,1\n\xff\xfe,3\n", 3, "not UTF-8"),
        (b'ts,power_w\n2026-01-01T00:00:00+09:00,"1\x00"\n', 2, "not a number"),
    ],
)
def test_undecodable_files_are_trace_errors_with_the_line(tmp_path, raw, line, words):
    from host_tools.trace import read_trace

    p = tmp_path / "t.csv"
    p.write_bytes(raw)
    with pytest.raises(TraceError) as e:
        list(read_trace(str(p)))
    assert e.value.line == line and words in str(e.value)
