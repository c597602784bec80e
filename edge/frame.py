"""Frame schema v1: authenticated 30-minute slot records (device -> collector) and acks.

Wire form (docs/frames.md): one deterministic CBOR map with integer keys, immediately
followed by the raw MAC tag over exactly the map's bytes:

    data frame  {1: [kid, device_id, seq, status],
                 2: [slot0, imp0, exp0, flags0, dslot1, imp1, exp1, flags1, ...]}  || tag
    seal frame  {1: [kid, device_id, seq, status], 5: seal bytes}                  || tag
    ack frame   {1: [kid, device_id], 3: upto, 4: [seq, ...], 6: [s, ms], 7: [seq, ...]} || tag

An ack carries key 6, the collector's time (edge seconds, ms), only when the acknowledged
frame asked for it with status bit ST_TIME_REQUEST, so agents that never ask (older
firmware, which refuses unknown keys) keep getting the acks they know. Key 7 lists seqs of
such frames the collector verified but refused (a slot ending in its future: a clock far
ahead), sent with the time so the clock can be corrected; their slots stay queued.

kid = key_no << 3 | alg; alg 1 = HMAC-SHA256 truncated to 8 bytes. Energy is in Wh per slot;
slot is the absolute slot number of edge/timebase.py (edge seconds // 1800); dslot >= 1 is
the distance to the previous record's slot. A v1 frame has no key 0; a frame carrying key 0
(schema version) other than 1 is rejected as an unsupported version.

The device encodes into a caller-owned bytearray: the CBOR part allocates nothing (proved
under heap_lock in tests/portable/test_frame_alloc.py); the MAC allocates inside hashlib.
"""
from edge.cbor import (
    CborError,
    dumps,
    head_size,
    int_size,
    loads_prefix,
    write_head,
    write_int,
)
from edge.compat import const
from edge.errors import EdgeError
from edge.mac import HmacSha256, equal

VERSION = const(1)

ALG_HMAC_SHA256_64 = const(1)
ALG_HMAC_SHA256_128 = const(2)
# 3 reserved; 4..7 reserved for public-key signatures (e.g. Ed25519, ECDSA P-256).
_TAG_LEN = {ALG_HMAC_SHA256_64: 8, ALG_HMAC_SHA256_128: 16}

K_VERSION = const(0)
K_HEADER = const(1)
K_RECORDS = const(2)
K_ACK_UPTO = const(3)
K_ACK_SEQS = const(4)
K_SEAL = const(5)  # a daily seal (docs/seals.md), carried and acknowledged like a slot
K_ACK_TIME = const(6)  # ack only: [edge seconds, ms] of the collector (edge/clock_sync.py)
K_ACK_REFUSED = const(7)  # ack only: verified frames refused (slots in the future), with 6

# Device status bits (header field `status`): 0 means clock synced, no error.
ST_CLOCK_UNSYNCED = const(1)  # clock not synchronised since boot (同期なし)
ST_METER_ERROR = const(2)  # meter reads failed since the previous frame
ST_QUEUE_OVERFLOW = const(4)  # store-and-forward queue dropped or merged records
ST_STORAGE_ERROR = const(8)  # flash write or read-back failed
ST_TIME_REQUEST = const(16)  # put the collector's time in this frame's ack (key 6)

MIN_KEY_LEN = const(16)
MAX_KEY_NO = const(8191)
MAX_FRAME = const(2048)  # decoder refuses longer input outright

_MT_BYTES = const(0x40)
_MT_ARRAY = const(0x80)
_MT_MAP = const(0xA0)
_U16 = const(0xFFFF)
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


class FrameError(EdgeError):
    """Every frame failure; `kind` is the counted reason.

    Wire input: frame_malformed, frame_unsupported_version, frame_unsupported_algorithm,
    frame_unknown_key, frame_bad_mac. Caller bugs: frame_bad_value (an encoder argument out
    of range), frame_too_large (max_payload or buffer below a one-slot frame).
    """

    kind = "frame"

    def __init__(self, kind, message, detail=None):
        super().__init__(message, detail)
        self.kind = kind


