"""Daily seals (日次封印): a device's signature over one JST day of its 30-minute values.

A seal is a deterministic CBOR map (the body) followed by the raw 64-byte signature over
exactly those bytes, like a frame is followed by its MAC (docs/seals.md):

    {0: 1, 1: device_id, 2: yyyymmdd, 3: key_no, 4: alg, 5: first, 6: count,
     7: digest, 8: fingerprints} || signature

`digest` is SHA-256 over the canonical entries of slots first .. first+count-1 of the day
(slot 1 = 00:00-00:30 JST), 12 bytes each, in slot order:

    present u8 (1, or 0 for a slot the device has no value for) | slot of day u8 |
    import Wh u32 | export Wh u32 | flags u16          (big-endian; zeros when absent)

`fingerprints` holds the first 4 bytes of SHA-256 of each entry, so a verifier can name the
slot that differs; the digest, covered by the signature, is what proves integrity.

The signature is checked by anyone holding the device's public key (the transparency tool
`smeter seal verify`); no secret of the collector is involved.
"""
import hashlib

from edge import cbor, p256, slots
from edge.compat import const
from edge.errors import EdgeError

VERSION = const(1)
ALG_ES256 = const(1)  # ECDSA P-256, SHA-256, RFC 6979 nonces, signature r || s
ALG_ED25519 = const(2)  # reserved: the id space stays open, nothing implements it yet
ALG_NAMES = {ALG_ES256: "ES256", ALG_ED25519: "Ed25519"}
SIG_LEN = {ALG_ES256: 64}

SLOTS_PER_DAY = const(48)
ENTRY_LEN = const(12)
FP_LEN = const(4)
MAX_SEAL = const(512)  # a full-day seal is about 330 bytes

K_VERSION = const(0)
K_DEVICE = const(1)
K_DAY = const(2)
K_KEY_NO = const(3)
K_ALG = const(4)
K_FIRST = const(5)
K_COUNT = const(6)
K_DIGEST = const(7)
K_FPS = const(8)
_KEYS = (K_VERSION, K_DEVICE, K_DAY, K_KEY_NO, K_ALG, K_FIRST, K_COUNT, K_DIGEST, K_FPS)
FIELD_NAMES = ("version", "device_id", "day", "key_no", "alg", "first", "count", "digest",
               "fingerprints")

# Per-slot verdicts of check().
OK = "ok"
CHANGED = "changed"  # present in both, values or flags differ
MISSING = "missing"  # the seal covers a value the data lacks
EXTRA = "extra"  # the data holds a value the device sealed as absent
UNVERIFIED = "unverified"  # the seal itself does not verify: nothing can be said per slot


class SealError(EdgeError):
    """A malformed seal or a bad argument; `kind` is seal_malformed or seal_bad_value."""

    kind = "seal"

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------- canonical entries


def entry_into(buf, off, slot_of_day, imp, exp, flags):
    """Write one present slot's 12-byte entry at off; returns off + 12."""
    if not (1 <= slot_of_day <= SLOTS_PER_DAY and 0 <= imp <= 0xFFFFFFFF
            and 0 <= exp <= 0xFFFFFFFF and 0 <= flags <= 0xFFFF):
        raise SealError("seal_bad_value", "slot %r value out of range" % (slot_of_day,))
    buf[off] = 1
    buf[off + 1] = slot_of_day
    for i in range(4):
        buf[off + 5 - i] = (imp >> (8 * i)) & 0xFF
        buf[off + 9 - i] = (exp >> (8 * i)) & 0xFF
    buf[off + 10] = flags >> 8
    buf[off + 11] = flags & 0xFF
    return off + ENTRY_LEN


def absent_into(buf, off, slot_of_day):
    """Write the entry of a slot the device holds no value for."""
    buf[off] = 0
    buf[off + 1] = slot_of_day
    for i in range(2, ENTRY_LEN):
        buf[off + i] = 0
    return off + ENTRY_LEN


def entries(first, count, values):
    """Canonical entries of slots first..first+count-1; values maps slot of day ->
    (import_wh, export_wh, flags) for the slots that have a value."""
    _check_range(first, count)
    buf = bytearray(count * ENTRY_LEN)
    for i in range(count):
        s = first + i
        v = values.get(s)
        if v is None:
            absent_into(buf, i * ENTRY_LEN, s)
        else:
            entry_into(buf, i * ENTRY_LEN, s, v[0], v[1], v[2])
    return buf


def digest_of(entry_bytes):
    return hashlib.sha256(entry_bytes).digest()


def fingerprint(entry):
    return hashlib.sha256(entry).digest()[:FP_LEN]


