"""Hypothesis: the decoders let only ModbusError escape, resynchronise after garbage, agree
with pymodbus's own framers, and keep every intermediate inside 31-bit small ints."""
import random
import struct
import sys
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
)

from edge import modbus_pdu, modbus_rtu, modbus_tcp, regmap
from edge.crc import crc16
from edge.modbus_pdu import REPLY, ModbusError, elapsed_ms
from edge.modbus_rtu import RtuClient
from edge.modbus_tcp import TcpClient
from edge.reading import R_EXP_EXP, R_EXP_HI, R_EXP_LO, R_POWER, R_POWER_EXP, new_reading

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
words_st = st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125)
chunks_st = st.lists(st.tuples(st.binary(max_size=80), st.integers(0, 50)), max_size=12)
REQ = {3: ReadHoldingRegistersRequest, 4: ReadInputRegistersRequest}
RESP = {3: ReadHoldingRegistersResponse, 4: ReadInputRegistersResponse}


def rtu_frame(unit, fn, words):
    return FramerRTU(DecodePDU(False)).buildFrame(RESP[fn](registers=list(words), dev_id=unit))


@FAST
@given(unit=st.integers(0, 255), fn=st.sampled_from([3, 4]), addr=st.integers(0, 0xFFFF - 125), count=st.integers(1, 125))
def test_requests_equal_pymodbus_framers(unit, fn, addr, count):
    req = bytearray(8)
    RtuClient(5, 100).request(req, unit, fn, addr, count, [0] * count, 0, 0)
    assert bytes(req) == FramerRTU(DecodePDU(False)).buildFrame(REQ[fn](address=addr, count=count, dev_id=unit))
    c = TcpClient(100, first_tid=0)
    req = bytearray(12)
    c.request(req, unit, fn, addr, count, [0] * count, 0, 0)
    pdu = REQ[fn](address=addr, count=count, dev_id=unit)
    pdu.transaction_id = c.tid
    assert bytes(req) == FramerSocket(DecodePDU(False)).buildFrame(pdu)


@FAST
@given(unit=st.integers(1, 247), fn=st.sampled_from([3, 4]), words=words_st, cuts=st.lists(st.integers(0, 260), max_size=6))
def test_pymodbus_replies_decode_in_any_split(unit, fn, words, cuts):
    frame = rtu_frame(unit, fn, words)
    c = RtuClient(5, 1000)
    out = [0] * len(words)
    c.request(bytearray(8), unit, fn, 0, len(words), out, 0, 0)
    pos = sorted(set(min(x, len(frame)) for x in cuts)) + [len(frame)]
    prev = 0
    ev = 0
    for p in pos:
        if p > prev:
            ev = c.feed(frame[prev:p], 0)
            prev = p
    assert ev == REPLY and out == words
    t = TcpClient(1000, first_tid=0)
    t.request(bytearray(12), unit, fn, 0, len(words), out, 0, 0)
    pdu = RESP[fn](registers=list(words), dev_id=unit)
    pdu.transaction_id = t.tid
    out[:] = [0] * len(words)
    assert t.feed(FramerSocket(DecodePDU(False)).buildFrame(pdu), 0) == REPLY and out == words


@FAST
@given(unit=st.integers(1, 247), fn=st.sampled_from([3, 4]), count=st.integers(1, 125), chunks=chunks_st, gap=st.integers(1, 10))
def test_rtu_fuzz_only_modbus_errors_escape(unit, fn, count, chunks, gap):
    c = RtuClient(gap, 200)
    out = [0] * count
    c.request(bytearray(8), unit, fn, 0, count, out, 0, 0)
    now = 0
    for data, dt in chunks:
        now += dt
        try:
            modbus_pdu.step(c, data, now)
        except ModbusError as e:
            assert isinstance(e.kind, str) and e.kind.startswith("modbus_")
            assert not c.busy()
            return
        if not c.busy():
            return
    try:
        c.check(now + 200)
    except ModbusError as e:
        assert e.kind in ("modbus_timeout", "modbus_garbled", "modbus_short", "modbus_crc")
    assert not c.busy()


@FAST
@given(count=st.integers(1, 125), chunks=chunks_st, tid=st.integers(0, 0xFFFF))
def test_tcp_fuzz_only_modbus_errors_escape(count, chunks, tid):
    c = TcpClient(200, first_tid=tid)
    c.request(bytearray(12), 1, 3, 0, count, [0] * count, 0, 0)
    now = 0
    for data, dt in chunks:
        now += dt
        try:
            modbus_pdu.step(c, data, now)
        except ModbusError as e:
            assert e.kind.startswith("modbus_")
            return
        if not c.busy():
            return


