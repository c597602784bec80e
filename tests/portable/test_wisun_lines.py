"""Wi-SUN line decoder (edge/wisun_lines.py) on its own: bytes in, parsed module lines out."""
# mp-heap: 160K
from edge.wisun_lines import (
    LN_EAPPVER, LN_ERXUDP, LN_EVENT, LN_EVER, LN_FAIL, LN_OK, LN_PANA, LineDecoder,
    event_tokens, hex_field,
)

ADDR = b"FE80:0000:0000:0000:021D:1290:1234:5678"
ME = b"FE80:0000:0000:0000:021D:1290:0000:0001"
LLA = b"001D129012345678"


class Rig:
    """A decoder whose handler records the lines and counts it gets."""

    def __init__(self, max_payload=64, fields=(9,), side=False, gap=200, binary=False):
        self.lines = []
        self.counts = {}
        self.d = LineDecoder(max_payload, list(fields), side, gap, self)
        self.d.binary = binary

    def module_line(self, kind, a, b, c, now_ms):
        if self.lines is not None:
            self.lines.append((kind, a, b, c))

    def count(self, name):
        self.counts[name] = self.counts.get(name, 0) + 1

    def feed(self, data, now_ms=0, chunk=0):
        if not chunk:
            self.d.feed(data, now_ms)
            return
        for i in range(0, len(data), chunk):
            self.d.feed(data[i:i + chunk], now_ms)


def erxudp(rport, lport, data, dlen=None, secured=b"1"):
    n = len(data) // 2 if dlen is None else dlen
    return (b"ERXUDP " + ADDR + b" " + ME + b" " + rport + b" " + lport + b" " + LLA + b" "
            + secured + b" " + (b"%04X" % n) + b" " + data)


STREAM = (
    b"OK\r\n" b"OK 01\r\n" b"FAIL ER10\r\n" b"EVER 1.2.10\r\n" b"EAPPVER rev26e\r\n"
    b"EVENT 25 " + ADDR + b"\r\n" b"EVENT 21 " + ADDR + b" 02\r\n" b"EVENT C0\r\n"
    + erxudp(b"0E1A", b"0E1A", b"0102") + b"\r\n" + erxudp(b"02CC", b"02CC", b"AB") + b"\r\n"
)
PARSED = [
    (LN_OK, -1, None, None), (LN_OK, 1, None, None), (LN_FAIL, 10, None, None),
    (LN_EVER, b"1.2.10", None, None), (LN_EAPPVER, b"rev26e", None, None),
    (LN_EVENT, 0x25, -1, None), (LN_EVENT, 0x21, 2, None), (LN_EVENT, 0xC0, -1, None),
    (LN_ERXUDP, b"\x01\x02", ADDR, 0x0E1A), (LN_PANA, None, None, None),
]


def test_each_line_kind_comes_out_parsed_whatever_the_chunking():
    for chunk in (0, 1, 2, 3, 7, 64):
        r = Rig()
        r.feed(STREAM, chunk=chunk)
        assert r.lines == PARSED, chunk
        assert r.counts == {}, chunk
        assert r.d.held() == 0


def test_cr_lf_and_crlf_all_end_a_line_and_empty_lines_are_skipped():
    r = Rig()
    r.feed(b"OK\rOK\nOK\r\n\r\n\n\rOK\r\n")
    assert r.lines == [(LN_OK, -1, None, None)] * 4 and r.counts == {}


def test_ok_with_an_argument_that_is_not_two_hex_digits():
    r = Rig()
    r.feed(b"OK 0\r\nOK ZZ\r\nOK 001\r\nOK FF\r\n")
    assert [x[1] for x in r.lines] == [-2, -2, -2, 255]


def test_fail_needs_two_digits_and_echoes_are_counted_apart():
    r = Rig()
    r.feed(b"FAIL ER1\r\nFAIL ERAB\r\nFAIL\r\nSKSREG SFE 0\r\nROPT\r\nWOPT 01\r\nXYZ\r\n")
    assert r.lines == []
    assert r.counts == {"unknown_lines": 4, "echo_lines": 3}


def test_event_shapes_follow_the_reference_and_others_are_garbled():
    assert event_tokens(0xC0, False) == 2 and event_tokens(0xC0, True) == 2
    assert event_tokens(0x21, False) == 4 and event_tokens(0x21, True) == 5
    assert event_tokens(0x25, False) == 3 and event_tokens(0x25, True) == 4
    assert event_tokens(0x45, False) == -1
    r = Rig()
    r.feed(b"EVENT 25\r\n"  # no sender
           b"EVENT 25 " + ADDR + b" 00\r\n"  # a parameter 25 does not have
           b"EVENT 21 " + ADDR + b" ZZ\r\n"  # parameter not hex
           b"EVENT 100 " + ADDR + b"\r\n"  # not one byte
           b"EVENT\r\n"
           b"EVENT 45 " + ADDR + b" 1 02\r\n")  # undocumented: any 3..5 tokens
    assert r.lines == [(LN_EVENT, 0x45, -1, None)]
    assert r.counts == {"garbled_lines": 4, "unknown_lines": 1}
    side = Rig(side=True)
    side.feed(b"EVENT 21 " + ADDR + b" 1 00\r\nEVENT 25 " + ADDR + b" 1\r\nEVENT 25 " + ADDR + b"\r\n")
    assert side.lines == [(LN_EVENT, 0x21, 0, None), (LN_EVENT, 0x25, -1, None)]
    assert side.counts == {"garbled_lines": 1}


