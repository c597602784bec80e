"""The exact host reference for 30-minute values (基準値), in rational arithmetic.

Written apart from edge/integrator.py on purpose: a certifier must not have to trust the
code under test to trust the yardstick. The values are the trace's decimals as written
(no rounding to the device's resolution, no 32-bit counters), held as exact integers on a
per-column decimal scale; every result is an exact fractions.Fraction of a Wh.

- power (W, import positive): the trapezoid integral between consecutive samples that carry
  power, each interval split exactly at JST slot boundaries and at its zero crossing; the
  positive part is import, the negative part export.
- register (cumulative Wh): the counter delta between consecutive readings, split across a
  slot boundary in proportion to time (linear interpolation of the counter). With a reading
  at every boundary this is exactly the difference of the readings at the two boundaries.

A direction (import/export) uses its register column when the trace has one, else power;
that mirrors what the device reports. Intervals longer than max_gap_ms are not integrated
(where their energy fell is unknown) and only reduce the slot's coverage.
"""
import csv
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from host_tools.trace import COLUMNS, TraceError, parse_ts

SLOT_MS = 1800000
WH_MS = 3600000  # W*ms per Wh
_ISO = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}):([0-9]{2})(?:\.([0-9]{1,3}))?"
                  r"(Z|[+-][0-9]{2}:[0-9]{2})$")


class Samples:
    """A parsed trace: parallel lists, values as exact ints on a per-column scale.

    t: edge ms; line: trace line; power[i] in 10**-scale['power'] W, imp/exp in
    10**-scale[...] Wh; None where the cell is empty."""

    def __init__(self, path, t, line, power, imp, exp, scale):
        self.path = path
        self.t = t
        self.line = line
        self.power = power
        self.imp = imp
        self.exp = exp
        self.scale = scale

    def __len__(self):
        return len(self.t)

    def has(self, col):
        return any(v is not None for v in getattr(self, col))

    def value(self, col, i):
        """Exact value (Fraction W or Wh) of column col at row i, None if empty."""
        v = getattr(self, col)[i]
        return None if v is None else Fraction(v, 10 ** self.scale[col])


class RefSlot:
    """Reference of one absolute slot. imp/exp: Fraction Wh (None: no source covered it);
    cover_*: ms of the slot covered; notes: reasons the reference itself is doubtful."""
    __slots__ = ("slot", "imp", "exp", "cover_imp", "cover_exp", "notes", "point")

    def __init__(self, slot):
        self.slot = slot
        self.point = None  # the test-plan point the reference says it ran (slot CSV column)
        self.imp = None
        self.exp = None
        self.cover_imp = 0
        self.cover_exp = 0
        self.notes = []

    def value(self, d):
        return self.imp if d == "imp" else self.exp

    def cover(self, d):
        return self.cover_imp if d == "imp" else self.cover_exp


def parse_decimal(text, what):
    """'-12.345' -> (-12345, 3): exact mantissa and number of decimals."""
    a, _, b = text.partition(".")
    if text.isascii() and (b.isdigit() or not b) and (a[1:] if a[:1] == "-" else a).isdigit():
        return int(a + b), len(b)  # plain decimal: the fast path, same result as below
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ValueError("%s %r is not a decimal number" % (what, text))
    if not d.is_finite():
        raise ValueError("%s %r is not finite" % (what, text))
    sign, digits, e = d.as_tuple()
    v = int("".join(map(str, digits)) or "0")
    v = -v if sign else v
    if e >= 0:
        return v * 10 ** e, 0
    return v, -e


def parse_exact(text, what):
    """'12.5' or '45/4' -> exact Fraction (a rational N/D is how exact truths are written)."""
    num, slash, den = text.partition("/")
    if slash:
        try:
            n, d = int(num), int(den)
        except ValueError:
            raise ValueError("%s %r is not a rational N/D of integers" % (what, text))
        if d <= 0:
            raise ValueError("%s %r has a denominator <= 0" % (what, text))
        return Fraction(n, d)
    m, n = parse_decimal(text, what)
    return Fraction(m, 10 ** n)


class _Clock:
    """parse_ts with a per-minute cache: the same result, a fraction of the cost."""

    def __init__(self):
        self.cache = {}

    def __call__(self, text):
        m = _ISO.match(text)
        if not m:
            s, ms = parse_ts(text)
            return s * 1000 + ms
        key = (m.group(1), m.group(4))
        base = self.cache.get(key)
        if base is None:
            s, ms = parse_ts(m.group(1) + ":00" + m.group(4))
            base = self.cache[key] = s * 1000 + ms
        sec = int(m.group(2))
        if sec > 59:
            parse_ts(text)  # raises the usual error
        frac = m.group(3)
        return base + sec * 1000 + (int((frac + "00")[:3]) if frac else 0)


