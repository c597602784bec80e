"""Register maps: JSON data (hw/maps/*.json) compiled into a flat int program that decodes
one block of register words into the caller's reading list (edge/reading.py).

compile_map() runs once at start-up on the parsed JSON (json.loads works on both
interpreters; edge code never opens the file). decode() runs every poll and allocates
nothing: it only indexes lists and does small-int arithmetic. Every intermediate value
stays inside the 31-bit small-int range of 32-bit boards: 32-bit accumulators travel as
two 16-bit halves and float32 values are taken apart bit by bit in 16-bit limbs.

Supported types (SunSpec names where they exist):
  int16, uint16, int32, uint32 (power only if the value fits 31 bits), acc32, uint32 (energy),
  float32 (IEEE 754, two words), with a scale factor register (sunssf) or a fixed exponent.
Not-implemented markers clear the quantity's HAS_* bit: int16 0x8000, uint16 0xFFFF,
acc32 0 (SunSpec "not accumulated"), uint32 0xFFFFFFFF, sunssf 0x8000 or outside -10..10,
float32 NaN/Inf, negative or over-range float energy.
"""
from edge.compat import const
from edge.errors import EdgeError
from edge.reading import (
    HAS_EXPORT,
    HAS_IMPORT,
    HAS_POWER,
    R_EXP_EXP,
    R_EXP_HI,
    R_EXP_LO,
    R_IMP_EXP,
    R_IMP_HI,
    R_IMP_LO,
    R_POWER,
    R_POWER_EXP,
    R_PRESENT,
)


class RegmapError(EdgeError):
    kind = "regmap"


class RegmapInvalid(RegmapError):
    """The map JSON is inconsistent (caught at compile time, never per poll)."""

    kind = "regmap_invalid"


class RegmapMismatch(RegmapError):
    """The device's identity registers do not match the map (wrong model or base address)."""

    kind = "regmap_mismatch"


# Type codes.
T_INT16 = const(1)
T_UINT16 = const(2)
T_INT32 = const(3)
T_UINT32 = const(4)
T_ACC32 = const(5)
T_FLOAT32 = const(6)
_TYPES = {"int16": 1, "uint16": 2, "int32": 3, "uint32": 4, "acc32": 5, "float32": 6}
_WIDTH = {1: 1, 2: 1, 3: 2, 4: 2, 5: 2, 6: 2}

# Targets in the reading.
Q_POWER = const(0)
Q_IMPORT = const(1)
Q_EXPORT = const(2)
_TARGETS = {"power": 0, "import": 1, "export": 2}

# Program entry layout: one row of _STRIDE ints per quantity.
_P_TARGET = const(0)
_P_TYPE = const(1)
_P_OFF = const(2)  # word offset of the value in the block
_P_SF = const(3)  # word offset of the scale-factor register, or -1
_P_EXP = const(4)  # fixed exponent (used when no sf register); float32: output exponent
_P_SIGN = const(5)  # +1 or -1: device convention -> import-positive
_P_SWAP = const(6)  # 1 when the low word comes first
_P_MULT = const(7)  # float32: 10**(unit_exp - exp), the integer scaling to the output unit
_STRIDE = const(8)
_MAX_MULT = const(10000)  # keeps the 16-bit-limb products of float decoding under 2**30

_SF_NA = const(99)  # _sf() result for a not-implemented scale factor
_LIMB = [0, 0, 0]  # float32 scratch: value as three 16-bit limbs, little end first


class RegMap:
    """A compiled map: what to read (function, start, count) and how to decode it."""

    def __init__(self, name, function, start, count, prog, checks):
        self.name = name
        self.function = function
        self.start = start
        self.count = count
        self.prog = prog
        self.checks = checks


def _int(obj, key, lo, hi, default=None):
    v = obj.get(key, default)
    if v is None or not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise RegmapInvalid("map field %r must be an integer in %d..%d, got %r" % (key, lo, hi, v))
    return v


