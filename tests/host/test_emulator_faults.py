"""Fault spec grammar, seeded decisions, and what corruption does to a frame."""
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.crc import crc16
from host_tools.emulator.faults import (
    CORRUPT,
    EXCEPTION,
    TIMEOUT,
    FaultSpecError,
    corrupt_reply,
    parse_duration_ms,
    parse_faults,
)


def test_full_grammar():
    p = parse_faults(
        "timeout=0.1,timeout=20m@6h,crc=0.05,exception=0.02:6,rollover=300,replace=12h,"
        "replace=13h:77,sf=1d:1,wsf=90m:-1,jump=3h:+1h,jump=2h:-10m,seed=9"
    )
    assert p.timeout_p == 0.1 and p.timeout_windows == [(6 * 3600000, 20 * 60000)]
    assert p.corrupt_p == 0.05 and (p.exception_p, p.exception_code) == (0.02, 6)
    assert p.rollover == 300
    assert p.replace == [(12 * 3600000, 0), (13 * 3600000, 77)]
    assert p.sf == [(86400000, 1)] and p.wsf == [(5400000, -1)]
    assert p.jumps == [(2 * 3600000, -600000), (3 * 3600000, 3600000)]  # sorted by time
    assert p.seed == 9


def test_presets_and_empty():
    assert not parse_faults("").has_wire_faults()
    assert not parse_faults("none").has_wire_faults()
    std = parse_faults("standard")
    assert std.timeout_p > 0 and std.corrupt_p > 0 and std.exception_p > 0 and std.rollover
    assert parse_faults("standard,seed=4").seed == 4
    assert std.rollover_optional and not parse_faults("rollover=5").rollover_optional


@pytest.mark.parametrize(
    "bad",
    ["bogus=1", "timeout", "timeout=2", "crc=-0.1", "exception=0.1:12", "rollover=0", "rollover=4294967296",
     "sf=3h", "sf=3h:11", "jump=3h", "replace=-1h", "timeout=5x@1h", "seed=x"],
)
def test_bad_specs_name_the_problem(bad):
    with pytest.raises(FaultSpecError):
        parse_faults(bad)


def test_durations():
    assert parse_duration_ms("90") == 90000
    assert parse_duration_ms("250ms") == 250
    assert parse_duration_ms("1.5h") == 5400000
    assert parse_duration_ms("-10m", signed=True) == -600000
    with pytest.raises(FaultSpecError):
        parse_duration_ms("-10m")


def test_decisions_are_seeded_and_follow_the_probabilities():
    def run(seed):
        p = parse_faults("timeout=0.1,crc=0.1,exception=0.1:6,seed=%d" % seed)
        return [p.decide(t * 1000, 0) for t in range(4000)], p.counts

    a, counts = run(3)
    assert a == run(3)[0]
    assert a != run(4)[0]
    n = len(a)
    assert abs(a.count(TIMEOUT) / n - 0.1) < 0.03
    assert abs(a.count((EXCEPTION, 6)) / n - 0.09) < 0.03  # 0.9 * 0.1
    assert abs(a.count(CORRUPT) / n - 0.081) < 0.03  # 0.9 * 0.9 * 0.1
    assert counts == {"timeout": a.count(TIMEOUT), "exception": a.count((EXCEPTION, 6)), "corrupt": a.count(CORRUPT)}


def test_outage_window_is_total_and_relative_to_origin():
    p = parse_faults("timeout=10m@1h")
    origin = 5_000_000
    assert p.decide(origin + 3600000 - 1, origin) is None
    assert all(p.decide(origin + 3600000 + k * 1000, origin) == TIMEOUT for k in range(600))
    assert p.decide(origin + 4200000, origin) is None


def _rtu_reply(words):
    body = bytes([1, 3, 2 * len(words)]) + b"".join(struct.pack(">H", w) for w in words)
    c = crc16(body, 0, len(body))
    return body + bytes([c & 0xFF, c >> 8])


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=20), st.integers(0, 2**32))
def test_rtu_corruption_breaks_the_crc_only(words, seed):
    good = _rtu_reply(words)
    bad = corrupt_reply(good, "rtu", random.Random(seed))
    assert len(bad) == len(good) and bad[:-2] == good[:-2]
    c = crc16(bad, 0, len(bad) - 2)
    assert bytes([c & 0xFF, c >> 8]) != bad[-2:]


@given(st.integers(0, 0xFFFF), st.integers(0, 2**32))
def test_tcp_garbling_breaks_the_mbap_protocol_id(tid, seed):
    good = struct.pack(">HHHBBBH", tid, 0, 5, 1, 3, 2, 1234)
    bad = corrupt_reply(good, "tcp", random.Random(seed))
    assert bad[:2] == good[:2] and bad[4:] == good[4:]
    assert struct.unpack(">H", bad[2:4])[0] != 0