@FAST
@given(unit=st.integers(1, 247), words=words_st, garbage=st.binary(max_size=300))
def test_rtu_resyncs_after_garbage_without_the_unit_byte(unit, words, garbage):
    garbage = bytes(b for b in garbage if b != unit)
    c = RtuClient(5, 1000)
    out = [0] * len(words)
    c.request(bytearray(8), unit, 3, 0, len(words), out, 0, 0)
    assert c.feed(garbage + rtu_frame(unit, 3, words), 0) == REPLY
    assert out == words and c.dropped == len(garbage)


@FAST
@given(unit=st.integers(1, 247), words=words_st, garbage=st.binary(max_size=300))
def test_rtu_garbage_with_unit_bytes_reply_or_typed_error(unit, words, garbage):
    c = RtuClient(5, 1000)
    out = [0] * len(words)
    c.request(bytearray(8), unit, 3, 0, len(words), out, 0, 0)
    try:
        ev = c.feed(garbage + rtu_frame(unit, 3, words), 0)
    except ModbusError:
        return  # a pseudo-frame inside the garbage that happens to carry a good CRC
    assert ev == REPLY
    if out != words:  # only a CRC-valid pseudo-frame of the right length can do that
        assert len(garbage) >= 5


@FAST
@given(unit=st.integers(1, 247), words=words_st, stale_len=st.integers(1, 40), gap=st.integers(1, 10))
def test_stale_partial_never_glued(unit, words, stale_len, gap):
    old = rtu_frame(unit, 3, [(w ^ 0x5A5A) for w in words])[: min(stale_len, 4 + 2 * len(words))]
    c = RtuClient(gap, 10000)
    out = [0] * len(words)
    c.request(bytearray(8), unit, 3, 0, len(words), out, 0, 0)
    c.feed(old, 0)
    assert c.feed(rtu_frame(unit, 3, words), gap + 1) == REPLY
    assert out == words


# --- float32 decoding against an exact Fraction reference ------------------------------


def _half_up(x):
    """round |x| half up (x >= 0 Fraction) -> int"""
    return int(x + Fraction(1, 2))


def reference_float(bits, mult, limit):
    hi, lo = bits >> 16, bits & 0xFFFF
    e = (hi >> 7) & 0xFF
    if e == 0xFF:
        return None
    m = ((hi & 0x7F) << 16) | lo
    s = -149 if e == 0 else e - 150
    if e:
        m |= 0x800000
    if s > 16 or (s > 0 and (m * mult) >> (48 - s)):
        return None
    v = Fraction(m * mult) * (Fraction(2) ** s)
    n = _half_up(v)
    bump = 0
    while n >= limit:
        n = _half_up(Fraction(n, 10))
        bump += 1
    return n, bump, bool(hi & 0x8000)


@settings(max_examples=800, deadline=None)
@given(bits=st.integers(0, 0xFFFFFFFF), mult=st.sampled_from([1, 10, 100, 1000, 10000]))
def test_float32_decode_matches_exact_reference(bits, mult):
    hi, lo = bits >> 16, bits & 0xFFFF
    ref_e = reference_float(bits, mult, 1 << 32)
    bump = regmap._float(hi, lo, mult, 0x10000)
    if ref_e is None:
        assert bump == -1
    else:
        n, rb, _ = ref_e
        assert bump == rb and (regmap._LIMB[1] << 16) | regmap._LIMB[0] == n and regmap._LIMB[2] == 0
        value = struct.unpack(">f", struct.pack(">I", bits))[0]
        assert abs(n * 10**rb - abs(value) * mult) <= 10**rb  # sanity against the float itself
    ref_p = reference_float(bits, mult, 1 << 30)
    bump = regmap._float(hi, lo, mult, 0x4000)
    if ref_p is None:
        assert bump == -1
    else:
        assert bump == ref_p[1] and (regmap._LIMB[1] << 16) | regmap._LIMB[0] == ref_p[0]