MALFORMED = "frame_malformed"
UNSUPPORTED_VERSION = "frame_unsupported_version"
UNSUPPORTED_ALGORITHM = "frame_unsupported_algorithm"
UNKNOWN_KEY = "frame_unknown_key"
BAD_MAC = "frame_bad_mac"
BAD_VALUE = "frame_bad_value"
TOO_LARGE = "frame_too_large"


def tag_length(alg):
    n = _TAG_LEN.get(alg)
    if n is None:
        raise FrameError(UNSUPPORTED_ALGORITHM, "algorithm %d not supported" % alg)
    return n


def make_kid(key_no, alg=ALG_HMAC_SHA256_64):
    if type(key_no) is not int or not 0 <= key_no <= MAX_KEY_NO:
        raise FrameError(BAD_VALUE, "key_no out of range 0..%d" % MAX_KEY_NO)
    tag_length(alg)
    return (key_no << 3) | alg


def _uint(v, limit, what):
    if type(v) is not int or v < 0 or v > limit:
        raise FrameError(BAD_VALUE, "%s out of range" % what)
    return v


def _length(records):
    try:
        return len(records)
    except TypeError:
        raise FrameError(BAD_VALUE, "records must be a sequence")


def _span(records, start, count):
    """Validate a record range; count None means to the end. Returns count."""
    n = _length(records)
    if type(start) is not int or start < 0 or start > n:
        raise FrameError(BAD_VALUE, "start out of range")
    if count is None:
        count = n - start
    if type(count) is not int or count < 1 or start + count > n:
        raise FrameError(BAD_VALUE, "record range out of bounds")
    return count


def _mac_for(key):
    if isinstance(key, HmacSha256):
        return key
    try:
        n = len(key)
    except TypeError:
        raise FrameError(BAD_VALUE, "key must be bytes")
    if n < MIN_KEY_LEN:
        raise FrameError(BAD_VALUE, "key shorter than %d bytes" % MIN_KEY_LEN)
    return HmacSha256(key)


# ---------------------------------------------------------------- device side