def test_erxudp_field_counts_ports_and_data_are_checked():
    r = Rig(fields=(9,))
    r.feed(erxudp(b"0E1A", b"0E1A", b"ABC") + b"\r\n"  # odd hex
           + erxudp(b"0E1A", b"0E1A", b"ABCD", dlen=3) + b"\r\n"  # short of its length
           + erxudp(b"0E1A", b"0E1A", b"ZZ") + b"\r\n"  # not hex
           + erxudp(b"10E1A", b"0E1A", b"AB") + b"\r\n"  # port beyond 16 bits
           + b"ERXUDP " + ADDR + b" 0001 01\r\n"  # too few fields
           # 10 fields on a 9-field profile: parsed and counted
           + b"ERXUDP " + ADDR + b" " + ME + b" 1234 0E1A " + LLA + b" 1 0 0001 7F\r\n")
    assert r.lines == [(LN_ERXUDP, b"\x7f", ADDR, 0x1234)]
    assert r.counts == {"garbled_lines": 5, "erxudp_field_mismatch": 1}


def test_pana_on_either_port_is_its_own_kind():
    r = Rig()
    r.feed(erxudp(b"02CC", b"0E1A", b"00") + b"\r\n" + erxudp(b"0E1A", b"02CC", b"00") + b"\r\n")
    assert r.lines == [(LN_PANA, None, None, None)] * 2


def test_binary_erxudp_is_framed_by_its_length_and_may_hold_cr_lf():
    data = b"\r\nOK\r\n\x00 "
    line = (b"ERXUDP " + ADDR + b" " + ME + b" 0E1A 0E1A " + LLA + b" 1 %04X " % len(data)
            + data + b"\r\nOK\r\n")
    for chunk in (0, 1, 5):
        r = Rig(binary=True)
        r.feed(line, chunk=chunk)
        assert r.lines == [(LN_ERXUDP, data, ADDR, 0x0E1A), (LN_OK, -1, None, None)], chunk
        assert r.counts == {}


def test_an_overlong_line_is_dropped_to_its_end_and_the_buffer_stays_bounded():
    r = Rig(max_payload=16)  # lines longer than 2 * 16 + 256 bytes are dropped
    cap = len(r.d._buf)
    junk = b"X" * 1000
    for chunk in (0, 1, 33):
        r.lines = []
        r.counts = {}
        r.feed(junk + b"\r\nOK\r\n" + junk + b"\r\nOK\r\n", chunk=chunk)
        assert r.lines == [(LN_OK, -1, None, None)] * 2, chunk
        assert r.counts == {"overlong_lines": 2}, (chunk, r.counts)
        assert 0 <= r.d.held() <= cap


def test_a_partial_line_older_than_the_gap_is_dropped_not_glued():
    r = Rig(gap=200)
    r.feed(b"EVENT 25 " + ADDR[:10], now_ms=0)
    r.feed(b"OK\r\n", now_ms=201)
    assert r.lines == [(LN_OK, -1, None, None)]
    assert r.counts == {"stale_partials": 1}
    r.feed(b"O", now_ms=300)
    r.feed(b"K\r\n", now_ms=500)  # exactly the gap: still one line
    assert len(r.lines) == 2 and r.counts == {"stale_partials": 1}


def test_hex_field():
    assert hex_field(b"0E1A") == 0x0E1A and hex_field(b"zz") == -1 and hex_field(b"") == -1


def test_decoding_a_line_allocates_no_more_than_the_line_copy_and_its_fields():
    # Before the decoder had its module the driver allocated 576 bytes per ignored
    # `EVENT 02 <addr>` line on the unix port (the bytes copy, the split list and tokens,
    # the event tuple); the decoder alone must stay under that.
    from edge.compat import IS_MICROPYTHON
    if not IS_MICROPYTHON:
        return
    import gc
    r = Rig()
    line = b"EVENT 02 " + ADDR + b"\r\n"
    r.feed(line * 4)
    r.lines = None  # parsed, then dropped
    gc.collect()
    gc.disable()
    try:
        a0 = gc.mem_alloc()
        for _ in range(100):
            r.d.feed(line, 0)
        per_line = (gc.mem_alloc() - a0) // 100
    finally:
        gc.enable()
    assert per_line < 576, per_line
