"""CBOR (RFC 8949) for the edge: deterministic encoding into caller buffers, strict decoding.

Encoding follows RFC 8949 section 4.2.1 "core deterministic encoding": shortest heads,
definite lengths only, map keys sorted bytewise by their encoded form. (cbor2's
`canonical=True` sorts length-first like RFC 7049; both orders agree for the small integer
keys the frames use.) Supported values: int of any size (beyond 64 bits as bignum tags 2/3),
bytes, str, list/tuple, dict, True, False, None. Floats, other tags, undefined and simple
values are refused with a typed error: frames never carry them.

Decoding is strict by default: non-shortest heads, indefinite lengths, unsorted or duplicate
map keys, trailing bytes, nesting beyond `max_depth` and lengths beyond `max_len` or beyond
the input are each a CborError with a stable `kind`. Nothing else escapes.
"""
from edge.compat import const
from edge.errors import EdgeError

_MT_UINT = const(0x00)
_MT_NINT = const(0x20)
_MT_BYTES = const(0x40)
_MT_TEXT = const(0x60)
_MT_ARRAY = const(0x80)
_MT_MAP = const(0xA0)
_MT_TAG = const(0xC0)

_FALSE = const(0xF4)
_TRUE = const(0xF5)
_NULL = const(0xF6)

MAX_DEPTH = const(16)
MAX_LEN = const(65536)

_U64_LIMIT = 1 << 64


class CborError(EdgeError):
    """Every CBOR failure; `kind` says which (one class keeps the module small in RAM).

    Kinds: cbor_truncated, cbor_malformed, cbor_trailing, cbor_too_deep, cbor_too_long,
    cbor_indefinite, cbor_non_minimal, cbor_unsorted_keys, cbor_duplicate_key,
    cbor_unsupported, cbor_buffer_full.
    """

    kind = "cbor"

    def __init__(self, kind, message, detail=None):
        super().__init__(message, detail)
        self.kind = kind


# ---------------------------------------------------------------- encoding


def head_size(n):
    """Bytes taken by a head carrying argument n (0 <= n < 2**64)."""
    if n < 24:
        return 1
    if n < 0x100:
        return 2
    if n < 0x10000:
        return 3
    if n < 0x100000000:
        return 5
    return 9


def int_size(v):
    """Encoded size of an integer that fits major type 0/1 (|v| < 2**64)."""
    if v < 0:
        return head_size(-1 - v)
    return head_size(v)


def write_head(buf, off, mt, n):
    """Write a shortest head (major type bits `mt`, argument n) at off; return the new offset.

    Allocation-free for n inside the small-int range: the frame hot path is built on it.
    """
    if n < 24:
        if off >= len(buf):
            raise CborError("cbor_buffer_full", "buffer full")
        buf[off] = mt | n
        return off + 1
    if n < 0x100:
        if off + 2 > len(buf):
            raise CborError("cbor_buffer_full", "buffer full")
        buf[off] = mt | 24
        buf[off + 1] = n
        return off + 2
    if n < 0x10000:
        if off + 3 > len(buf):
            raise CborError("cbor_buffer_full", "buffer full")
        buf[off] = mt | 25
        buf[off + 1] = n >> 8
        buf[off + 2] = n & 0xFF
        return off + 3
    if n < 0x100000000:
        if off + 5 > len(buf):
            raise CborError("cbor_buffer_full", "buffer full")
        buf[off] = mt | 26
        buf[off + 1] = (n >> 24) & 0xFF
        buf[off + 2] = (n >> 16) & 0xFF
        buf[off + 3] = (n >> 8) & 0xFF
        buf[off + 4] = n & 0xFF
        return off + 5
    if off + 9 > len(buf):
        raise CborError("cbor_buffer_full", "buffer full")
    buf[off] = mt | 27
    i = 8
    while i > 0:
        buf[off + i] = n & 0xFF
        n >>= 8
        i -= 1
    return off + 9


def write_int(buf, off, v):
    """Write an integer with |v| < 2**64 (major type 0 or 1)."""
    if v < 0:
        return write_head(buf, off, _MT_NINT, -1 - v)
    return write_head(buf, off, _MT_UINT, v)


def _write_raw(buf, off, data):
    n = len(data)
    if off + n > len(buf):
        raise CborError("cbor_buffer_full", "buffer full")
    for i in range(n):
        buf[off + i] = data[i]
    return off + n


def _bignum_bytes(n):
    """Big-endian magnitude bytes without leading zeros (n >= 2**64)."""
    size = 0
    m = n
    while m:
        m >>= 8
        size += 1
    return n.to_bytes(size, "big")


def _sorted_items(obj):
    items = []
    for k in obj:
        _check_key(k)
        items.append((dumps(k), obj[k]))
    items.sort(key=_first)
    return items


