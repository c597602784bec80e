"""RTU framing: request bytes, reply hunting, resync after garbage, stale partials, typed errors."""
# Heap for compiling this test module from source; the edge modules alone need far less.
# mp-heap: 64K
from edge.modbus_pdu import NEED_DATA, REPLY, ModbusError, step
from edge.modbus_rtu import RtuClient, build_read, gap_ms_for_baud
from test_modbus_vectors import rtu, rtu_reply

WORDS = [0x1234, 0x0000, 0xFFFF, 0x8000]


def armed(unit=1, fn=3, count=4, gap=5, timeout=1000):
    c = RtuClient(gap, timeout)
    req = bytearray(8)
    out = [0] * 8
    n = c.request(req, unit, fn, 0, count, out, 2, 0)
    return c, req, n, out


def raises(kind, fn, *args):
    """Call fn(*args), which must raise a ModbusError of this kind; returns it."""
    try:
        fn(*args)
    except ModbusError as e:
        assert e.kind == kind, (e.kind, kind, str(e))
        return e
    raise AssertionError("expected " + kind)


def test_request_golden_bytes():
    buf = bytearray(8)
    assert build_read(buf, 1, 3, 0, 2) == 8
    assert bytes(buf) == bytes([0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0B])


def test_request_input_registers_high_address():
    c = RtuClient(5, 100)
    buf = bytearray(8)
    c.request(buf, 0x11, 4, 0x9C40, 125, [0] * 125, 0, 0)
    assert bytes(buf[:6]) == bytes([0x11, 0x04, 0x9C, 0x40, 0x00, 0x7D])
    assert bytes(buf) == rtu(buf[:6])


def test_request_arguments_are_checked():
    c = RtuClient(5, 100)
    buf = bytearray(8)
    for unit, fn, addr, count in ((1, 6, 0, 1), (256, 3, 0, 1), (1, 3, 0, 0), (1, 3, 0, 126), (1, 3, 65535, 2), (1, 3, -1, 1)):
        e = raises("modbus_request", c.request, buf, unit, fn, addr, count, [0] * 130, 0, 0)
        assert e.kind == "modbus_request"


def test_whole_reply_lands_at_the_word_offset():
    c, _, _, out = armed()
    assert c.feed(rtu_reply(1, 3, WORDS), 3) == REPLY
    assert out == [0, 0] + WORDS + [0, 0]
    assert not c.busy()


def test_reply_byte_by_byte():
    c, _, _, out = armed()
    frame = rtu_reply(1, 3, WORDS)
    for i in range(len(frame) - 1):
        assert c.feed(frame[i : i + 1], i) == NEED_DATA
    assert c.feed(frame[-1:], len(frame)) == REPLY
    assert out[2:6] == WORDS


def test_feed_length_argument_uses_only_the_prefix():
    c, _, _, out = armed()
    frame = rtu_reply(1, 3, WORDS)
    buf = bytearray(64)
    buf[: len(frame)] = frame
    assert c.feed(buf, 0, 5) == NEED_DATA
    rest = bytearray(buf[5 : len(frame)]) + bytearray(30)
    assert c.feed(rest, 1, len(frame) - 5) == REPLY
    assert out[2:6] == WORDS


def test_garbage_before_reply_is_skipped():
    c, _, _, out = armed()
    junk = bytes([0x00, 0xFF, 0x01, 0x07, 0x55, 0x01])
    assert c.feed(junk, 0) == NEED_DATA
    assert c.feed(rtu_reply(1, 3, WORDS), 1) == REPLY
    assert out[2:6] == WORDS
    assert c.dropped == len(junk)


def test_reply_from_another_unit_is_skipped_as_garbage():
    c, _, _, out = armed()
    other = rtu_reply(2, 3, [9, 9, 9, 9])
    assert c.feed(other + rtu_reply(1, 3, WORDS), 0) == REPLY
    assert out[2:6] == WORDS


def test_crc_bad_reply_is_a_typed_error_and_ends_the_transaction():
    c, _, _, _ = armed()
    bad = bytearray(rtu_reply(1, 3, WORDS))
    bad[4] ^= 0x40
    e = raises("modbus_crc", c.feed, bytes(bad), 0)
    assert e.kind == "modbus_crc"
    assert not c.busy()
    assert c.feed(rtu_reply(1, 3, WORDS), 1) == NEED_DATA  # no request outstanding
    assert c.ignored > 0


def test_crc_bad_candidate_then_good_frame_in_one_chunk_resyncs():
    c, _, _, out = armed()
    bad = bytearray(rtu_reply(1, 3, WORDS))
    bad[-1] ^= 1
    assert c.feed(bytes(bad) + rtu_reply(1, 3, WORDS), 0) == REPLY
    assert out[2:6] == WORDS


def test_crc_bad_with_a_later_candidate_pending_waits_then_names_crc():
    c, _, _, _ = armed(timeout=50)
    bad = bytearray(rtu_reply(1, 3, WORDS))
    bad[-1] ^= 1
    assert c.feed(bytes(bad) + bytes([1, 3]), 0) == NEED_DATA
    assert raises("modbus_crc", c.check, 50).kind == "modbus_crc"


