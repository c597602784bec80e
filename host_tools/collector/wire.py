"""Frame schema v1 on the head-end: parse with cbor2, verify with Python's hmac.

An independent implementation of docs/frames.md (edge/frame.py is the device's): it shares
no code with edge/cbor.py or edge/mac.py, so a bug in one shows up as a disagreement in
tests/host/test_collector_wire.py, which runs both over the same bytes.

Strictness without a second CBOR decoder: cbor2 decodes leniently (and ignores trailing
bytes), so the body is re-encoded with cbor2.dumps and must reproduce the received bytes
exactly, with map keys in ascending order. (The one exception is the steady-state frame,
one fixed layout of eight unsigned ints, which _parse_short reads from its bytes with the
same strictness at half the cost; it is tested against the general path.) Core deterministic encoding is the unique shortest
encoding of a value once key order is fixed: every non-shortest head, indefinite length, tag,
duplicate key or stray byte changes the re-encoding, so the comparison enforces RFC 8949
section 4.2.1 and also yields the body length (where the MAC tag begins).

Bounded work on hostile bytes: the input is at most MAX_FRAME bytes and cbor2 decodes it with
every tag refused (no bignums, shared references (28/29), regular expressions (35), dates...:
each would cost work out of proportion to its bytes), definite lengths only, no duplicate
keys and at most MAX_DEPTH levels of nesting, so decoding and re-encoding are linear in the
datagram's length. No message formats a received value with %r (a 1,790-byte bignum has more
digits than Python's int-to-str limit); any exception from parsing is a rejection.
"""
import hashlib
import hmac
import re
import struct
from itertools import accumulate

import cbor2

VERSION = 1
K_VERSION = 0
K_HEADER = 1
K_RECORDS = 2
K_ACK_UPTO = 3
K_ACK_SEQS = 4
K_SEAL = 5  # a daily seal (docs/seals.md): {1: header, 5: seal bytes}
K_ACK_TIME = 6  # ack only: the collector's [edge seconds, ms], for frames that ask for it
K_ACK_REFUSED = 7  # ack only: seqs verified but refused (slot in the future), with K_ACK_TIME
ST_TIME_REQUEST = 16  # frame status bit: "put your time in my ack" (edge/clock_sync.py)

ALG_HMAC_SHA256_64 = 1
ALG_HMAC_SHA256_128 = 2
TAG_LEN = {ALG_HMAC_SHA256_64: 8, ALG_HMAC_SHA256_128: 16}

MAX_FRAME = 2048  # same limit as the device decoder; longer datagrams are not parsed
MIN_FRAME = 16  # below any valid frame: map head, header, one record, 8-byte tag
MIN_KEY_LEN = 16
_BLOCK = 64  # SHA-256 block size, HMAC's key pad length
U16 = 0xFFFF
U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF
_INT_ONLY = {int}

# Rejection reasons decided here (stable strings: counted, logged, documented).
R_OVERSIZED = "oversized"
R_TOO_SHORT = "too_short"
R_MALFORMED_CBOR = "malformed_cbor"
R_BAD_SCHEMA = "bad_schema"
R_NON_CANONICAL = "non_canonical"
R_BAD_TAG_LENGTH = "bad_tag_length"
R_UNSUPPORTED_VERSION = "unsupported_version"
R_UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
R_BAD_MAC = "bad_mac"

# Nesting levels a frame or an ack needs: body map -> header or record array.
MAX_DEPTH = 2


class _TagRefused(Exception):
    pass


def _refuse_tag(decoder, tag=None):
    raise _TagRefused("tags are not part of the frame schema")


# cbor2 6.3.0's built-in semantic tags, found by decoding each tag number 0..69,999 (and
# tests/host/test_collector_hostile.py checks every one of those again): each is replaced by
# a refusal that runs before the tag's content is read; tag_hook refuses all other tags.
_BUILTIN_TAGS = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261,
                 1004, 43000, 55799)
_STRICT = {"semantic_decoders": {t: _refuse_tag for t in _BUILTIN_TAGS},
           "tag_hook": _refuse_tag, "max_depth": MAX_DEPTH, "allow_indefinite": False,
           "allow_duplicate_keys": False}


