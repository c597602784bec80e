"""Benchmarks: CRC-16 (table vs the bit-loop baseline) and RTU reply parse.

`pytest tests/bench/test_bench_modbus.py --benchmark-enable` measures; the suite runs them
once with benchmarks disabled, where the asserts still check the results.
"""
from edge.crc import crc16, crc16_bitwise
from edge.modbus_pdu import REPLY
from edge.modbus_rtu import RtuClient
from edge.reading import new_reading
from edge.regmap import compile_map, decode

REQ8 = bytes([0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0B])


def reply(unit, fn, words):
    b = bytearray([unit, fn, 2 * len(words)])
    for w in words:
        b += bytes([w >> 8, w & 0xFF])
    c = crc16_bitwise(b, 0, len(b))
    return bytes(b + bytes([c & 0xFF, c >> 8]))


REPLY40 = reply(1, 3, [(i * 2654435761) & 0xFFFF for i in range(40)])
TWO_REPLIES = REPLY40 + REPLY40  # "2x40-register reply": 2 * 85 bytes


def test_bench_crc_8_bytes_table(benchmark):
    assert benchmark(crc16, REQ8, 0, 6) == 0x0BC4


def test_bench_crc_8_bytes_bitwise_baseline(benchmark):
    assert benchmark(crc16_bitwise, REQ8, 0, 6) == 0x0BC4


def test_bench_crc_2x40_registers_table(benchmark):
    n = len(TWO_REPLIES)
    assert benchmark(crc16, TWO_REPLIES, 0, n) == crc16_bitwise(TWO_REPLIES, 0, n)


def test_bench_crc_2x40_registers_bitwise_baseline(benchmark):
    n = len(TWO_REPLIES)
    assert benchmark(crc16_bitwise, TWO_REPLIES, 0, n) == crc16(TWO_REPLIES, 0, n)


def test_bench_rtu_reply_parse_40_registers(benchmark):
    c = RtuClient(5, 1000)
    req = bytearray(8)
    words = [0] * 40

    def poll():
        c.request(req, 1, 3, 0, 40, words, 0, 0)
        return c.feed(REPLY40, 1)

    assert benchmark(poll) == REPLY
    assert words[1] == 2654435761 & 0xFFFF


def test_bench_rtu_poll_parse_and_decode_meter_203(benchmark):
    m = compile_map({"name": "m", "function": 3, "start": 0, "count": 55, "quantities": {
        "power": {"addr": 18, "type": "int16", "sf_addr": 22},
        "export": {"addr": 38, "type": "acc32", "sf_addr": 54},
        "import": {"addr": 46, "type": "acc32", "sf_addr": 54}}})
    img = [0] * 55
    img[18], img[38], img[39], img[46], img[47] = 500, 1, 2, 3, 4
    frame = reply(1, 3, img)
    c = RtuClient(5, 1000)
    req = bytearray(8)
    words = [0] * 55
    r = new_reading()

    def poll():
        c.request(req, 1, 3, 0, 55, words, 0, 0)
        c.feed(frame, 1)
        return decode(m, words, 0, r)

    assert benchmark(poll) == 7
