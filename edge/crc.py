"""CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), table-driven.

One table lookup per byte instead of eight shift/xor rounds: the RTU decoder runs it over
every reply, so it is the hottest loop of a poll. The table is an array('H') built once at
import: 512 bytes on any board (a list would hold 256 object slots), and indexing it
returns a small int without allocating.
"""
from array import array

_TABLE = array("H", range(256))


def _build():
    for i in range(256):
        c = i
        for _ in range(8):
            if c & 1:
                c = (c >> 1) ^ 0xA001
            else:
                c >>= 1
        _TABLE[i] = c


_build()


def crc16(buf, start, end):
    """CRC-16/MODBUS of buf[start:end] (no slice is made). Sent on the wire low byte first."""
    t = _TABLE
    c = 0xFFFF
    for i in range(start, end):
        c = (c >> 8) ^ t[(c ^ buf[i]) & 0xFF]
    return c


def crc16_bitwise(buf, start, end):
    """The textbook bit loop: the reference the table is tested and benchmarked against."""
    c = 0xFFFF
    for i in range(start, end):
        c ^= buf[i]
        for _ in range(8):
            if c & 1:
                c = (c >> 1) ^ 0xA001
            else:
                c >>= 1
    return c