def strict_loads(data):
    """cbor2.loads with every tag refused, definite lengths, unique keys, bounded depth."""
    return cbor2.loads(data, **_STRICT)


def _describe(v):
    """A received value for a message, never longer than a 64-bit number."""
    if type(v) is int and -(1 << 64) < v < (1 << 64):
        return "%d" % v
    return "a value of type %s" % type(v).__name__


class WireReject(Exception):
    """A datagram the collector refuses; `reason` is a stable counter name."""

    def __init__(self, reason, detail="", device_id=None, seq=None):
        Exception.__init__(self, "%s: %s" % (reason, detail))
        self.reason = reason
        self.detail = detail
        self.device_id = device_id
        self.seq = seq


class ParsedFrame:
    """Structure of a data frame, not yet authenticated."""

    __slots__ = ("kid", "alg", "key_no", "device_id", "seq", "status", "records", "body_len",
                 "seal")

    def __init__(self, kid, device_id, seq, status, records, body_len, seal=None):
        self.kid = kid
        self.alg = kid & 7
        self.key_no = kid >> 3
        self.device_id = device_id
        self.seq = seq
        self.status = status
        self.records = records
        self.body_len = body_len
        self.seal = seal  # the seal bytes of a seal frame (records then empty), else None


def _uint(v, limit):
    return type(v) is int and 0 <= v <= limit


def _decode_body(data):
    """(map, body_len) of a strictly deterministic CBOR map at the start of data."""
    n = len(data)
    if n > MAX_FRAME:
        raise WireReject(R_OVERSIZED, "%d bytes over %d" % (n, MAX_FRAME))
    if n < MIN_FRAME:
        raise WireReject(R_TOO_SHORT, "%d bytes" % n)
    try:
        body = strict_loads(data)
    except Exception as e:  # cbor2 raises several types; none may escape
        raise WireReject(R_MALFORMED_CBOR, type(e).__name__)
    if type(body) is not dict:
        raise WireReject(R_BAD_SCHEMA, "body is not a map")
    try:
        enc = cbor2.dumps(body)
    except Exception as e:  # e.g. a decoded value cbor2 cannot re-encode
        raise WireReject(R_NON_CANONICAL, type(e).__name__)
    m = len(enc)
    if data[:m] != enc:
        raise WireReject(R_NON_CANONICAL, "re-encoding differs")
    last = -1
    for k in body:
        if type(k) is not int or k <= last:
            raise WireReject(R_NON_CANONICAL, "map keys not ascending integers")
        last = k
    return body, m


def _header(body, allowed, m, n):
    if K_VERSION in body and body[K_VERSION] != VERSION:
        raise WireReject(R_UNSUPPORTED_VERSION, "schema version " + _describe(body[K_VERSION]))
    for k in body:
        if k != K_VERSION and k not in allowed:
            raise WireReject(R_BAD_SCHEMA, "unknown key " + _describe(k))
    hdr = body.get(K_HEADER)
    if type(hdr) is not list or not hdr or not _uint(hdr[0], U16):
        raise WireReject(R_BAD_SCHEMA, "missing or bad header")
    kid = hdr[0]
    tlen = TAG_LEN.get(kid & 7)
    if tlen is None:
        raise WireReject(R_UNSUPPORTED_ALGORITHM, "algorithm %d" % (kid & 7))
    if n - m != tlen:
        raise WireReject(R_BAD_TAG_LENGTH, "tag of %d bytes, need %d" % (n - m, tlen))
    return hdr, kid


# The steady-state frame as one regular expression over its bytes (compiled to C by `re`):
# the fixed bytes, and each integer as its shortest-form CBOR head only. A 0x18 head must
# carry >= 24, a 0x19 head a non-zero high byte (>= 256), a 0x1a head not two zero high bytes
# (>= 2**16), a 0x1b head not four (>= 2**32). Fields limited to 16 or 32 bits simply lack
# the wider heads. re.S: '.' must match every byte, 0x0a included.
_U16 = rb"([\x00-\x17]|\x18[\x18-\xff]|\x19[\x01-\xff].)"
_U32 = rb"([\x00-\x17]|\x18[\x18-\xff]|\x19[\x01-\xff].|\x1a(?!\x00\x00)....)"
_U64 = rb"([\x00-\x17]|\x18[\x18-\xff]|\x19[\x01-\xff].|\x1a(?!\x00\x00)....|\x1b(?!\x00{4}).{8})"
_SHORT = re.compile(b"\xa2\x01\x84" + _U16 + _U64 + _U64 + _U16  # {1: [kid, dev, seq, status],
                    + b"\x02\x84" + _U32 + _U32 + _U32 + _U16, re.S)  # 2: [slot, imp, exp, flags]}