def test_exception_reply_names_the_code():
    c, _, _, _ = armed(fn=4)
    e = raises("modbus_exception", c.feed, rtu(bytes([1, 0x84, 0x02])), 0)
    assert e.code == 2 and e.function == 4
    assert e.kind == "modbus_exception"
    assert "0x02" in str(e) and "illegal data address" in str(e)


def test_exception_code_unknown_is_still_typed():
    c, _, _, _ = armed()
    e = raises("modbus_exception", c.feed, rtu(bytes([1, 0x83, 0x7F])), 0)
    assert e.code == 0x7F and "unknown" in str(e)


def test_short_reply_with_good_crc():
    c, _, _, _ = armed(count=4)
    e = raises("modbus_short", c.feed, rtu_reply(1, 3, [1, 2]), 0)
    assert e.kind == "modbus_short"


def test_overlong_reply_with_good_crc():
    c, _, _, _ = armed(count=2)
    e = raises("modbus_overlong", c.feed, rtu_reply(1, 3, [1, 2, 3]), 0)
    assert e.kind == "modbus_overlong"


def test_truncated_reply_times_out_as_short():
    c, _, _, _ = armed(timeout=100)
    c.feed(rtu_reply(1, 3, WORDS)[:7], 0)
    c.check(99)
    assert raises("modbus_short", c.check, 100).kind == "modbus_short"


def test_silence_times_out():
    c, _, _, _ = armed(timeout=100)
    assert step(c, None, 50) == NEED_DATA
    assert step(c, b"", 99) == NEED_DATA
    e = raises("modbus_timeout", step, c, None, 100)
    assert e.kind == "modbus_timeout"
    assert not c.busy()
    c.check(10000)  # an idle client never raises


def test_only_garbage_times_out_as_garbled():
    c, _, _, _ = armed(timeout=100)
    c.feed(bytes([0x55, 0xAA, 0x00, 0x42]), 0)
    assert raises("modbus_garbled", c.check, 100).kind == "modbus_garbled"


def test_stale_partial_is_dropped_not_glued_onto_the_next_frame():
    # pymodbus tracker lesson: the first 5 bytes of an earlier frame must not be taken
    # as the start of the reply that arrives after a silence.
    c, _, _, out = armed(gap=5)
    good = rtu_reply(1, 3, WORDS)
    assert c.feed(rtu_reply(1, 3, [7, 7, 7, 7])[:5], 0) == NEED_DATA
    assert c.feed(good, 6) == REPLY
    assert out[2:6] == WORDS
    assert c.stale == 1


def test_partial_within_the_gap_is_kept():
    c, _, _, out = armed(gap=5)
    good = rtu_reply(1, 3, WORDS)
    c.feed(good[:5], 0)
    assert c.feed(good[5:], 5) == REPLY
    assert c.stale == 0
    assert out[2:6] == WORDS


def test_stale_tail_with_nothing_after_reports_short_at_deadline():
    c, _, _, _ = armed(gap=5, timeout=100)
    c.feed(rtu_reply(1, 3, WORDS)[:6], 0)
    c.feed(bytes([0x42]), 20)  # new byte after silence drops the stale partial
    assert c.stale == 1
    assert raises("modbus_short", c.check, 100).kind == "modbus_short"


def test_ticks_wrap_at_2_pow_30():
    top = (1 << 30) - 3
    c = RtuClient(5, 100)
    out = [0] * 4
    c.request(bytearray(8), 1, 3, 0, 4, out, 0, top)
    c.check(top + 50 - (1 << 30))  # wrapped tick: 50 ms later
    assert raises("modbus_timeout", c.check, top + 100 - (1 << 30)).kind == "modbus_timeout"


def test_buffer_overflow_of_garbage_keeps_hunting():
    c, _, _, out = armed()
    junk = bytes([0x55]) * 700
    assert c.feed(junk + rtu_reply(1, 3, WORDS), 0) == REPLY
    assert out[2:6] == WORDS
    assert c.dropped == 700


def test_max_size_reply_125_registers():
    c = RtuClient(5, 100)
    out = [0] * 125
    c.request(bytearray(8), 9, 4, 0, 125, out, 0, 0)
    words = [(i * 517) & 0xFFFF for i in range(125)]
    assert c.feed(rtu_reply(9, 4, words), 0) == REPLY
    assert out == words


def test_gap_for_baud():
    assert gap_ms_for_baud(9600) == 5  # 3.5 * 11 bits / 9600 = 4.01 ms, rounded up
    assert gap_ms_for_baud(19200) == 3
    assert gap_ms_for_baud(115200) == 2
    assert gap_ms_for_baud(1200) == 33


def test_next_request_resets_state():
    c, req, _, out = armed()
    c.feed(bytes([1, 3, 8]), 0)
    c.request(req, 1, 3, 0, 4, out, 2, 10)
    assert c.feed(rtu_reply(1, 3, WORDS), 11) == REPLY
    assert out[2:6] == WORDS
