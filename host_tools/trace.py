"""Trace CSV (docs/trace-format.md): parse and validate on the host, emit edge readings.

The edge never parses dates or decimals: this module turns each row into edge time
(seconds since 2020-01-01T00:00+09:00 plus ms) and a reading list (edge/reading.py):
power as an integer with a power-of-ten exponent (at most 3 decimals, i.e. mW), and
cumulative energy as mWh (exp -3) in two 16-bit halves of a 32-bit counter, which wraps
every 4,294,967.296 Wh exactly as a device counter would (the integrator handles it).
"""
import csv
import io
import datetime
import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from edge.reading import (
    HAS_EXPORT, HAS_IMPORT, HAS_POWER, R_EXP_EXP, R_EXP_HI, R_EXP_LO, R_IMP_EXP, R_IMP_HI,
    R_IMP_LO, R_POWER, R_POWER_EXP, R_PRESENT, READING_LEN,
)
from edge.timebase import EDGE_EPOCH_UNIX

COLUMNS = ("ts", "power_w", "import_wh", "export_wh")
_EPOCH_MS = re.compile(r"^[0-9]{1,15}$")
_MAX_POWER_VALUE = (1 << 30) - 1
_MWH = Decimal(1000)
_QUANTUM_MW = Decimal("0.001")


class TraceError(Exception):
    """A bad trace: message names the file and line."""

    def __init__(self, path, line, message):
        Exception.__init__(self, "%s:%s: %s" % (path, line, message))
        self.path = path
        self.line = line


def parse_ts(text):
    """ISO 8601 with an offset, or epoch milliseconds -> (edge_s, ms)."""
    text = text.strip()
    if _EPOCH_MS.match(text):
        unix_ms = int(text)
    else:
        try:
            dt = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("ts %r is neither ISO 8601 nor epoch milliseconds" % text)
        if dt.tzinfo is None:
            raise ValueError("ts %r has no UTC offset (write e.g. +09:00)" % text)
        if dt.microsecond % 1000:
            raise ValueError("ts %r is finer than 1 ms" % text)
        delta = dt - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        unix_ms = (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
    edge_ms = unix_ms - EDGE_EPOCH_UNIX * 1000
    if edge_ms < 0:
        raise ValueError("ts %r is before 2020-01-01T00:00+09:00 (the edge epoch)" % text)
    if edge_ms // 1000 > 0x3FFF0000:
        raise ValueError("ts %r is too far in the future for edge time" % text)
    return edge_ms // 1000, edge_ms % 1000


def _decimal(text, what):
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError("%s %r is not a number" % (what, text))
    if not d.is_finite():
        raise ValueError("%s %r is not finite" % (what, text))
    return d


_SIMPLE = re.compile(r"^(-?)([0-9]{1,9})(?:\.([0-9]{1,3}))?$")


def parse_power(text):
    """'-1234.5' (W) -> (value, exp) with exp >= -3 and |value| < 2**30."""
    m = _SIMPLE.match(text)
    if m:  # fast path, same result as the Decimal path below
        frac = m.group(3) or ""
        value = int(m.group(2) + frac)
        if value <= _MAX_POWER_VALUE:
            return (-value if m.group(1) else value), -len(frac)
    d = _decimal(text, "power_w")
    exp = d.as_tuple().exponent
    if exp < -3:
        d = d.quantize(_QUANTUM_MW, rounding=ROUND_HALF_EVEN)
        exp = -3
    value = int(d.scaleb(-exp))
    while abs(value) > _MAX_POWER_VALUE and exp < 9:
        if value % 10:
            break
        value //= 10
        exp += 1
    if abs(value) > _MAX_POWER_VALUE:
        raise ValueError("power_w %r is out of range" % text)
    return value, exp


def parse_energy(text, what):
    """Cumulative Wh (decimal) -> 32-bit mWh counter (rounded half-even to 1 mWh, wrapped)."""
    m = _SIMPLE.match(text)
    if m and not m.group(1):  # fast path, same result as the Decimal path below
        frac = m.group(3) or ""
        return (int(m.group(2)) * 1000 + int((frac + "00")[:3])) & 0xFFFFFFFF
    d = _decimal(text, what)
    if d < 0:
        raise ValueError("%s %r is negative (cumulative registers count up)" % (what, text))
    mwh = int((d * _MWH).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    return mwh & 0xFFFFFFFF


class Row:
    __slots__ = ("line", "s", "ms", "reading")

    def __init__(self, line, s, ms, reading):
        self.line = line
        self.s = s
        self.ms = ms
        self.reading = reading


def read_trace(path, lenient=False):
    """Yield Row objects; raises TraceError (file:line: message) on a bad row.

    Time must increase strictly; with lenient=True backwards or duplicate timestamps are
    passed on for the integrator to flag (clock_step / invalid) instead."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TraceError(path, data.count(b"\n", 0, e.start) + 1, "not UTF-8 text (%s)" % e.reason)
    yield from parse_lines(io.StringIO(text, newline=""), path, lenient)


def _rows(reader, path):
    """(line number, row) pairs; CSV syntax errors become TraceError."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise TraceError(path, reader.line_num, "CSV syntax: %s" % e)
        yield reader.line_num, row


def parse_lines(lines, path="<trace>", lenient=False):
    reader = _rows(csv.reader(lines), path)
    try:
        header = next(reader)
    except StopIteration:
        raise TraceError(path, 1, "empty file (expected a header: ts,power_w,import_wh,export_wh)")
    header = [h.strip() for h in header[1]]
    for h in header:
        if h not in COLUMNS:
            raise TraceError(path, 1, "unknown column %r (allowed: %s)" % (h, ", ".join(COLUMNS)))
    if len(set(header)) != len(header):
        raise TraceError(path, 1, "duplicate column")
    if "ts" not in header:
        raise TraceError(path, 1, "missing the ts column")
    if len(header) < 2:
        raise TraceError(path, 1, "need at least one of power_w, import_wh, export_wh")
    col = {h: i for i, h in enumerate(header)}
    last = None
    for line, row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise TraceError(path, line, "expected %d fields, got %d" % (len(header), len(row)))
        try:
            s, ms = parse_ts(row[col["ts"]])
            r = [0] * READING_LEN
            present = 0
            v = row[col["power_w"]].strip() if "power_w" in col else ""
            if v:
                r[R_POWER], r[R_POWER_EXP] = parse_power(v)
                present |= HAS_POWER
            v = row[col["import_wh"]].strip() if "import_wh" in col else ""
            if v:
                c = parse_energy(v, "import_wh")
                r[R_IMP_HI], r[R_IMP_LO], r[R_IMP_EXP] = c >> 16, c & 0xFFFF, -3
                present |= HAS_IMPORT
            v = row[col["export_wh"]].strip() if "export_wh" in col else ""
            if v:
                c = parse_energy(v, "export_wh")
                r[R_EXP_HI], r[R_EXP_LO], r[R_EXP_EXP] = c >> 16, c & 0xFFFF, -3
                present |= HAS_EXPORT
            r[R_PRESENT] = present
        except ValueError as e:
            raise TraceError(path, line, str(e))
        t = (s, ms)
        if last is not None and not lenient:
            if t == last[0]:
                raise TraceError(path, line, "duplicate timestamp (also on line %d)" % last[1])
            if t < last[0]:
                raise TraceError(path, line, "time goes backwards (line %d is later)" % last[1])
        last = (t, line)
        yield Row(line, s, ms, r)