def _check_key(k):
    t = type(k)
    if not (t is int or t is str or t is bytes or k is None or k is True or k is False):
        raise CborError("cbor_unsupported", "map key of type %s" % t.__name__)


def _first(p):
    return p[0]


def encoded_size(obj, depth=0):
    """Exact size of dumps(obj), without encoding it."""
    if depth > MAX_DEPTH:
        raise CborError("cbor_too_deep", "nesting deeper than %d" % MAX_DEPTH)
    t = type(obj)
    if obj is None or obj is True or obj is False:
        return 1
    if t is int:
        if -_U64_LIMIT <= obj < _U64_LIMIT:
            return int_size(obj)
        n = len(_bignum_bytes(obj if obj >= 0 else -1 - obj))
        return 1 + head_size(n) + n
    if t is bytes or t is bytearray:
        return head_size(len(obj)) + len(obj)
    if t is str:
        n = len(obj.encode("utf-8"))
        return head_size(n) + n
    if t is list or t is tuple:
        s = head_size(len(obj))
        for x in obj:
            s += encoded_size(x, depth + 1)
        return s
    if t is dict:
        s = head_size(len(obj))
        for k in obj:
            _check_key(k)
            s += encoded_size(k, depth + 1) + encoded_size(obj[k], depth + 1)
        return s
    raise CborError("cbor_unsupported", "cannot encode type %s" % t.__name__)


def encode_into(buf, off, obj, depth=0):
    """Encode obj into the bytearray buf at off (deterministic); return the new offset.

    Raises CborError kind cbor_buffer_full when buf is too small (nothing beyond len(buf) is touched).
    """
    if depth > MAX_DEPTH:
        raise CborError("cbor_too_deep", "nesting deeper than %d" % MAX_DEPTH)
    t = type(obj)
    if obj is None:
        return _write_raw1(buf, off, _NULL)
    if obj is True:
        return _write_raw1(buf, off, _TRUE)
    if obj is False:
        return _write_raw1(buf, off, _FALSE)
    if t is int:
        if -_U64_LIMIT <= obj < _U64_LIMIT:
            return write_int(buf, off, obj)
        if obj >= 0:
            off = write_head(buf, off, _MT_TAG, 2)
            mag = _bignum_bytes(obj)
        else:
            off = write_head(buf, off, _MT_TAG, 3)
            mag = _bignum_bytes(-1 - obj)
        off = write_head(buf, off, _MT_BYTES, len(mag))
        return _write_raw(buf, off, mag)
    if t is bytes or t is bytearray:
        off = write_head(buf, off, _MT_BYTES, len(obj))
        return _write_raw(buf, off, obj)
    if t is str:
        data = obj.encode("utf-8")
        off = write_head(buf, off, _MT_TEXT, len(data))
        return _write_raw(buf, off, data)
    if t is list or t is tuple:
        off = write_head(buf, off, _MT_ARRAY, len(obj))
        for x in obj:
            off = encode_into(buf, off, x, depth + 1)
        return off
    if t is dict:
        off = write_head(buf, off, _MT_MAP, len(obj))
        for kb, v in _sorted_items(obj):
            off = _write_raw(buf, off, kb)
            off = encode_into(buf, off, v, depth + 1)
        return off
    raise CborError("cbor_unsupported", "cannot encode type %s" % t.__name__)


def _write_raw1(buf, off, b):
    if off >= len(buf):
        raise CborError("cbor_buffer_full", "buffer full")
    buf[off] = b
    return off + 1


def dumps(obj):
    """Deterministic CBOR encoding of obj as bytes."""
    buf = bytearray(encoded_size(obj))
    encode_into(buf, 0, obj)
    return bytes(buf)


# ---------------------------------------------------------------- decoding


def _read_head(d, off, end, strict):
    """(major type 0..7, additional info, argument, next offset); argument None for ai 31."""
    if off >= end:
        raise CborError("cbor_truncated", "need a head at offset %d" % off)
    b = d[off]
    mt = b >> 5
    ai = b & 31
    off += 1
    if ai < 24:
        return mt, ai, ai, off
    if ai == 24:
        if off + 1 > end:
            raise CborError("cbor_truncated", "head argument cut at offset %d" % off)
        n = d[off]
        if strict and n < 24 and mt != 7:
            raise CborError("cbor_non_minimal", "non-shortest head at offset %d" % (off - 1))
        return mt, ai, n, off + 1
    if ai == 25 or ai == 26 or ai == 27:
        size = 2 if ai == 25 else (4 if ai == 26 else 8)
        if off + size > end:
            raise CborError("cbor_truncated", "head argument cut at offset %d" % off)
        n = 0
        for i in range(size):
            n = (n << 8) | d[off + i]
        if strict and mt != 7 and n < (1 << (4 * size)):
            raise CborError("cbor_non_minimal", "non-shortest head at offset %d" % (off - 1))
        return mt, ai, n, off + size
    if ai == 31:
        if mt in (2, 3, 4, 5):
            raise CborError("cbor_indefinite", "indefinite length at offset %d" % (off - 1))
        if mt == 7:
            raise CborError("cbor_malformed", "unexpected break at offset %d" % (off - 1))
        raise CborError("cbor_malformed", "indefinite head for major type %d at offset %d" % (mt, off - 1))
    raise CborError("cbor_malformed", "reserved additional info %d at offset %d" % (ai, off - 1))


