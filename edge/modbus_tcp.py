"""Modbus TCP framing for a client: MBAP header (transaction id, protocol 0, length, unit).

TCP delivers a byte stream, so frames are cut by the MBAP length, not by silence. A
reply whose transaction id, protocol id or unit differs from the request is a typed error
that ends the transaction (the stream may be out of step; the caller reconnects or
retries); nothing here raises anything but ModbusError.
"""
from edge.compat import const
from edge.modbus_pdu import (
    ARMED,
    ERR_NONE,
    ERR_SHORT,
    IDLE,
    NEED_DATA,
    ModbusFrameError,
    ReadTransaction,
    elapsed_ms,
    parse_read_pdu,
    pending_error,
    put_read_pdu,
)

_CAP = const(260)  # 7-byte MBAP + 253-byte PDU (Modbus messaging on TCP/IP v1.0b, 4.1)
REQUEST_LEN = const(12)


def build_read(buf, tid, unit, function, address, count):
    """Write a 12-byte MBAP read request into buf; returns 12."""
    buf[0] = tid >> 8
    buf[1] = tid & 0xFF
    buf[2] = 0
    buf[3] = 0
    buf[4] = 0
    buf[5] = 6
    buf[6] = unit
    put_read_pdu(buf, 7, function, address, count)
    return REQUEST_LEN


class TcpClient(ReadTransaction):
    """One outstanding read at a time; the first request carries `first_tid`, each next one
    the following id, wrapping at 16 bits. `tid` is the id of the request last built."""

    def __init__(self, timeout_ms, first_tid=1):
        super().__init__(timeout_ms, _CAP)
        self._next_tid = first_tid & 0xFFFF
        self.tid = -1  # no request yet: no reply can match

    def request(self, out, unit, function, address, count, words, woff, now_ms):
        """Build the next request into `out` (>= 12 bytes) and arm the decoder; returns 12."""
        self._arm(unit, function, address, count, words, woff, now_ms)
        self.tid = self._next_tid
        self._next_tid = (self._next_tid + 1) & 0xFFFF
        return build_read(out, self.tid, unit, function, address, count)

    def feed(self, data, now_ms, n=-1):
        """Take bytes data[0:n] (all if n < 0); returns REPLY or NEED_DATA, raises ModbusError."""
        if n < 0:
            n = len(data)
        if self._state != ARMED:
            self.ignored += n
            return NEED_DATA
        self.received += n
        b = self._buf
        e = self._end
        if e + n > _CAP:
            self._state = IDLE
            raise ModbusFrameError("modbus_garbled", "more bytes than one MBAP frame can hold")
        for q in range(n):
            b[e + q] = data[q]
        e += n
        self._end = e
        if e < 7:
            return NEED_DATA
        ln = (b[4] << 8) | b[5]
        if b[2] != 0 or b[3] != 0 or ln < 3 or ln > 254:
            self._state = IDLE
            raise ModbusFrameError("modbus_garbled", "bad MBAP header (protocol %d, length %d)" % ((b[2] << 8) | b[3], ln))
        if e < 6 + ln:
            return NEED_DATA
        self._state = IDLE
        tid = (b[0] << 8) | b[1]
        if tid != self.tid:
            raise ModbusFrameError("modbus_tid", "reply transaction id %d, expected %d" % (tid, self.tid), tid)
        if b[6] != self._unit:
            raise ModbusFrameError("modbus_unit", "reply from unit %d, asked %d" % (b[6], self._unit), b[6])
        if e > 6 + ln:
            raise ModbusFrameError("modbus_garbled", "%d bytes after the MBAP frame" % (e - 6 - ln))
        return parse_read_pdu(b, 7, ln - 1, self._fn, self._count, self._words, self._woff)

    def check(self, now_ms):
        """Raise the transaction's typed error once its deadline has passed."""
        if self._state == ARMED and elapsed_ms(now_ms, self._t0) >= self.timeout_ms:
            self._state = IDLE
            raise pending_error(ERR_SHORT if self._end else ERR_NONE, self.timeout_ms)