def compile_map(obj):
    """Parsed map JSON (dict) -> RegMap (a RegMap passes through, so a board can let the
    JSON go before the agent is built). Raises RegmapInvalid with the offending field."""
    if isinstance(obj, RegMap):
        return obj
    if not isinstance(obj, dict):
        raise RegmapInvalid("a register map is a JSON object")
    name = obj.get("name")
    if not isinstance(name, str):
        raise RegmapInvalid("map field 'name' must be a string")
    function = _int(obj, "function", 3, 4)
    start = _int(obj, "start", 0, 0xFFFF)
    count = _int(obj, "count", 1, 125)
    if start + count > 0x10000:
        raise RegmapInvalid("block runs past register 65535")
    order = obj.get("word_order", "big")
    if order != "big" and order != "little":
        raise RegmapInvalid("word_order must be 'big' or 'little'")
    qs = obj.get("quantities")
    if not isinstance(qs, dict) or not qs:
        raise RegmapInvalid("map needs a non-empty 'quantities' object")
    for key in qs:
        if key not in _TARGETS:
            raise RegmapInvalid("unknown quantity %r (power, import, export)" % (key,))
    prog = []
    for key in ("power", "import", "export"):
        q = qs.get(key)
        if q is None:
            continue
        if not isinstance(q, dict):
            raise RegmapInvalid("quantity %r must be an object" % key)
        t = _TYPES.get(q.get("type"))
        if t is None:
            raise RegmapInvalid("quantity %r: unknown type %r" % (key, q.get("type")))
        if key == "power" and t == T_ACC32:
            raise RegmapInvalid("power cannot be an accumulator")
        if key != "power" and (t == T_INT16 or t == T_INT32):
            raise RegmapInvalid("energy %r must be unsigned, acc32 or float32" % key)
        off = _int(q, "addr", start, start + count - _WIDTH[t]) - start
        sf = -1
        if "sf_addr" in q:
            if t == T_FLOAT32:
                raise RegmapInvalid("float32 takes 'unit_exp'/'exp', not a scale-factor register")
            sf = _int(q, "sf_addr", start, start + count - 1) - start
        exp = _int(q, "exp", -10, 10, 0)
        mult = 1
        if t == T_FLOAT32:
            unit_exp = _int(q, "unit_exp", -10, 10, 0)
            if unit_exp < exp:
                raise RegmapInvalid("quantity %r: exp must not exceed unit_exp" % key)
            mult = 10 ** (unit_exp - exp)
            if mult > _MAX_MULT:
                raise RegmapInvalid("quantity %r: unit_exp - exp must be at most 4" % key)
        sign = _int(q, "sign", -1, 1, 1)
        if sign == 0:
            raise RegmapInvalid("quantity %r: sign must be 1 or -1" % key)
        prog.extend((_TARGETS[key], t, off, sf, exp, sign, 1 if order == "little" else 0, mult))
    if not prog:
        raise RegmapInvalid("map has none of power/import/export")
    checks = []
    for c in obj.get("checks", ()):
        if not isinstance(c, dict):
            raise RegmapInvalid("each check is an object {addr, value}")
        checks.append(_int(c, "addr", start, start + count - 1) - start)
        checks.append(_int(c, "value", 0, 0xFFFF))
    return RegMap(name, function, start, count, prog, checks)


def _sf(words, woff, off):
    """Scale factor at words[woff+off], or a value > 10 for 'not implemented'."""
    if off < 0:
        return 0
    v = words[woff + off]
    if v & 0x8000:
        v -= 0x10000
    if v < -10 or v > 10:
        return _SF_NA
    return v


def _float(hi, lo, mult, limit_hi):
    """float32 (hi, lo words) * mult, rounded half away from zero, into _LIMB.

    Returns the decimal exponent bump (0, 1, ...) applied to keep the magnitude below
    limit_hi * 2**16, or -1 when absent (NaN, Inf, too large). Sign is bit 15 of hi."""
    e = (hi >> 7) & 0xFF
    if e == 0xFF:
        return -1
    m = ((hi & 0x7F) << 16) | lo
    if e == 0:
        s = -149  # subnormal
    else:
        m |= 0x800000
        s = e - 150
    # P = m * mult as three 16-bit limbs.
    t0 = (m & 0xFFFF) * mult
    t1 = (m >> 16) * mult + (t0 >> 16)
    n0 = t0 & 0xFFFF
    n1 = t1 & 0xFFFF
    n2 = t1 >> 16
    if s > 0:
        if s > 16:
            return -1
        if n2 >> (16 - s):
            return -1
        n2 = ((n2 << s) & 0xFFFF) | (n1 >> (16 - s))
        n1 = ((n1 << s) & 0xFFFF) | (n0 >> (16 - s))
        n0 = (n0 << s) & 0xFFFF
    elif s < 0:
        k = -s
        if k > 48:
            n0 = 0
            n1 = 0
            n2 = 0
        else:
            rnd = 0
            while k > 0:
                sh = k if k < 15 else 15
                if k == sh:
                    rnd = (n0 >> (sh - 1)) & 1
                mask = (1 << sh) - 1
                n0 = (n0 >> sh) | ((n1 & mask) << (16 - sh))
                n1 = (n1 >> sh) | ((n2 & mask) << (16 - sh))
                n2 >>= sh
                k -= sh
            if rnd:
                n0 += 1
                if n0 == 0x10000:
                    n0 = 0
                    n1 += 1
                    if n1 == 0x10000:
                        n1 = 0
                        n2 += 1
    bump = 0
    while n2 or n1 >= limit_hi:
        r = n2 % 10
        n2 //= 10
        c = (r << 16) | n1
        n1 = c // 10
        r = c % 10
        c = (r << 16) | n0
        n0 = c // 10
        if c % 10 >= 5:
            n0 += 1
            if n0 == 0x10000:
                n0 = 0
                n1 += 1
        bump += 1
    _LIMB[0] = n0
    _LIMB[1] = n1
    _LIMB[2] = n2
    return bump


