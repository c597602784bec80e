"""Modbus PDU for reading registers (functions 0x03 and 0x04), shared by RTU and TCP framing.

A PDU is the part both framings carry: function code, then either a request
(address, count) or a reply (byte count, register words) or an exception (code).
Replies are parsed straight into the caller's word buffer; the happy path allocates
nothing. Every malformed reply raises a subclass of ModbusError with a stable `kind`.

`step()` is the one call per agent-loop tick for either framing.
"""
from edge.compat import const
from edge.compat import ticks_diff as elapsed_ms  # noqa: F401 (the framings' deadline arithmetic)
from edge.errors import EdgeError

READ_HOLDING = const(0x03)
READ_INPUT = const(0x04)
MAX_READ_COUNT = const(125)  # registers per read (Modbus application protocol v1.1b3, 6.3)

# Events returned by feed()/step().
NEED_DATA = const(0)
REPLY = const(1)

# Transaction states of the framing clients.
IDLE = const(0)
ARMED = const(1)

# Names of exception codes 1..11 (Modbus application protocol v1.1b3, section 7).
EXCEPTION_NAMES = (
    "unknown exception",
    "illegal function",
    "illegal data address",
    "illegal data value",
    "server device failure",
    "acknowledge",
    "server device busy",
    "unknown exception",
    "memory parity error",
    "unknown exception",
    "gateway path unavailable",
    "gateway target device failed to respond",
)


class ModbusError(EdgeError):
    """Base of every Modbus failure; `kind` is stable, `message` is for people."""

    kind = "modbus"


class ModbusTimeout(ModbusError):
    """No byte of a reply arrived before the deadline."""

    kind = "modbus_timeout"


class ModbusExceptionReply(ModbusError):
    """The device answered with an exception response (function | 0x80, code)."""

    kind = "modbus_exception"

    def __init__(self, function, code):
        name = EXCEPTION_NAMES[code] if code < len(EXCEPTION_NAMES) else EXCEPTION_NAMES[0]
        ModbusError.__init__(
            self, "modbus exception 0x%02X (%s) to function 0x%02X" % (code, name, function), code
        )
        self.function = function
        self.code = code
        self.name = name


class ModbusFrameError(ModbusError):
    """A reply arrived but is unusable. One class, several stable kinds (one class per kind
    would cost a type object each in a board's RAM):

      modbus_crc       CRC-16 check failed (RTU)
      modbus_garbled   no well-formed frame, inconsistent lengths, bad MBAP header
      modbus_short     fewer registers than asked, or a frame cut off
      modbus_overlong  more registers than asked
      modbus_tid       MBAP transaction id differs from the request
      modbus_unit      reply from another unit id
      modbus_function  reply to another function code
    """

    kind = "modbus_frame"

    def __init__(self, kind, message, detail=None):
        ModbusError.__init__(self, message, detail)
        self.kind = kind


class ModbusRequestError(ModbusError):
    """The caller asked for something Modbus cannot express (bad unit, address, count)."""

    kind = "modbus_request"


# Pending-error codes a client remembers until its deadline names the failure.
ERR_NONE = const(0)
ERR_GARBLED = const(1)
ERR_SHORT = const(2)
ERR_CRC = const(3)


def pending_error(err, timeout_ms):
    """The typed error for a transaction that ran out of time with `err` pending."""
    if err == ERR_CRC:
        return ModbusFrameError("modbus_crc", "CRC-bad reply and no good one before the deadline")
    if err == ERR_SHORT:
        return ModbusFrameError("modbus_short", "reply cut off (line went silent mid-frame)")
    if err == ERR_GARBLED:
        return ModbusFrameError("modbus_garbled", "garbled reply: no well-formed frame in the bytes")
    return ModbusTimeout("no reply within %d ms" % timeout_ms, timeout_ms)


