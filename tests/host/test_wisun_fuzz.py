"""Property tests: no byte stream can make the Wi-SUN driver raise, and valid lines
separated by junk lines always get through, whatever the chunking.
"""
import sys

from hypothesis import given, settings, strategies as st

from conftest import PORTABLE_TESTS

sys.path.insert(0, PORTABLE_TESTS)

from wisun_script import (  # noqa: E402
    EV_UDP_RECEIVED, config, drain, erx, ev, joined, profile, run_init,
)
from edge.wisun import WisunDriver  # noqa: E402

LINES = st.sampled_from([
    b"OK", b"OK 01", b"OK 00", b"FAIL ER04", b"FAIL ER10", b"FAIL ER07", b"EVER 1.2.10",
    ev(0x21, 0)[:-2], ev(0x21, 1)[:-2], ev(0x25)[:-2], ev(0x24)[:-2], ev(0x29)[:-2],
    ev(0x32)[:-2], ev(0x33)[:-2], ev(0x27)[:-2], erx(9, "0102")[:-2], erx(11, "AB")[:-2],
    b"ERXUDP", b"EVENT", b"SKSENDTO 1",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=300), LINES.map(lambda b: b + b"\r\n")),
                max_size=40),
       st.integers(min_value=1, max_value=64), st.booleans())
def test_no_input_makes_the_driver_raise(parts, chunk, binary):
    prof = profile(max_payload=128)
    d = WisunDriver(prof, config(allow_wopt=not binary))
    run_init(d, replies=(b"OK\r\n", b"OK\r\n", b"OK\r\n", b"OK\r\n",
                         b"OK 00\r\n" if binary else b"OK 01\r\n"))
    stream = b"".join(parts)
    t = 0
    for i in range(0, len(stream), chunk):
        t += 37
        d.feed(stream[i:i + chunk], t)
        d.poll(t)
        assert 0 <= d._lines.held() <= len(d._lines._buf)
        while d.next_event() is not None:
            pass
        if d.can_send():
            d.send(b"x", i, t)


JUNK = st.binary(max_size=80).filter(lambda b: b"\r" not in b and b"\n" not in b)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(JUNK, st.binary(min_size=1, max_size=60)), min_size=1, max_size=12),
       st.integers(min_value=1, max_value=50))
def test_valid_receptions_survive_junk_lines_and_any_chunking(items, chunk):
    d, t = joined(profile(max_payload=128))
    stream = b""
    for junk, payload in items:
        stream += junk + b"\r\n" + erx(9, payload.hex().upper())
    for i in range(0, len(stream), chunk):
        d.feed(stream[i:i + chunk], t)
    got = [e[1] for e in drain(d) if e[0] == EV_UDP_RECEIVED]
    assert got == [p for _, p in items]
    assert d.counters["udp_received"] == len(items)
