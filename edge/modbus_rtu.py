"""Modbus RTU framing for a client (master): request ADUs out, reply ADUs hunted from bytes.

RTU frames carry no length and no start marker, only unit id, PDU and CRC-16/MODBUS, and
are delimited by line silence (3.5 character times). The client knows what it asked,
so it hunts for `unit, function` (or `unit, function|0x80`) followed by a plausible byte
count and a good CRC, skipping garbage one byte at a time (like pymodbus's FramerRTU).
Unlike pymodbus before its fix, a partial frame older than the configured silence is
dropped when new bytes arrive instead of being glued onto the next good frame.

Each request ends in exactly one outcome: feed() returns REPLY (words are in the caller's
buffer), or feed()/check() raise a ModbusError. A complete frame with a bad CRC ends the
transaction at once unless a later candidate is still arriving; garbage and stale
partials only end it at the deadline, where the error names what was seen.
"""
from edge.compat import const
from edge.crc import crc16
from edge.modbus_pdu import (
    ARMED,
    ERR_CRC,
    ERR_GARBLED,
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

_CAP = const(256)  # largest RTU ADU (Modbus over serial line v1.02, 2.5.1)
REQUEST_LEN = const(8)


def gap_ms_for_baud(baud):
    """Inter-frame silence in whole ms: 3.5 characters of 11 bits, fixed 1.75 ms above 19200 baud
    (Modbus over serial line v1.02, 2.5.1.1), rounded up."""
    if baud > 19200:
        return 2
    return (38500 + baud - 1) // baud


def build_read(buf, unit, function, address, count):
    """Write an 8-byte RTU read request into buf (bytearray); returns 8."""
    put_read_pdu(buf, 1, function, address, count)
    buf[0] = unit
    c = crc16(buf, 0, 6)
    buf[6] = c & 0xFF
    buf[7] = c >> 8
    return REQUEST_LEN


class RtuClient(ReadTransaction):
    """One outstanding read at a time; all buffers allocated here, once."""

    def __init__(self, gap_ms, timeout_ms):
        super().__init__(timeout_ms, _CAP)
        self.gap_ms = gap_ms
        self._start = 0
        self._last = 0
        self._err = ERR_NONE
        self._flen = 0
        # Counters for diagnostics (never reset here; the agent may read and diff them).
        self.dropped = 0  # garbage bytes skipped while hunting
        self.stale = 0  # partial frames dropped after line silence

    def request(self, out, unit, function, address, count, words, woff, now_ms):
        """Build the request into `out` (>= 8 bytes) and arm the decoder; returns its length.

        Register words of the reply land in words[woff:woff+count] (a list, array or any
        int-assignable sequence the caller owns)."""
        self._arm(unit, function, address, count, words, woff, now_ms)
        self._last = now_ms
        self._start = 0
        self._err = ERR_NONE
        return build_read(out, unit, function, address, count)

    def feed(self, data, now_ms, n=-1):
        """Take bytes data[0:n] (all of it if n < 0) received at now_ms; returns REPLY or NEED_DATA."""
        if n < 0:
            n = len(data)
        if self._state != ARMED:
            self.ignored += n
            return NEED_DATA
        if n == 0:
            return NEED_DATA
        if self._end > self._start and elapsed_ms(now_ms, self._last) > self.gap_ms:
            self.stale += 1
            self._start = 0
            self._end = 0
            if self._err < ERR_SHORT:
                self._err = ERR_SHORT
        self._last = now_ms
        self.received += n
        b = self._buf
        j = 0
        while j < n:
            if self._end == _CAP:
                self._compact()
            e = self._end
            k = _CAP - e
            if k > n - j:
                k = n - j
            for q in range(k):
                b[e + q] = data[j + q]
            self._end = e + k
            j += k
            if self._hunt():
                return self._accept()
        return NEED_DATA

    def check(self, now_ms):
        """Raise the transaction's typed error once its deadline has passed."""
        if self._state == ARMED and elapsed_ms(now_ms, self._t0) >= self.timeout_ms:
            self._state = IDLE
            err = self._err
            if err == ERR_NONE and self.received:
                err = ERR_SHORT if self._end > self._start else ERR_GARBLED
            raise pending_error(err, self.timeout_ms)

    def _compact(self):
        s = self._start
        if s == 0:  # a full buffer with no plausible frame start: all garbage
            self.dropped += self._end
            self._end = 0
            return
        b = self._buf
        e = self._end
        for q in range(e - s):
            b[q] = b[s + q]
        self._end = e - s
        self._start = 0

    def _hunt(self):
        """Scan for a good frame; True when one starts at self._start (its length in self._flen).

        Keeps the earliest still-incomplete candidate as the new start; CRC-bad complete
        candidates raise unless a later candidate is still pending."""
        b = self._buf
        end = self._end
        unit = self._unit
        fn = self._fn
        efn = fn | 0x80
        keep = -1
        bad = False
        i = self._start
        while i < end:
            if b[i] == unit:
                ln = -1
                if i + 1 >= end:
                    ln = 0
                else:
                    f = b[i + 1]
                    if f == efn:
                        ln = 5
                    elif f == fn:
                        if i + 2 >= end:
                            ln = 0
                        else:
                            bc = b[i + 2]
                            if not (bc & 1) and bc <= 250:
                                ln = 5 + bc
                if ln == 0 or (ln > 0 and i + ln > end):
                    if keep < 0:
                        keep = i
                elif ln > 0:
                    c = crc16(b, i, i + ln - 2)
                    if (c & 0xFF) == b[i + ln - 2] and (c >> 8) == b[i + ln - 1]:
                        self.dropped += i - self._start
                        self._start = i
                        self._flen = ln
                        return True
                    bad = True
            i += 1
        if keep < 0:
            self.dropped += end - self._start
            self._start = end
            if bad:
                self._state = IDLE
                raise ModbusFrameError("modbus_crc", "reply with a bad CRC")
            if self._err < ERR_GARBLED:
                self._err = ERR_GARBLED
        else:
            self.dropped += keep - self._start
            self._start = keep
            if bad:
                self._err = ERR_CRC
        return False

    def _accept(self):
        self._state = IDLE
        i = self._start
        ln = self._flen
        self._start = 0
        self._end = 0
        return parse_read_pdu(self._buf, i + 1, ln - 3, self._fn, self._count, self._words, self._woff)