def decode(rmap, words, woff, reading):
    """Decode rmap's block words[woff:woff+rmap.count] into reading; returns its HAS_* bits.

    Raises RegmapMismatch when an identity check fails (e.g. SunSpec model id)."""
    ch = rmap.checks
    for i in range(0, len(ch), 2):
        if words[woff + ch[i]] != ch[i + 1]:
            raise RegmapMismatch(
                "%s: register %d reads %d, expected %d"
                % (rmap.name, rmap.start + ch[i], words[woff + ch[i]], ch[i + 1])
            )
    p = rmap.prog
    present = 0
    for i in range(0, len(p), _STRIDE):
        target = p[i + _P_TARGET]
        t = p[i + _P_TYPE]
        at = woff + p[i + _P_OFF]
        sign = p[i + _P_SIGN]
        if t == T_INT16 or t == T_UINT16:
            hi = 0
            lo = words[at]
        elif p[i + _P_SWAP]:
            hi = words[at + 1]
            lo = words[at]
        else:
            hi = words[at]
            lo = words[at + 1]
        if t == T_FLOAT32:
            neg = hi & 0x8000
            bump = _float(hi, lo, p[i + _P_MULT], 0x4000 if target == Q_POWER else 0x10000)
            if bump < 0:
                continue
            exp = p[i + _P_EXP] + bump
            hi = _LIMB[1]
            lo = _LIMB[0]
            if neg and target != Q_POWER and (hi or lo):
                continue  # a negative energy counter is not a counter
        else:
            exp = _sf(words, woff, p[i + _P_SF])
            if exp == _SF_NA:
                continue
            exp += p[i + _P_EXP]
            neg = 0
            if t == T_INT16:
                if lo == 0x8000:
                    continue
                if lo & 0x8000:
                    lo = 0x10000 - lo
                    neg = 1
            elif t == T_UINT16:
                if lo == 0xFFFF:
                    continue
            elif t == T_ACC32:
                if hi == 0 and lo == 0:
                    continue
            elif t == T_UINT32:
                if hi == 0xFFFF and lo == 0xFFFF:
                    continue
            elif t == T_INT32:
                if hi == 0x8000 and lo == 0:
                    continue
                if hi & 0x8000:  # two's complement negate in halves
                    hi = 0xFFFF - hi
                    lo = 0x10000 - lo
                    if lo == 0x10000:
                        lo = 0
                        hi += 1
                    neg = 1
            if target == Q_POWER and hi >= 0x4000:
                continue  # beyond what one small int holds: treat as not implemented
        if target == Q_POWER:
            v = (hi << 16) | lo
            if neg:
                v = -v
            reading[R_POWER] = v * sign
            reading[R_POWER_EXP] = exp
            present |= HAS_POWER
        elif target == Q_IMPORT:
            reading[R_IMP_HI] = hi
            reading[R_IMP_LO] = lo
            reading[R_IMP_EXP] = exp
            present |= HAS_IMPORT
        else:
            reading[R_EXP_HI] = hi
            reading[R_EXP_LO] = lo
            reading[R_EXP_EXP] = exp
            present |= HAS_EXPORT
    reading[R_PRESENT] = present
    return present
