"""MBAP framing: request bytes, transaction ids, split delivery, typed errors."""
# Heap for compiling this test module from source; the edge modules alone need far less.
# mp-heap: 48K
from edge.modbus_pdu import NEED_DATA, REPLY, ModbusError, step
from edge.modbus_tcp import TcpClient, build_read
from test_modbus_vectors import mbap_reply

WORDS = [0x0102, 0xFFFE, 0x8000]


def armed(unit=1, fn=3, count=3, timeout=1000):
    c = TcpClient(timeout, first_tid=0)
    req = bytearray(12)
    out = [0] * 3
    c.request(req, unit, fn, 40000, count, out, 0, 0)
    return c, req, out


def raises(kind, fn, *args):
    """Call fn(*args), which must raise a ModbusError of this kind; returns it."""
    try:
        fn(*args)
    except ModbusError as e:
        assert e.kind == kind, (e.kind, kind, str(e))
        return e
    raise AssertionError("expected " + kind)


def test_request_golden_bytes():
    buf = bytearray(12)
    assert build_read(buf, 0x0A0B, 1, 3, 0, 2) == 12
    # struct.pack('>HHHBBHH', tid, 0, 6, unit, 3, addr, count) (FIELD-NOTES)
    assert bytes(buf) == bytes([0x0A, 0x0B, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2])


def test_tids_count_up_and_wrap():
    c = TcpClient(100, first_tid=0xFFFE)
    req = bytearray(12)
    c.request(req, 1, 3, 0, 1, [0], 0, 0)
    assert c.tid == 0xFFFE and req[0] == 0xFF and req[1] == 0xFE
    c.request(req, 1, 3, 0, 1, [0], 0, 0)
    assert c.tid == 0xFFFF and req[0] == 0xFF and req[1] == 0xFF
    c.request(req, 1, 3, 0, 1, [0], 0, 0)
    assert c.tid == 0 and req[0] == 0 and req[1] == 0


def test_the_first_request_carries_first_tid():
    for first in (0, 1, 0x1234, 0xFFFF):
        c = TcpClient(100, first_tid=first)
        req = bytearray(12)
        c.request(req, 1, 3, 0, 1, [0], 0, 0)
        assert (req[0] << 8 | req[1]) == first and c.tid == first, first
    c = TcpClient(100)  # default: ids start at 1
    c.request(req, 1, 3, 0, 1, [0], 0, 0)
    assert (req[0] << 8 | req[1]) == 1


def test_reply_whole_and_split():
    c, req, out = armed()
    frame = mbap_reply(c.tid, 1, 3, WORDS)
    assert c.feed(frame, 0) == REPLY
    assert out == WORDS
    c.request(req, 1, 3, 40000, 3, out, 0, 0)
    frame = mbap_reply(c.tid, 1, 3, [1, 2, 3])
    for i in range(len(frame) - 1):
        assert c.feed(frame[i : i + 1], 0) == NEED_DATA
    assert c.feed(frame[-1:], 0) == REPLY
    assert out == [1, 2, 3]


def test_wrong_tid_is_typed():
    c, _, _ = armed()
    e = raises("modbus_tid", c.feed, mbap_reply(c.tid + 1, 1, 3, WORDS), 0)
    assert e.kind == "modbus_tid"
    assert not c.busy()


def test_wrong_unit_and_function():
    c, _, _ = armed()
    assert raises("modbus_unit", c.feed, mbap_reply(c.tid, 2, 3, WORDS), 0).kind == "modbus_unit"
    c, _, _ = armed()
    e = raises("modbus_function", c.feed, mbap_reply(c.tid, 1, 4, WORDS), 0)
    assert e.kind == "modbus_function"


def test_exception_reply():
    c, _, _ = armed(fn=3)
    frame = bytes([c.tid >> 8, c.tid & 0xFF, 0, 0, 0, 3, 1, 0x83, 0x04])
    e = raises("modbus_exception", c.feed, frame, 0)
    assert e.code == 4 and "server device failure" in str(e)


def test_bad_protocol_or_length_is_garbled():
    c, _, _ = armed()
    assert raises("modbus_garbled", c.feed, mbap_reply(c.tid, 1, 3, WORDS, proto=1), 0).kind == "modbus_garbled"
    c, _, _ = armed()
    assert raises("modbus_garbled", c.feed, bytes([0, c.tid, 0, 0, 0, 1, 1]), 0).kind == "modbus_garbled"
    c, _, _ = armed()
    frame = bytearray(mbap_reply(c.tid, 1, 3, WORDS))
    frame[8] = 4  # byte count says 2 registers, 3 are there
    assert raises("modbus_garbled", c.feed, bytes(frame), 0).kind == "modbus_garbled"


def test_short_reply_and_trailing_bytes():
    c, _, _ = armed(count=3)
    assert raises("modbus_short", c.feed, mbap_reply(c.tid, 1, 3, [1, 2]), 0).kind == "modbus_short"
    c, _, _ = armed()
    e = raises("modbus_garbled", c.feed, mbap_reply(c.tid, 1, 3, WORDS) + b"\x00", 0)
    assert e.kind == "modbus_garbled"


def test_flood_is_garbled_not_a_crash():
    c, _, _ = armed()
    assert raises("modbus_garbled", c.feed, bytes(300), 0).kind == "modbus_garbled"


def test_deadline():
    c, _, _ = armed(timeout=100)
    assert step(c, None, 99) == NEED_DATA
    assert raises("modbus_timeout", step, c, None, 100).kind == "modbus_timeout"
    c, _, _ = armed(timeout=100)
    c.feed(mbap_reply(c.tid, 1, 3, WORDS)[:9], 0)
    assert raises("modbus_short", c.check, 100).kind == "modbus_short"


def test_step_delivers_reply():
    c, _, out = armed()
    assert step(c, mbap_reply(c.tid, 1, 3, WORDS), 5) == REPLY
    assert out == WORDS