def check_request(unit, function, address, count):
    if function != READ_HOLDING and function != READ_INPUT:
        raise ModbusRequestError("function must be 0x03 or 0x04, not %r" % (function,))
    if not 0 <= unit <= 255:
        raise ModbusRequestError("unit id out of range 0..255: %r" % (unit,))
    if not 0 <= address <= 0xFFFF:
        raise ModbusRequestError("address out of range 0..65535: %r" % (address,))
    if not 1 <= count <= MAX_READ_COUNT or address + count > 0x10000:
        raise ModbusRequestError("register count out of range 1..125: %r" % (count,))


class ReadTransaction:
    """What both framings keep for their one outstanding read: the request's unit, function
    and count, the caller's word buffer, the receive buffer, the start time, IDLE/ARMED.
    Everything is allocated here, once."""

    def __init__(self, timeout_ms, cap):
        self.timeout_ms = timeout_ms
        self._buf = bytearray(cap)
        self._end = 0
        self._state = IDLE
        self._unit = 0
        self._fn = 0
        self._count = 0
        self._words = None
        self._woff = 0
        self._t0 = 0
        self.ignored = 0  # bytes arriving with no request outstanding
        self.received = 0  # bytes fed during the current transaction

    def _arm(self, unit, function, address, count, words, woff, now_ms):
        """Check the request and start a transaction (the framing then writes its bytes)."""
        check_request(unit, function, address, count)
        self._unit = unit
        self._fn = function
        self._count = count
        self._words = words
        self._woff = woff
        self._t0 = now_ms
        self._end = 0
        self.received = 0
        self._state = ARMED

    def busy(self):
        return self._state == ARMED


def put_read_pdu(buf, off, function, address, count):
    """Write the 5-byte read request PDU at buf[off]; returns the offset after it."""
    buf[off] = function
    buf[off + 1] = address >> 8
    buf[off + 2] = address & 0xFF
    buf[off + 3] = count >> 8
    buf[off + 4] = count & 0xFF
    return off + 5


def parse_read_pdu(buf, off, n, function, count, words, woff):
    """Parse a complete reply PDU buf[off:off+n] into words[woff:woff+count].

    Returns REPLY or raises: exception reply, wrong function, short/over-long data.
    """
    if n < 2:
        raise ModbusFrameError("modbus_garbled", "reply PDU of %d bytes" % n)
    f = buf[off]
    if f == function | 0x80:
        if n != 2:
            raise ModbusFrameError("modbus_garbled", "exception reply of %d bytes" % n)
        raise ModbusExceptionReply(function, buf[off + 1])
    if f != function:
        raise ModbusFrameError("modbus_function", "reply to function 0x%02X, asked 0x%02X" % (f, function), f)
    bc = buf[off + 1]
    if bc != n - 2 or bc & 1:
        raise ModbusFrameError("modbus_garbled", "byte count %d does not match %d data bytes" % (bc, n - 2))
    want = count << 1
    if bc < want:
        raise ModbusFrameError("modbus_short", "%d registers in reply, asked %d" % (bc >> 1, count), bc >> 1)
    if bc > want:
        raise ModbusFrameError("modbus_overlong", "%d registers in reply, asked %d" % (bc >> 1, count), bc >> 1)
    p = off + 2
    for k in range(woff, woff + count):
        words[k] = (buf[p] << 8) | buf[p + 1]
        p += 2
    return REPLY


def step(client, data, now_ms):
    """One agent-loop tick of a read transaction, for RtuClient or TcpClient alike.

    `data` is what the link delivered since the last tick (bytes, bytearray, or None/b"").
    Returns REPLY once the words are in the caller's buffer, else NEED_DATA; raises a
    ModbusError subclass when the transaction failed (deadline, exception reply, bad frame).
    Allocates nothing on the happy path.
    """
    if data:
        if client.feed(data, now_ms) == REPLY:
            return REPLY
    client.check(now_ms)
    return NEED_DATA