class FrameEncoder:
    """Encodes data frames for one device and key.

    records: a sequence of (slot, import_wh, export_wh, flags) sequences, strictly increasing
    slots. Ranges: slot, Wh < 2**32; flags < 2**16; seq < 2**64; status < 2**16.
    """

    def __init__(self, device_id, key, key_no=0, alg=ALG_HMAC_SHA256_64):
        _uint(device_id, _U64, "device_id")
        self.device_id = device_id
        self.kid = make_kid(key_no, alg)
        self.alg = alg
        self.tag_len = tag_length(alg)
        self._mac = _mac_for(key)
        # Constant prefix: map(2), key 1, array(4), kid, device_id -- encoded once, so a
        # device id beyond the 31-bit small-int range costs no bignum arithmetic per frame.
        pre = bytearray(2 + 1 + head_size(self.kid) + int_size(device_id))
        off = write_head(pre, 0, _MT_MAP, 2)
        off = write_int(pre, off, K_HEADER)
        off = write_head(pre, off, _MT_ARRAY, 4)
        off = write_int(pre, off, self.kid)
        write_int(pre, off, device_id)
        self._prefix = bytes(pre)

    def _record_size(self, r, prev):
        try:
            slot, imp, exp, flags = r[0], r[1], r[2], r[3]
        except (TypeError, IndexError):
            raise FrameError(BAD_VALUE, "a record is (slot, import_wh, export_wh, flags)")
        if not (_is_uint(slot, _U32) and slot > prev):
            raise FrameError(BAD_VALUE, "slots must be increasing and < 2**32")
        if not (_is_uint(imp, _U32) and _is_uint(exp, _U32) and _is_uint(flags, _U16)):
            raise FrameError(BAD_VALUE, "record value out of range")
        d = slot - prev if prev >= 0 else slot
        return int_size(d) + int_size(imp) + int_size(exp) + int_size(flags)

    def _fixed_size(self, seq, status):
        _uint(seq, _U64, "seq")
        _uint(status, _U16, "status")
        return len(self._prefix) + int_size(seq) + int_size(status) + 1 + self.tag_len

    def frame_size(self, seq, records, start=0, count=1, status=0):
        """Exact encoded size of the frame, tag included."""
        count = _span(records, start, count)
        n = self._fixed_size(seq, status) + head_size(4 * count)
        prev = -1
        for i in range(start, start + count):
            r = records[i]
            n += self._record_size(r, prev)
            prev = r[0]
        return n

    def fits(self, max_payload, seq, records, start=0, status=0):
        """How many records from `start` fit one frame of at most max_payload bytes.

        Never 0 while records remain: a payload limit below a one-slot frame raises
        FrameError frame_too_large, so a batch is split into several frames and never truncated.
        """
        if type(max_payload) is not int:
            raise FrameError(BAD_VALUE, "max_payload must be an int")
        if type(start) is int and start == _length(records):
            return 0
        left = _span(records, start, None)
        fixed = self._fixed_size(seq, status)
        body = 0
        prev = -1
        count = 0
        while count < left:
            r = records[start + count]
            body += self._record_size(r, prev)
            prev = r[0]
            if fixed + head_size(4 * (count + 1)) + body > max_payload:
                break
            count += 1
        if count == 0:
            need = self.frame_size(seq, records, start, 1, status)
            raise FrameError(
                TOO_LARGE, "max_payload %d is below a one-slot frame (%d bytes)" % (max_payload, need)
            )
        return count

    def encode_body_into(self, buf, seq, records, start=0, count=1, status=0):
        """Write the CBOR map at buf[0:]; return its length. Allocates nothing."""
        _span(records, start, count)
        if type(buf) is not bytearray and type(buf) is not memoryview:
            raise FrameError(BAD_VALUE, "buf must be a bytearray")
        if type(seq) is not int or seq < 0 or seq > _U64:
            raise FrameError(BAD_VALUE, "seq out of range")
        if type(status) is not int or status < 0 or status > _U16:
            raise FrameError(BAD_VALUE, "status out of range")
        pre = self._prefix
        n = len(pre)
        if n > len(buf):
            raise FrameError(TOO_LARGE, "buffer too small")
        for i in range(n):
            buf[i] = pre[i]
        try:
            off = write_int(buf, n, seq)
            off = write_int(buf, off, status)
            off = write_int(buf, off, K_RECORDS)
            off = write_head(buf, off, _MT_ARRAY, 4 * count)
            prev = -1
            for i in range(start, start + count):
                r = records[i]
                if len(r) != 4:
                    raise FrameError(BAD_VALUE, "a record is (slot, import_wh, export_wh, flags)")
                slot = r[0]
                if type(slot) is not int or slot < 0 or slot > _U32 or slot <= prev:
                    raise FrameError(BAD_VALUE, "slots must be increasing and < 2**32")
                off = write_int(buf, off, slot - prev if prev >= 0 else slot)
                prev = slot
                v = r[1]
                if type(v) is not int or v < 0 or v > _U32:
                    raise FrameError(BAD_VALUE, "import_wh out of range")
                off = write_int(buf, off, v)
                v = r[2]
                if type(v) is not int or v < 0 or v > _U32:
                    raise FrameError(BAD_VALUE, "export_wh out of range")
                off = write_int(buf, off, v)
                v = r[3]
                if type(v) is not int or v < 0 or v > _U16:
                    raise FrameError(BAD_VALUE, "flags out of range")
                off = write_int(buf, off, v)
        except CborError:
            raise FrameError(TOO_LARGE, "buffer too small")
        except TypeError:
            raise FrameError(BAD_VALUE, "a record is (slot, import_wh, export_wh, flags)")
        return off

    def encode_into(self, buf, seq, records, start=0, count=1, status=0):
        """Write body and tag at buf[0:]; return the frame length."""
        n = self.encode_body_into(buf, seq, records, start, count, status)
        if n + self.tag_len > len(buf):
            raise FrameError(TOO_LARGE, "buffer too small")
        return self._mac.tag_into(memoryview(buf)[:n], buf, n, self.tag_len)

    def encode(self, seq, records, start=0, count=None, status=0):
        """A new bytes frame (convenience; the device uses encode_into)."""
        count = _span(records, start, count)
        buf = bytearray(self.frame_size(seq, records, start, count, status))
        n = self.encode_into(buf, seq, records, start, count, status)
        return bytes(buf[:n])


    def encode_seal_into(self, buf, seq, seal, status=0):
        """A seal frame ({1: header, 5: seal bytes} || tag) at buf[0:]; returns its length."""
        if type(buf) is not bytearray:
            raise FrameError(BAD_VALUE, "buf must be a bytearray")
        n = len(seal)
        if n < 1 or n > MAX_FRAME:
            raise FrameError(BAD_VALUE, "seal of %d bytes" % n)
        pre = self._prefix
        try:
            off = len(pre)
            if off > len(buf):
                raise CborError("cbor_buffer_full", "")
            buf[0:off] = pre
            off = write_int(buf, off, _uint(seq, _U64, "seq"))
            off = write_int(buf, off, _uint(status, _U16, "status"))
            off = write_int(buf, off, K_SEAL)
            off = write_head(buf, off, _MT_BYTES, n)
        except CborError:
            raise FrameError(TOO_LARGE, "buffer too small")
        if off + n + self.tag_len > len(buf):
            raise FrameError(TOO_LARGE, "a seal frame of %d bytes does not fit %d"
                             % (off + n + self.tag_len, len(buf)))
        buf[off:off + n] = seal
        return self._mac.tag_into(memoryview(buf)[:off + n], buf, off + n, self.tag_len)

    def seal_frame_size(self, seq, seal_len, status=0):
        return (self._fixed_size(seq, status) + head_size(seal_len) + seal_len)