@FAST
@given(bits=st.integers(0, 0xFFFFFFFF), ebits=st.integers(0, 0xFFFFFFFF))
def test_float_map_reading_sign_and_presence(bits, ebits):
    m = regmap.compile_map({"name": "f", "function": 4, "start": 0, "count": 4, "quantities": {
        "power": {"addr": 0, "type": "float32", "sign": -1},
        "export": {"addr": 2, "type": "float32", "unit_exp": 3}}})
    r = new_reading()
    present = regmap.decode(m, [bits >> 16, bits & 0xFFFF, ebits >> 16, ebits & 0xFFFF], 0, r)
    p = reference_float(bits, 1, 1 << 30)
    assert bool(present & 1) == (p is not None)
    if p is not None:
        assert r[R_POWER] == (p[0] if p[2] else -p[0]) and r[R_POWER_EXP] == p[1]
    e = reference_float(ebits, 1000, 1 << 32)
    ok = e is not None and (not e[2] or e[0] == 0)
    assert bool(present & 4) == ok
    if ok:
        assert (r[R_EXP_HI] << 16) | r[R_EXP_LO] == e[0] and r[R_EXP_EXP] == e[1]


# --- every intermediate inside the 31-bit small-int range --------------------------------

SMALL_MIN, SMALL_MAX = -(1 << 30), (1 << 30) - 1
WATCHED = {f.__code__ for f in (regmap._float, regmap.decode, regmap._sf, crc16, elapsed_ms,
                                RtuClient.feed, RtuClient._hunt, RtuClient.check, RtuClient._accept,
                                TcpClient.feed, modbus_pdu.parse_read_pdu, modbus_pdu.put_read_pdu,
                                modbus_rtu.build_read, modbus_tcp.build_read)}


def _run_traced(fn):
    worst = [0, 0]

    def local_tracer(frame, event, arg):
        for v in frame.f_locals.values():
            if type(v) is int:
                worst[0] = min(worst[0], v)
                worst[1] = max(worst[1], v)
        return local_tracer

    def tracer(frame, event, arg):
        return local_tracer if frame.f_code in WATCHED else None

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return worst


def test_hot_path_stays_inside_31_bit_small_ints():
    rnd = random.Random(2026)
    edge_floats = [0x7F7FFFFF, 0xFF7FFFFF, 0x00000001, 0x807FFFFF, 0x4B7FFFFF, 0x4F7FFFFF, 0x5F7FFFFF,
                   0x449A5225, 0x3F000000, 0x3EFFFFFF, 0x477FFFFF, 0x4B18967F]
    maps = {
        "f": regmap.compile_map({"name": "f", "function": 4, "start": 0, "count": 6, "quantities": {
            "power": {"addr": 0, "type": "float32", "unit_exp": 4},
            "import": {"addr": 2, "type": "float32", "unit_exp": 3, "exp": -1},
            "export": {"addr": 4, "type": "float32", "unit_exp": 4}}}),
        "i": regmap.compile_map({"name": "i", "function": 3, "start": 0, "count": 6, "quantities": {
            "power": {"addr": 0, "type": "int32", "sign": -1},
            "import": {"addr": 2, "type": "acc32", "sf_addr": 5},
            "export": {"addr": 3, "type": "uint32", "exp": 10}}}),
    }

    def body():
        r = new_reading()
        for k in range(400):
            bits = edge_floats[k] if k < len(edge_floats) else rnd.getrandbits(32)
            w = [bits >> 16, bits & 0xFFFF, rnd.getrandbits(16), rnd.getrandbits(16), 0xFFFF, 0x8000 if k & 1 else 0xFFF6]
            try:
                regmap.decode(maps["f"], w, 0, r)
                regmap.decode(maps["i"], w, 0, r)
            except regmap.RegmapError:
                pass
        for unit, fn, count in ((1, 3, 125), (247, 4, 1), (255, 3, 60)):
            c = RtuClient(5, 1000)
            out = [0] * count
            t0 = (1 << 30) - 2  # ticks about to wrap
            c.request(bytearray(8), unit, fn, 0xFFFF - count + 1, count, out, 0, t0)
            frame = rtu_frame(unit, fn, [0xFFFF] * count)
            c.feed(bytes([unit, fn | 0x80]) + frame[:3], t0)
            assert c.feed(frame[3:], 1) == REPLY  # wrapped tick, 3 ms later
            c.check(5)
            tc = TcpClient(1000, first_tid=0xFFFF)
            tc.request(bytearray(12), unit, fn, 0, count, out, 0, t0)
            pdu = RESP[fn](registers=[0xFFFF] * count, dev_id=unit)
            pdu.transaction_id = tc.tid
            assert tc.feed(FramerSocket(DecodePDU(False)).buildFrame(pdu), 2) == REPLY

    lo, hi = _run_traced(body)
    assert SMALL_MIN <= lo and hi <= SMALL_MAX, (lo, hi)
    assert hi > 0xFFFF  # the trace really saw the big intermediates (float limbs, ticks)