_FIELD = {1: "B", 2: "xB", 3: "xH", 5: "xI", 9: "xQ"}  # group length -> struct code (head skipped)
_layouts = {}  # match.regs -> struct.Struct reading the eight integers at once
_MAX_LAYOUTS = 4096


def _layout(regs):
    """The struct for one combination of head widths (at most 43,200 exist; cached)."""
    fmt = ">3x"
    for k in range(1, 9):
        if k == 5:
            fmt += "2x"
        fmt += _FIELD[regs[k][1] - regs[k][0]]
    st = struct.Struct(fmt)
    if len(_layouts) < _MAX_LAYOUTS:
        _layouts[regs] = st
    return st


short_match = _SHORT.match  # for the collector's fast path (ingest.py)
# The front of a frame as the canonical encoder writes it, the optional version key included:
# map head, [key 0: 1,] key 1, array(4) head, kid, device id (the same heads as _SHORT).
_FRONT = re.compile(b"(?:\xa2|\xa3\x00\x01)\x01\x84" + _U16 + _U64, re.S)


def peek_device_id(data):
    """The device id of a frame read from its first bytes without decoding anything else,
    or None if they are not laid out as an acceptable frame's are. Every frame the collector
    can accept starts this way (deterministic encoding), so the id is the one parse_frame
    reads; the server routes datagrams to workers by it (hostile CBOR costs nothing here)."""
    m = _FRONT.match(data)
    if m is None:
        return None
    g = m.group(2)
    return g[0] if len(g) == 1 else int.from_bytes(g[1:], "big")



def layouts(regs):
    """The struct reading the eight integers of a _SHORT match with these group spans."""
    return _layouts.get(regs) or _layout(regs)


def _parse_short(data):
    """The steady-state frame (one record, no version key) read straight from its bytes,
    or None. It accepts exactly the deterministic encoding of {1: [4 uints], 2: [4 uints]}
    within the fields' ranges, followed by a tag of the right length (_SHORT). None means
    "not this layout", not "invalid": the general path then decides and names the reason."""
    m = _SHORT.match(data)  # with the tag-length check below: at most 63 bytes in all
    if m is None:
        return None
    regs = m.regs
    kid, dev, seq, status, slot, imp, exp, flags = layouts(regs).unpack_from(data)
    i = regs[0][1]
    if TAG_LEN.get(kid & 7) != len(data) - i:
        return None
    return ParsedFrame(kid, dev, seq, status, [(slot, imp, exp, flags)], i)


def parse_frame(data):
    """Parse a data frame's structure (no key needed). Raises WireReject.

    The steady-state frame takes a short path (_parse_short) that accepts exactly what the
    general path accepts for that layout (tests/host/test_collector_wire.py compares them);
    anything else, valid or not, takes the general path, which also names the reason. This
    function is most of the collector's per-frame cost.
    """
    pf = _parse_short(data)
    if pf is not None:
        return pf
    try:
        return _parse_general(data)
    except WireReject:
        raise
    except Exception as e:  # a parser bug must cost one datagram, never its batch
        raise WireReject(R_MALFORMED_CBOR, "parser error " + type(e).__name__)