def plan_frames(encoder, max_payload, first_seq, records, status=0):
    """Split records into frames: list of (seq, start, count), one seq per frame."""
    out = []
    start = 0
    seq = first_seq
    while start < _length(records):
        n = encoder.fits(max_payload, seq, records, start, status)
        out.append((seq, start, n))
        start += n
        seq += 1
    return out


# ---------------------------------------------------------------- decoding (both sides)


class Frame:
    """A verified data frame. records: list of [slot, import_wh, export_wh, flags]; a seal
    frame has no records and its seal bytes in `seal` (None otherwise)."""

    def __init__(self, kid, device_id, seq, status, records, body_len, seal=None):
        self.version = VERSION
        self.kid = kid
        self.alg = kid & 7
        self.key_no = kid >> 3
        self.device_id = device_id
        self.seq = seq
        self.status = status
        self.records = records
        self.body_len = body_len
        self.seal = seal


class Ack:
    """A verified acknowledgement: every seq <= upto (if not None) and every seq in seqs;
    time: the collector's [edge seconds, ms] when it was asked for, else None."""

    def __init__(self, kid, device_id, upto, seqs, time=None, refused=()):
        self.kid = kid
        self.device_id = device_id
        self.upto = upto
        self.seqs = seqs
        self.time = time
        self.refused = refused  # seqs verified but not stored; their slots stay queued

    def covers(self, seq):
        if self.upto is not None and seq <= self.upto:
            return True
        return seq in self.seqs


def _is_uint(v, limit):
    return type(v) is int and 0 <= v <= limit


def _describe(v):
    """A received value for a message: a number of at most 64 bits, else only its type
    (CPython refuses to format ints over 4,300 digits; a bignum key once escaped as that)."""
    if type(v) is int and -_U64 <= v <= _U64:
        return "%d" % v
    return "of type " + type(v).__name__