def read_samples(path):
    """The trace (docs/trace-format.md) as Samples with exact values; TraceError on bad input.

    Time must increase strictly: the reference has no notion of a clock step."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return parse_samples(f, path)
    except UnicodeDecodeError as e:
        raise TraceError(path, "?", "not UTF-8 text (%s)" % e)


def parse_samples(lines, path="<trace>"):
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise TraceError(path, 1, "empty file")
    for h in header:
        if h not in COLUMNS:
            raise TraceError(path, 1, "unknown column %r (allowed: %s)" % (h, ", ".join(COLUMNS)))
    if "ts" not in header or len(set(header)) != len(header) or len(header) < 2:
        raise TraceError(path, 1, "need a ts column and at least one of power_w, import_wh, "
                         "export_wh, each once")
    cols = (("power", "power_w", False), ("imp", "import_wh", True), ("exp", "export_wh", True))
    idx = [(attr, name, header.index(name) if name in header else -1, nonneg)
           for attr, name, nonneg in cols]
    its = header.index("ts")
    clock = _Clock()
    t, lines_, raw = [], [], {"power": [], "imp": [], "exp": []}
    last = None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise TraceError(path, reader.line_num, "CSV: %s" % e)
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise TraceError(path, line, "expected %d fields, got %d" % (len(header), len(row)))
        try:
            tm = clock(row[its].strip())
            for attr, name, i, nonneg in idx:
                text = row[i].strip() if i >= 0 else ""
                if not text:
                    raw[attr].append(None)
                    continue
                v = parse_decimal(text, name)
                if nonneg and v[0] < 0:
                    raise ValueError("%s %r is negative (cumulative registers count up)"
                                     % (name, text))
                raw[attr].append(v)
        except ValueError as e:
            raise TraceError(path, line, str(e))
        if last is not None and tm <= last[0]:
            raise TraceError(path, line, "time does not increase (line %d is at or after it)"
                             % last[1])
        last = (tm, line)
        t.append(tm)
        lines_.append(line)
    scale = {}
    vals = {}
    for attr in raw:
        d = max((v[1] for v in raw[attr] if v is not None), default=0)
        scale[attr] = d
        vals[attr] = [None if v is None else v[0] * 10 ** (d - v[1]) for v in raw[attr]]
    return Samples(path, t, lines_, vals["power"], vals["imp"], vals["exp"], scale)


SLOT_HEADER = "slot_start"


def is_slot_csv(path):
    """True when path is a per-slot CSV (first column slot_start) rather than a trace."""
    with open(path, "rb") as f:
        first = f.readline()
    return first.decode("utf-8", "replace").lstrip("\ufeff").split(",")[0].strip() == SLOT_HEADER


def read_slot_csv(path):
    """A reference meter's 30-minute values: CSV with slot_start (ISO 8601, the slot's
    start) and import_wh and/or export_wh (Wh per slot: a decimal, or an exact rational
    N/D; other columns ignored, so `smeter replay` output of another meter works) and an
    optional point column (the test-plan point run in that slot, e.g. written by
    `smeter emulate --plan`). -> ({slot: RefSlot}, directions)."""
    try:
        return _read_slot_csv(path)
    except UnicodeDecodeError as e:
        raise TraceError(path, "?", "not UTF-8 text (%s)" % e)
    except csv.Error as e:
        raise TraceError(path, "?", "CSV: %s" % e)


def _read_slot_csv(path):
    out = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if SLOT_HEADER not in (reader.fieldnames or []):
            raise TraceError(path, 1, "a slot CSV needs a slot_start column")
        cols = [c for c in ("import_wh", "export_wh") if c in (reader.fieldnames or [])]
        if not cols:
            raise TraceError(path, 1, "a slot CSV needs import_wh and/or export_wh")
        for row in reader:
            line = reader.line_num
            try:
                s, ms = parse_ts(row[SLOT_HEADER].strip())
                if ms or s % (SLOT_MS // 1000):
                    raise ValueError("slot_start %r is not the start of a half hour"
                                     % row[SLOT_HEADER])
                k = s // (SLOT_MS // 1000)
                if k in out:
                    raise ValueError("slot %r appears twice" % row[SLOT_HEADER])
                r = out[k] = RefSlot(k)
                if (row.get("point") or "").strip():
                    r.point = row["point"].strip()
                if (row.get("flags") or "").strip():
                    r.notes.append("reference meter flagged the slot: %s" % row["flags"].strip())
                for c in cols:
                    text = (row[c] or "").strip()
                    if not text:
                        continue
                    v = parse_exact(text, c)
                    if c == "import_wh":
                        r.imp, r.cover_imp = v, SLOT_MS
                    else:
                        r.exp, r.cover_exp = v, SLOT_MS
            except ValueError as e:
                raise TraceError(path, line, str(e))
    dirs = [d for d, c in (("imp", "import_wh"), ("exp", "export_wh")) if c in cols]
    return out, dirs


def _cuts(t0, t1):
    """Slot boundaries strictly inside (t0, t1), t in ms (ints)."""
    b = (t0 // SLOT_MS + 1) * SLOT_MS
    while b < t1:
        yield b
        b += SLOT_MS


def power_pieces(t0, p0, t1, p1):
    """Split the line (t0, p0) -> (t1, p1) at slot boundaries and at its zero crossing.

    Yields (slot, a, b, pa, pb): pieces inside one slot on which power keeps one sign."""
    pts = [Fraction(c) for c in _cuts(t0, t1)]
    if (p0 > 0 > p1) or (p0 < 0 < p1):
        pts.append(t0 + Fraction((t1 - t0) * p0, p0 - p1))
        pts.sort()
    dt = t1 - t0
    a, pa = Fraction(t0), Fraction(p0)
    for b in pts + [Fraction(t1)]:
        if b == a:
            continue
        pb = Fraction(p1) if b == t1 else p0 + (p1 - p0) * (b - t0) / dt
        yield int(a // SLOT_MS), a, b, pa, pb
        a, pa = b, pb


class _Acc:
    """Per-slot sums: an int fast path plus a Fraction for split intervals, and coverage."""
    __slots__ = ("i", "f", "cover", "used")

    def __init__(self):
        self.i = 0
        self.f = Fraction(0)
        self.cover = 0
        self.used = False


def _acc(table, k):
    a = table.get(k)
    if a is None:
        a = table[k] = _Acc()
    return a


def power_integral(s, max_gap_ms):
    """{slot: (import Fraction Wh, export Fraction Wh, covered ms)} of the power column."""
    imp, exp = {}, {}
    den = 2 * WH_MS * 10 ** s.scale["power"]
    t, pw = s.t, s.power
    pt = pp = None
    for i in range(len(t)):
        p = pw[i]
        if p is None:
            continue
        t1 = t[i]
        if pt is not None and t1 - pt <= max_gap_ms:
            k = pt // SLOT_MS
            if (t1 - 1) // SLOT_MS == k and not (pp > 0 > p or pp < 0 < p):
                x = (pp + p) * (t1 - pt)  # twice the area, one slot, one sign
                a = _acc(imp, k)
                b = _acc(exp, k)
                if x > 0:
                    a.i += x
                elif x < 0:
                    b.i -= x
                a.cover += t1 - pt
                b.cover += t1 - pt
                a.used = b.used = True
            else:
                for k2, ta, tb, pa, pb in power_pieces(pt, pp, t1, p):
                    x = (pa + pb) * (tb - ta)
                    a = _acc(imp, k2)
                    b = _acc(exp, k2)
                    if x > 0:
                        a.f += x
                    elif x < 0:
                        b.f -= x
                    a.cover += tb - ta
                    b.cover += tb - ta
                    a.used = b.used = True
        pt, pp = t1, p
    return _finish(imp, den), _finish(exp, den)


def register_delta(s, attr, max_gap_ms):
    """({slot: (Fraction Wh, covered ms)}, {slot: [notes]}) of register column attr."""
    acc, notes = {}, {}
    den = 10 ** s.scale[attr]
    t, v = s.t, getattr(s, attr)
    pt = pv = None
    for i in range(len(t)):
        x = v[i]
        if x is None:
            continue
        t1 = t[i]
        if pt is not None:
            d = x - pv
            if d < 0:
                notes.setdefault((t1 - 1) // SLOT_MS, []).append(
                    "reference %s register went backwards at line %d"
                    % ("import" if attr == "imp" else "export", s.line[i]))
            elif t1 - pt <= max_gap_ms:
                k = pt // SLOT_MS
                if (t1 - 1) // SLOT_MS == k:
                    a = _acc(acc, k)
                    a.i += d
                    a.cover += t1 - pt
                    a.used = True
                else:
                    ta = pt
                    for tb in list(_cuts(pt, t1)) + [t1]:
                        a = _acc(acc, ta // SLOT_MS)
                        a.f += Fraction(d * (tb - ta), t1 - pt)
                        a.cover += tb - ta
                        a.used = True
                        ta = tb
        pt, pv = t1, x
    return _finish(acc, den), notes


def _finish(table, den):
    return {k: ((a.i + a.f) / den, int(a.cover) if a.cover == int(a.cover) else a.cover)
            for k, a in table.items() if a.used}


def sources(s):
    """{'imp': 'register'|'power'|None, 'exp': ...}: the source each direction is measured by."""
    pw = s.has("power")
    return {d: "register" if s.has(d) else ("power" if pw else None) for d in ("imp", "exp")}


def reference(s, max_gap_ms):
    """{absolute slot: RefSlot} over Samples s, each direction from its source (sources())."""
    src = sources(s)
    out = {}

    def put(d, table):
        for k, (wh, cover) in table.items():
            r = out.get(k)
            if r is None:
                r = out[k] = RefSlot(k)
            if d == "imp":
                r.imp, r.cover_imp = Fraction(wh), cover
            else:
                r.exp, r.cover_exp = Fraction(wh), cover

    if "power" in src.values():
        pi, pe = power_integral(s, max_gap_ms)
        if src["imp"] == "power":
            put("imp", pi)
        if src["exp"] == "power":
            put("exp", pe)
    for d in ("imp", "exp"):
        if src[d] == "register":
            table, notes = register_delta(s, d, max_gap_ms)
            put(d, table)
            for k, n in notes.items():
                r = out.get(k)
                if r is None:
                    r = out[k] = RefSlot(k)
                r.notes.extend(n)
    return out
