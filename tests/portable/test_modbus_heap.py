"""The per-poll path allocates nothing: request -> feed reply -> parse -> regmap.decode.

On MicroPython the steady-state loop runs under heap_lock(): any allocation raises
MemoryError. Everything (buffers, reply chunks as memoryviews, the reading) is made
before the lock, as the agent does at start-up. The decoded values are checked on both
runtimes; the allocation tests are MicroPython's alone (SKIPPED on CPython, where
heap_lock() is a no-op).
"""
# Heap for compiling this test module from source; the edge modules alone need far less.
# mp-heap: 96K
import json

from edge.compat import heap_lock, heap_unlock
from edge.modbus_pdu import REPLY, step
from edge.modbus_rtu import RtuClient
from edge.modbus_tcp import TcpClient
from edge.reading import R_EXP_HI, R_EXP_LO, R_IMP_HI, R_IMP_LO, R_POWER, new_reading
from edge.regmap import compile_map, decode
from runtime import micropython_only
from test_modbus_vectors import mbap_reply, rtu_reply


def load(name):
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    with open(here + "/../../hw/maps/" + name + ".json") as f:
        return compile_map(json.loads(f.read()))


def meter_words(m):
    w = [0] * m.count
    w[0] = 203
    w[1] = 105
    w[18] = 0xFB2E  # W = -1234
    w[22] = 0  # W_SF
    w[38] = 0x0001  # TotWhExp hi
    w[39] = 0x2345
    w[46] = 0xFEDC  # TotWhImp hi
    w[47] = 0xBA98
    w[54] = 0xFFFF  # TotWh_SF = -1
    return w


def sdm_words(m):
    w = [0] * m.count
    w[0], w[1] = 0xC50F, 0xC800  # -2300.5 W
    w[20], w[21] = 0x449A, 0x5225  # 1234.567 kWh import
    w[22], w[23] = 0x3A03, 0x126F  # 0.0005 kWh export
    return w


def run_locked(loop, ctx):
    """Run loop(ctx) under heap_lock(); returns (result, MemoryError or None).

    One positional argument on purpose: a call with *args builds a tuple (allocates)."""
    err = None
    res = None
    heap_lock()
    try:
        res = loop(ctx)
    except MemoryError as e:
        err = e
    heap_unlock()
    return res, err


def rtu_polls(ctx):
    client, req, m, words, reading, chunk1, chunk2, rounds = ctx
    ok = 0
    t = 0
    for _ in range(rounds):
        client.request(req, 1, m.function, m.start, m.count, words, 0, t)
        step(client, chunk1, t + 1)
        if step(client, chunk2, t + 2) == REPLY:
            ok += decode(m, words, 0, reading)
        t += 100
    return ok


def tcp_polls(ctx):
    client, req, m, words, reading, frames, rounds = ctx
    ok = 0
    for i in range(rounds):
        client.request(req, 1, m.function, m.start, m.count, words, 0, i)
        if step(client, frames[i], i) == REPLY:
            ok += decode(m, words, 0, reading)
    return ok


def check_rtu(mapname, make_words, expect_bits):
    m = load(mapname)
    frame = rtu_reply(1, m.function, make_words(m))
    mv = memoryview(frame)
    chunk1 = mv[:9]
    chunk2 = mv[9:]
    client = RtuClient(5, 1000)
    req = bytearray(8)
    words = [0] * m.count
    reading = new_reading()
    rounds = 5
    rtu_polls((client, req, m, words, reading, chunk1, chunk2, 1))  # warm-up outside the lock
    res, err = run_locked(rtu_polls, (client, req, m, words, reading, chunk1, chunk2, rounds))
    assert err is None, "allocation on the poll path: %r" % (err,)
    assert res == expect_bits * rounds
    return reading


def test_rtu_poll_path_meter_203_decodes():
    r = check_rtu("sunspec_meter_203", meter_words, 7)
    assert r[R_POWER] == -1234
    assert (r[R_IMP_HI], r[R_IMP_LO]) == (0xFEDC, 0xBA98)


def test_rtu_poll_path_meter_203_allocates_nothing():
    micropython_only()
    check_rtu("sunspec_meter_203", meter_words, 7)


def test_rtu_poll_path_sdm630_float_decodes():
    r = check_rtu("eastron_sdm630", sdm_words, 7)
    assert r[R_POWER] == -2301
    assert (r[R_IMP_HI] << 16) | r[R_IMP_LO] == 1234567
    assert (r[R_EXP_HI], r[R_EXP_LO]) == (0, 1)


def test_rtu_poll_path_sdm630_float_allocates_nothing():
    micropython_only()
    check_rtu("eastron_sdm630", sdm_words, 7)


def test_tcp_poll_path_decodes():
    check_tcp()


def test_tcp_poll_path_allocates_nothing():
    micropython_only()
    check_tcp()


def check_tcp():
    m = load("sunspec_meter_203")
    words_img = meter_words(m)
    rounds = 4
    client = TcpClient(1000, first_tid=1)
    # tids the client will use: 1 (warm-up), then 2..rounds+1
    frames = [mbap_reply(t, 1, 3, words_img) for t in range(1, rounds + 2)]
    req = bytearray(12)
    words = [0] * m.count
    reading = new_reading()
    tcp_polls((client, req, m, words, reading, frames, 1))
    res, err = run_locked(tcp_polls, (client, req, m, words, reading, frames[1:], rounds))
    assert err is None, "allocation on the poll path: %r" % (err,)
    assert res == 7 * rounds


def test_heap_lock_is_real_here():
    micropython_only()
    res, err = run_locked(bytearray, 16)
    assert res is None
    assert err is not None