def _parse(data, allowed, codec):
    """Decode the CBOR body: (map, body_len, header, kid). Structure only, no key."""
    t = type(data)
    if t is not bytes and t is not bytearray and t is not memoryview:
        raise FrameError(MALFORMED, "frame must be bytes")
    n = len(data)
    if n > MAX_FRAME:
        raise FrameError(MALFORMED, "frame of %d bytes over %d" % (n, MAX_FRAME))
    end = -1
    if codec is None:
        try:
            body, end = loads_prefix(data, 0, 3, MAX_FRAME)
        except CborError as e:
            raise FrameError(MALFORMED, "body: " + e.message, e.kind)
    else:
        try:
            body = codec.loads(bytes(data))  # reads the first item; the tag is ignored
        except Exception as e:
            raise FrameError(MALFORMED, "body: %s" % (e,))
    if type(body) is not dict:
        raise FrameError(MALFORMED, "body is not a map")
    if K_VERSION in body:
        v = body[K_VERSION]
        if type(v) is not int or v != VERSION:
            raise FrameError(UNSUPPORTED_VERSION, "schema version " + _describe(v))
    for k in body:
        if k != K_VERSION and k not in allowed:
            raise FrameError(MALFORMED, "unknown key " + _describe(k))
    hdr = body.get(K_HEADER)
    if type(hdr) is not list or not hdr or not _is_uint(hdr[0], _U16):
        raise FrameError(MALFORMED, "missing or bad header")
    kid = hdr[0]
    alg = kid & 7
    tlen = _TAG_LEN.get(alg)
    if tlen is None:
        raise FrameError(UNSUPPORTED_ALGORITHM, "algorithm %d" % alg)
    if end < 0:
        # The reference codec is lenient (trailing bytes, duplicate keys, long heads):
        # accept only if the body is exactly its deterministic encoding.
        end = n - tlen
        try:
            same = end > 0 and codec.dumps(body, canonical=True) == bytes(data[:end])
        except Exception:
            same = False
        if not same:
            raise FrameError(MALFORMED, "body is not deterministic CBOR followed by the tag")
    if n - end != tlen:
        raise FrameError(MALFORMED, "tag of %d bytes, algorithm %d needs %d" % (n - end, alg, tlen))
    return body, end, hdr, kid


def _verify(data, end, device_id, kid, key_lookup):
    key = key_lookup(device_id, kid)
    if key is None:
        raise FrameError(UNKNOWN_KEY, "no key %d for device %d" % (kid, device_id))
    mac = _mac_for(key)
    tlen = _TAG_LEN[kid & 7]
    mv = memoryview(data)
    if not equal(mac.digest(mv[:end])[:tlen], mv[end:]):
        raise FrameError(BAD_MAC, "MAC mismatch for device %d" % device_id)


def _parse_or_malformed(data, allowed, codec):
    """_parse, raising FrameError and nothing else whatever the bytes: the agent loop
    catches EdgeError around decode_ack, so by construction no datagram can escape it."""
    try:
        return _parse(data, allowed, codec)
    except FrameError:
        raise
    except Exception as e:  # a decoder bug or MemoryError: one datagram, counted
        raise FrameError(MALFORMED, "body not decodable", type(e).__name__)