def _item(d, off, end, lim, depth):
    # lim = [max_depth, max_len, strict]
    if depth > lim[0]:
        raise CborError("cbor_too_deep", "nesting deeper than %d" % lim[0])
    start = off
    mt, ai, n, off = _read_head(d, off, end, lim[2])
    if mt == 0:
        return n, off
    if mt == 1:
        return -1 - n, off
    if mt == 2 or mt == 3:
        if n > lim[1]:
            raise CborError("cbor_too_long", "string of %d bytes over limit %d" % (n, lim[1]))
        if off + n > end:
            raise CborError("cbor_truncated", "string of %d bytes runs past the input" % n)
        raw = bytes(d[off:off + n])
        if mt == 2:
            return raw, off + n
        try:
            return str(raw, "utf-8"), off + n
        except UnicodeError:
            raise CborError("cbor_malformed", "invalid UTF-8 text at offset %d" % start)
    if mt == 4:
        if n > lim[1]:
            raise CborError("cbor_too_long", "array of %d items over limit %d" % (n, lim[1]))
        if off + n > end:  # every item takes at least one byte
            raise CborError("cbor_truncated", "array of %d items runs past the input" % n)
        out = []
        for _ in range(n):
            x, off = _item(d, off, end, lim, depth + 1)
            out.append(x)
        return out, off
    if mt == 5:
        if n > lim[1]:
            raise CborError("cbor_too_long", "map of %d pairs over limit %d" % (n, lim[1]))
        if off + 2 * n > end:
            raise CborError("cbor_truncated", "map of %d pairs runs past the input" % n)
        out = {}
        prev_start = -1
        prev_end = -1
        for _ in range(n):
            kstart = off
            k, off = _item(d, off, end, lim, depth + 1)
            kend = off
            _check_key(k)
            if k in out:
                raise CborError("cbor_duplicate_key", "duplicate map key at offset %d" % kstart)
            if lim[2] and prev_start >= 0:
                if bytes(d[kstart:kend]) <= bytes(d[prev_start:prev_end]):
                    raise CborError("cbor_unsorted_keys", "map keys not in bytewise order at offset %d" % kstart)
            prev_start = kstart
            prev_end = kend
            v, off = _item(d, off, end, lim, depth + 1)
            out[k] = v
        return out, off
    if mt == 6:
        if n != 2 and n != 3:
            raise CborError("cbor_unsupported", "tag %d at offset %d" % (n, start))
        bstart = off
        mt2, ai2, m, off = _read_head(d, off, end, lim[2])
        if mt2 != 2:
            raise CborError("cbor_malformed", "bignum tag without a byte string at offset %d" % bstart)
        if m > lim[1]:
            raise CborError("cbor_too_long", "bignum of %d bytes over limit %d" % (m, lim[1]))
        if off + m > end:
            raise CborError("cbor_truncated", "bignum runs past the input")
        mag = 0
        for i in range(m):
            mag = (mag << 8) | d[off + i]
        if lim[2] and (mag < _U64_LIMIT or d[off] == 0):
            raise CborError("cbor_non_minimal", "bignum not in preferred form at offset %d" % start)
        return (mag if n == 2 else -1 - mag), off + m
    # mt == 7
    if ai == 20:
        return False, off
    if ai == 21:
        return True, off
    if ai == 22:
        return None, off
    raise CborError("cbor_unsupported", "simple value or float (0x%02x) at offset %d" % (d[start], start))


def loads_prefix(data, off=0, max_depth=MAX_DEPTH, max_len=MAX_LEN, strict=True):
    """Decode one item starting at off; return (obj, end offset). Trailing bytes allowed."""
    t = type(data)
    if t is not bytes and t is not bytearray and t is not memoryview:
        raise CborError("cbor_malformed", "input must be bytes, not %s" % t.__name__)
    if type(off) is not int or off < 0:
        raise CborError("cbor_malformed", "bad offset")
    lim = (max_depth, max_len, strict)
    return _item(data, off, len(data), lim, 0)


def loads(data, max_depth=MAX_DEPTH, max_len=MAX_LEN, strict=True):
    """Decode exactly one item that spans all of data."""
    obj, end = loads_prefix(data, 0, max_depth, max_len, strict)
    if end != len(data):
        raise CborError("cbor_trailing", "%d trailing bytes after the item" % (len(data) - end))
    return obj