def fingerprints_of(entry_bytes):
    n = len(entry_bytes) // ENTRY_LEN
    out = bytearray(n * FP_LEN)
    mv = memoryview(entry_bytes)
    for i in range(n):
        fp = fingerprint(mv[i * ENTRY_LEN:(i + 1) * ENTRY_LEN])
        for j in range(FP_LEN):
            out[i * FP_LEN + j] = fp[j]
    return bytes(out)


def _check_range(first, count):
    if not (type(first) is int and type(count) is int and 1 <= first <= SLOTS_PER_DAY
            and 1 <= count <= SLOTS_PER_DAY - first + 1):
        raise SealError("seal_bad_value", "slot range %r+%r outside 1..48" % (first, count))


def day_code(day_no):
    """JST day number since 2020-01-01 (edge/slots.py) -> yyyymmdd as the seal carries it."""
    y, m, d = slots.ymd(day_no)
    return y * 10000 + m * 100 + d


def day_number(code):
    """yyyymmdd -> JST day number since 2020-01-01."""
    return slots.day_from_ymd(code // 10000, code // 100 % 100, code % 100)


def _check_day(day):
    if type(day) is not int:
        return False
    y, m, d = day // 10000, day // 100 % 100, day % 100
    if not (2000 <= y <= 2199 and 1 <= m <= 12 and 1 <= d):
        return False
    dim = (31, 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28, 31, 30, 31,
           30, 31, 31, 30, 31, 30, 31)
    return d <= dim[m - 1]


# ---------------------------------------------------------------- body and parsing


def body(device_id, day, key_no, alg, first, count, digest, fps):
    """The seal body's deterministic CBOR bytes (what the signature covers)."""
    if not _check_day(day):
        raise SealError("seal_bad_value", "day %r is not a yyyymmdd date" % (day,))
    _check_range(first, count)
    if len(digest) != 32 or len(fps) != count * FP_LEN:
        raise SealError("seal_bad_value", "digest or fingerprints of the wrong length")
    return cbor.dumps({K_VERSION: VERSION, K_DEVICE: device_id, K_DAY: day,
                       K_KEY_NO: key_no, K_ALG: alg, K_FIRST: first, K_COUNT: count,
                       K_DIGEST: bytes(digest), K_FPS: bytes(fps)})


class Seal:
    """A parsed seal: its fields, the exact body bytes and the signature."""

    __slots__ = ("device_id", "day", "key_no", "alg", "first", "count", "digest",
                 "fingerprints", "body", "signature")

    def last(self):
        return self.first + self.count - 1

    def slot_fp(self, slot_of_day):
        i = slot_of_day - self.first
        return self.fingerprints[i * FP_LEN:(i + 1) * FP_LEN]


def _bad(msg):
    raise SealError("seal_malformed", msg)


def parse(data):
    """Seal bytes -> Seal, or SealError(seal_malformed) naming the field that is wrong."""
    if type(data) not in (bytes, bytearray, memoryview) or len(data) > MAX_SEAL:
        _bad("a seal is bytes of at most %d" % MAX_SEAL)
    try:
        m, end = cbor.loads_prefix(data, 0, 4, MAX_SEAL)
    except cbor.CborError as e:
        _bad("body is not strict CBOR: %s" % e)
    if type(m) is not dict:
        _bad("body is not a map")
    for k in m:
        if k not in _KEYS:
            _bad("unknown field %r" % (k,))
    for i in range(len(_KEYS)):
        if _KEYS[i] not in m:
            _bad("field %s missing" % FIELD_NAMES[i])
    if m[K_VERSION] != VERSION:
        _bad("version %r unsupported" % (m[K_VERSION],))
    s = Seal()
    s.device_id = _int(m, K_DEVICE, 0xFFFFFFFFFFFFFFFF)
    s.day = m[K_DAY]
    if not _check_day(s.day):
        _bad("day %r is not a yyyymmdd date" % (s.day,))
    s.key_no = _int(m, K_KEY_NO, 8191)
    s.alg = _int(m, K_ALG, 0xFFFF)
    if s.alg not in SIG_LEN:
        _bad("algorithm %d not supported" % s.alg)
    s.first = _int(m, K_FIRST, SLOTS_PER_DAY)
    s.count = _int(m, K_COUNT, SLOTS_PER_DAY)
    if s.first < 1 or s.count < 1 or s.first + s.count - 1 > SLOTS_PER_DAY:
        _bad("slot range %d+%d outside 1..48" % (s.first, s.count))
    s.digest = m[K_DIGEST]
    if type(s.digest) is not bytes or len(s.digest) != 32:
        _bad("digest must be 32 bytes")
    s.fingerprints = m[K_FPS]
    if type(s.fingerprints) is not bytes or len(s.fingerprints) != s.count * FP_LEN:
        _bad("fingerprints must be %d bytes" % (s.count * FP_LEN))
    s.body = bytes(data[:end])
    s.signature = bytes(data[end:])
    if len(s.signature) != SIG_LEN[s.alg]:
        _bad("signature must be %d bytes, got %d" % (SIG_LEN[s.alg], len(s.signature)))
    return s


def _int(m, k, hi):
    v = m[k]
    if type(v) is not int or v < 0 or v > hi:
        _bad("%s must be an integer 0..%d" % (FIELD_NAMES[k], hi))
    return v


# ---------------------------------------------------------------- signing


class Sealer:
    """Builds one seal and signs it in bounded steps (the agent calls step() between polls).

    `Sealer(device_id, priv32, key_no, day, first, count, entry_bytes)`; `step(ops)` until
    True; `seal()` gives body || signature. A fresh Sealer over the same inputs gives the same
    bytes (RFC 6979), so after a power cut the agent simply starts it again.
    """

    def __init__(self, device_id, priv, key_no, day, first, count, entry_bytes):
        if len(entry_bytes) != count * ENTRY_LEN:
            raise SealError("seal_bad_value", "need %d entry bytes" % (count * ENTRY_LEN))
        self.body = body(device_id, day, key_no, ALG_ES256, first, count,
                         digest_of(entry_bytes), fingerprints_of(entry_bytes))
        self._signer = p256.Signer(priv, hashlib.sha256(self.body).digest())

    def step(self, ops=1):
        return self._signer.step(ops)

    def done(self):
        return self._signer.done()

    def seal(self):
        return self.body + self._signer.signature()


def make_seal(device_id, priv, key_no, day, first, count, values):
    """Whole seal in one go from a {slot_of_day: (imp, exp, flags)} map (host tools, tests)."""
    s = Sealer(device_id, priv, key_no, day, first, count, entries(first, count, values))
    while not s.step(64):
        pass
    return s.seal()


# ---------------------------------------------------------------- verification


class Report:
    """What check() found: `ok`, `problems` [(what, message)], `slots` [(slot, verdict)],
    `unsealed` (slots of the data outside the seal's range)."""

    __slots__ = ("ok", "problems", "slots", "unsealed", "seal")

    def __init__(self):
        self.ok = False
        self.problems = []
        self.slots = []
        self.unsealed = []
        self.seal = None


def check(seal_bytes, pub, values, device_id=None, day=None):
    """Verify a seal against a day's values ({slot_of_day: (imp, exp, flags)}).

    device_id/day, when given, are what the data claims to be; a seal for another device or
    day is a problem. Never raises on bad seal bytes or a bad key: they are problems.
    """
    rep = Report()
    try:
        s = parse(seal_bytes)
    except SealError as e:
        rep.problems.append(("seal", str(e)))
        return rep
    rep.seal = s
    if device_id is not None and s.device_id != device_id:
        rep.problems.append(("device_id", "seal is for device %d, data for %d" % (s.device_id, device_id)))
    if day is not None and s.day != day:
        rep.problems.append(("day", "seal is for day %d, data for %d" % (s.day, day)))
    try:
        sig_ok = p256.verify(pub, s.body, s.signature)
    except p256.SignatureError as e:
        rep.problems.append(("public_key", str(e)))
        sig_ok = False
    else:
        if not sig_ok:
            rep.problems.append(("signature", "does not verify over the seal body with key %d: "
                                 "the seal was altered or signed with another key" % s.key_no))
    ent = entries(s.first, s.count, values)
    digest_ok = digest_of(ent) == s.digest
    absent = bytearray(ENTRY_LEN)
    mv = memoryview(ent)
    for i in range(s.count):
        slot = s.first + i
        if not sig_ok:
            rep.slots.append((slot, UNVERIFIED))
            continue
        sealed = s.slot_fp(slot)
        mine = fingerprint(mv[i * ENTRY_LEN:(i + 1) * ENTRY_LEN])
        if mine == sealed:
            v = OK
        else:
            absent_into(absent, 0, slot)
            sealed_absent = fingerprint(absent) == sealed
            have = slot in values
            v = MISSING if not have else (EXTRA if sealed_absent else CHANGED)
        rep.slots.append((slot, v))
    if sig_ok and not digest_ok:
        bad = [str(sl) for sl, v in rep.slots if v != OK]
        rep.problems.append(("digest", "the values do not match the sealed digest (slots %s)"
                             % (", ".join(bad) if bad else "unidentified")))
    for sl in sorted(values):
        if sl < s.first or sl > s.last():
            rep.unsealed.append(sl)
    rep.ok = not rep.problems
    return rep