def _parse_general(data):
    body, m = _decode_body(data)
    hdr, kid = _header(body, (K_HEADER, K_RECORDS, K_SEAL), m, len(data))
    if len(hdr) != 4:
        raise WireReject(R_BAD_SCHEMA, "data header needs 4 fields")
    _, dev, seq, status = hdr
    if not (type(dev) is type(seq) is type(status) is int
            and 0 <= dev <= U64 and 0 <= seq <= U64 and 0 <= status <= U16):
        raise WireReject(R_BAD_SCHEMA, "header field out of range")
    if K_SEAL in body:
        sl = body[K_SEAL]
        if K_RECORDS in body or type(sl) is not bytes or not sl:
            raise WireReject(R_BAD_SCHEMA, "a seal frame carries one byte string, no records",
                             dev, seq)
        return ParsedFrame(kid, dev, seq, status, [], m, sl)
    flat = body.get(K_RECORDS)
    if type(flat) is not list or not flat or len(flat) % 4:
        raise WireReject(R_BAD_SCHEMA, "records must be a non-empty list of 4-tuples", dev, seq)
    if set(map(type, flat)) != _INT_ONLY:
        raise WireReject(R_BAD_SCHEMA, "record field not an integer", dev, seq)
    deltas = flat[0::4]
    imps = flat[1::4]
    exps = flat[2::4]
    flags = flat[3::4]
    if min(flat) < 0 or max(deltas) > U32 or max(imps) > U32 or max(exps) > U32 \
            or max(flags) > U16:
        raise WireReject(R_BAD_SCHEMA, "record field out of range", dev, seq)
    if len(deltas) > 1:
        if min(deltas[1:]) < 1:
            raise WireReject(R_BAD_SCHEMA, "slot delta must be >= 1", dev, seq)
        slots = list(accumulate(deltas))
        if slots[-1] > U32:
            raise WireReject(R_BAD_SCHEMA, "slot beyond 2**32", dev, seq)
    else:
        slots = deltas
    return ParsedFrame(kid, dev, seq, status, list(zip(slots, imps, exps, flags)), m)


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class MacKey:
    """One HMAC-SHA256 key (RFC 2104), kept as the two SHA-256 states after absorbing the
    padded key (key ^ ipad, key ^ opad). A MAC is then two copies, two updates and two
    digests of hashlib.sha256 objects: about 40 % less than copying Python's OpenSSL HMAC
    object (whose copy and digest each duplicate three digest contexts), and the same
    bytes (tests/host/test_collector_wire.py checks them against hmac.new)."""

    __slots__ = ("_inner", "_outer", "_ack")

    def __init__(self, key):
        if len(key) < MIN_KEY_LEN:
            raise ValueError("key shorter than %d bytes" % MIN_KEY_LEN)
        key = bytes(key)
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))
        self._ack = None

    def _finish(self, inner):
        o = self._outer.copy()
        o.update(inner.digest())
        return o.digest()

    def tag(self, body, n):
        h = self._inner.copy()
        h.update(body)
        return self._finish(h)[:n]

    def check(self, data, body_len, n):
        h = self._inner.copy()
        h.update(data[:body_len])
        return hmac.compare_digest(self._finish(h)[:n], data[body_len:])

    def ack_one(self, device_id, kid, seq):
        """encode_ack(self, device_id, kid, [seq]), the collector's steady-state reply.

        {1: [kid, dev], 4: [seq]} is a constant prefix (ack_prefix, array(1)) then the seq: the prefix and the inner
        SHA-256 state after absorbing it are kept (a key belongs to one device), so each ack
        costs one seq encoding and one HMAC finish, not a cbor2.dumps of the whole map
        (figures: docs/collector.md#throughput)."""
        a = self._ack
        if a is None or a[0] != device_id or a[1] != kid:
            prefix = ack_prefix(device_id, kid) + b"\x81"  # an array of one seq
            h = self._inner.copy()
            h.update(prefix)
            a = self._ack = (device_id, kid, prefix, h, TAG_LEN[kid & 7])
        u = _cbor_uint(seq)
        h = a[3].copy()
        h.update(u)
        return a[2] + u + self._finish(h)[: a[4]]


def ack_prefix(device_id, kid):
    """The bytes of the collector's ack {1: [kid, device_id], 4: [seq, ...]} before the array
    of seqs: an ack is this prefix, the array (head and shortest-form seqs, ascending), then
    the MAC of all that. The layout MacKey.ack_one and the C loop (_fastpath.c, given it per
    key by Ingest) follow; encode_ack writes the same bytes (tested)."""
    return b"\xa2\x01" + cbor2.dumps([kid, device_id]) + b"\x04"