def decode_frame(data, key_lookup, codec=None):
    """Parse and verify a data frame; return a Frame or raise FrameError (kind = reason).

    key_lookup(device_id, kid) returns the key (bytes or an HmacSha256) or None.
    codec: optionally the cbor2 module (CPython collector): several times faster, and as
    strict, because the body must equal its canonical re-encoding.
    """
    body, end, hdr, kid = _parse_or_malformed(data, (K_HEADER, K_RECORDS, K_SEAL), codec)
    if len(hdr) != 4:
        raise FrameError(MALFORMED, "data header needs 4 fields")
    dev, seq, status = hdr[1], hdr[2], hdr[3]
    if not (_is_uint(dev, _U64) and _is_uint(seq, _U64) and _is_uint(status, _U16)):
        raise FrameError(MALFORMED, "header field out of range")
    if K_SEAL in body:
        sl = body[K_SEAL]
        if K_RECORDS in body or type(sl) is not bytes or not sl:
            raise FrameError(MALFORMED, "a seal frame carries one non-empty byte string, no records")
        _verify(data, end, dev, kid, key_lookup)
        return Frame(kid, dev, seq, status, [], end, sl)
    flat = body.get(K_RECORDS)
    if type(flat) is not list or not flat or len(flat) % 4:
        raise FrameError(MALFORMED, "records must be a non-empty list of 4-tuples")
    records = []
    slot = -1
    for i in range(0, len(flat), 4):
        d, imp, exp, flags = flat[i], flat[i + 1], flat[i + 2], flat[i + 3]
        if not (_is_uint(d, _U32) and _is_uint(imp, _U32) and _is_uint(exp, _U32)):
            raise FrameError(MALFORMED, "record %d out of range" % (i // 4))
        if not _is_uint(flags, _U16):
            raise FrameError(MALFORMED, "record %d flags out of range" % (i // 4))
        if slot >= 0:
            if d < 1:
                raise FrameError(MALFORMED, "record %d: slot delta must be >= 1" % (i // 4))
            slot += d
            if slot > _U32:
                raise FrameError(MALFORMED, "record %d: slot beyond 2**32" % (i // 4))
        else:
            slot = d
        records.append([slot, imp, exp, flags])
    _verify(data, end, dev, kid, key_lookup)
    return Frame(kid, dev, seq, status, records, end)


def encode_ack(key, device_id, kid, upto=None, seqs=(), time=None, refused=()):
    """The collector's acknowledgement, MAC'd with the device's key `kid`; time: the
    collector's (edge seconds, ms) for an agent that asked for it (ST_TIME_REQUEST);
    refused: seqs of such frames it verified but did not store (sent with time only)."""
    if upto is None and not seqs and not refused:
        raise FrameError(BAD_VALUE, "an ack needs upto, seqs or refused seqs")
    if refused and time is None:
        raise FrameError(BAD_VALUE, "refused seqs go with the time")
    _uint(device_id, _U64, "device_id")
    _uint(kid, _U16, "kid")
    tlen = tag_length(kid & 7)
    body = {K_HEADER: [kid, device_id]}
    if upto is not None:
        body[K_ACK_UPTO] = _uint(upto, _U64, "upto")
    if seqs:
        last = -1 if upto is None else upto
        for s in seqs:
            if _uint(s, _U64, "seq") <= last:
                raise FrameError(BAD_VALUE, "acked seqs must increase and exceed upto")
            last = s
        body[K_ACK_SEQS] = list(seqs)
    if time is not None:
        body[K_ACK_TIME] = [_uint(time[0], _U32, "time seconds"), _uint(time[1], 999, "time ms")]
    if refused:
        last = -1
        for s in refused:
            if _uint(s, _U64, "seq") <= last:
                raise FrameError(BAD_VALUE, "refused seqs must increase")
            last = s
        body[K_ACK_REFUSED] = list(refused)
    raw = dumps(body)
    out = bytearray(len(raw) + tlen)
    for i in range(len(raw)):
        out[i] = raw[i]
    _mac_for(key).tag_into(raw, out, len(raw), tlen)
    return bytes(out)


def _increasing(seqs, last, what):
    """Refuse a received seq list unless its seqs are u64, strictly increasing, > last."""
    for s in seqs:
        if not _is_uint(s, _U64) or s <= last:
            raise FrameError(MALFORMED, what)
        last = s


def decode_ack(data, key_lookup, codec=None):
    """Parse and verify an ack; return an Ack or raise FrameError (codec as decode_frame)."""
    body, end, hdr, kid = _parse_or_malformed(
        data, (K_HEADER, K_ACK_UPTO, K_ACK_SEQS, K_ACK_TIME, K_ACK_REFUSED), codec)
    if len(hdr) != 2 or not _is_uint(hdr[1], _U64):
        raise FrameError(MALFORMED, "ack header needs [kid, device_id]")
    dev = hdr[1]
    upto = body.get(K_ACK_UPTO)
    seqs = body.get(K_ACK_SEQS, [])
    if upto is not None and not _is_uint(upto, _U64):
        raise FrameError(MALFORMED, "ack upto out of range")
    ref = body.get(K_ACK_REFUSED, [])
    if type(seqs) is not list or type(ref) is not list or (upto is None and not seqs and not ref):
        raise FrameError(MALFORMED, "ack needs upto, a non-empty seq list or refused seqs")
    _increasing(seqs, -1 if upto is None else upto, "acked seqs must increase and exceed upto")
    if K_ACK_SEQS in body and not seqs:
        raise FrameError(MALFORMED, "empty acked seq list")
    tm = body.get(K_ACK_TIME)
    if tm is not None and (type(tm) is not list or len(tm) != 2 or not _is_uint(tm[0], _U32)
                           or not _is_uint(tm[1], 999)):
        raise FrameError(MALFORMED, "ack time must be [seconds, ms 0..999]")
    if K_ACK_REFUSED in body:
        _increasing(ref, -1, "refused seqs must increase")
        if not ref or tm is None:
            raise FrameError(MALFORMED, "refused seqs must be non-empty and go with the time")
    _verify(data, end, dev, kid, key_lookup)
    return Ack(kid, dev, upto, seqs, tm, ref)