def verify(pf, data, mac_key):
    """Raise WireReject(bad_mac) unless the tag matches; mac_key is a MacKey."""
    if not mac_key.check(data, pf.body_len, TAG_LEN[pf.alg]):
        raise WireReject(R_BAD_MAC, "MAC mismatch", pf.device_id, pf.seq)


def encode_ack(mac_key, device_id, kid, seqs=(), upto=None, time=None, refused=()):
    """The acknowledgement, byte-identical to edge.frame.encode_ack (tested); time: the
    collector's (edge seconds, ms), sent only to a frame with status bit ST_TIME_REQUEST;
    refused: such frames verified but not stored (a slot in the future), with the time."""
    if upto is None and not seqs and not refused:
        raise ValueError("an ack needs upto, seqs or refused seqs")
    if refused and time is None:
        raise ValueError("refused seqs go with the time")
    body = {K_HEADER: [kid, device_id]}
    if upto is not None:
        body[K_ACK_UPTO] = upto
    if seqs:
        body[K_ACK_SEQS] = list(seqs)
    if time is not None:
        if not (_uint(time[0], U32) and _uint(time[1], 999)):
            raise ValueError("ack time must be (seconds < 2**32, ms 0..999)")
        body[K_ACK_TIME] = [time[0], time[1]]
    if refused:
        body[K_ACK_REFUSED] = list(refused)
    raw = cbor2.dumps(body)
    return raw + mac_key.tag(raw, TAG_LEN[kid & 7])


def _cbor_uint(v):
    """Shortest CBOR unsigned int (major type 0) for 0 <= v < 2**64."""
    if v < 24:
        return bytes((v,))
    if v < 0x100:
        return bytes((0x18, v))
    if v < 0x10000:
        return b"\x19" + v.to_bytes(2, "big")
    if v < 0x100000000:
        return b"\x1a" + v.to_bytes(4, "big")
    return b"\x1b" + v.to_bytes(8, "big")


def parse_ack(data):
    """(kid, device_id, upto, seqs, body_len) of an ack, structure only (tests, tools)."""
    kid, dev, upto, seqs, _, _, m = parse_ack_time(data)
    return kid, dev, upto, seqs, m


def parse_ack_time(data):
    """(kid, device_id, upto, seqs, time, refused, body_len): time is [s, ms] or None."""
    body, m = _decode_body(data)
    hdr, kid = _header(body, (K_HEADER, K_ACK_UPTO, K_ACK_SEQS, K_ACK_TIME, K_ACK_REFUSED), m,
                       len(data))
    if len(hdr) != 2 or not _uint(hdr[1], U64):
        raise WireReject(R_BAD_SCHEMA, "ack header needs [kid, device_id]")
    upto = body.get(K_ACK_UPTO)
    seqs = body.get(K_ACK_SEQS, [])
    if upto is not None and not _uint(upto, U64):
        raise WireReject(R_BAD_SCHEMA, "ack upto out of range")
    ref = body.get(K_ACK_REFUSED)
    if type(seqs) is not list or (K_ACK_SEQS in body and not seqs) \
            or (upto is None and not seqs and not ref):
        raise WireReject(R_BAD_SCHEMA, "ack needs upto, a non-empty seq list or refused seqs")
    last = -1 if upto is None else upto
    for s in seqs:
        if not _uint(s, U64) or s <= last:
            raise WireReject(R_BAD_SCHEMA, "acked seqs must increase and exceed upto")
        last = s
    tm = body.get(K_ACK_TIME)
    if tm is not None and (type(tm) is not list or len(tm) != 2 or not _uint(tm[0], U32)
                           or not _uint(tm[1], 999)):
        raise WireReject(R_BAD_SCHEMA, "ack time must be [seconds, ms 0..999]")
    if ref is not None:
        if type(ref) is not list or not ref or tm is None \
                or any(not _uint(s, U64) for s in ref) or ref != sorted(set(ref)):
            raise WireReject(R_BAD_SCHEMA, "refused seqs: increasing, non-empty, with the time")
    return kid, hdr[1], upto, seqs, tm, ref or [], m
