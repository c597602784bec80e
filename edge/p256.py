"""ECDSA over NIST P-256 with SHA-256 (FIPS 186-5), deterministic nonces (RFC 6979), in steps.

Why P-256/SHA-256 and not Ed25519: it is what OCMF (Germany's Eichrecht meter format) signs
with, it needs only SHA-256 (every MicroPython port has `hashlib.sha256`; SHA-512, which
Ed25519 needs, is missing on most) and big ints, and secure elements (ATECC608, SE050)
sign it in hardware. docs/seals.md says more.

Signing in pure Python takes long on a board, so `Signer` does the work in bounded
`step()` calls the agent runs between polls: the nonce (HMAC-DRBG, RFC 6979 §3.2), a
table of 1..3 x G, a fixed 2-bit-window scalar multiplication in Jacobian coordinates
(128 windows of two doublings and one addition) and two modular inversions as stepwise
exponentiations (Fermat). Nothing here is constant-time: Python big ints are not. A real
device signs in a secure element; see docs/seals.md.

The nonce is a function of (private key, message digest) alone, so a signer interrupted by
a power cut is simply started again and yields the same signature: no nonce is ever reused
for a different message, and no partial state needs to survive.

Signatures are 64 bytes, r || s big-endian (IEEE P1363 form, as in COSE/JWS ES256).
"""
import hashlib

from edge.compat import const
from edge.errors import EdgeError
from edge.mac import HmacSha256

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

SIG_LEN = const(64)
PUB_LEN = const(65)  # SEC1 uncompressed: 04 || X || Y

# 2-bit windows: a table of 3 points (about 0.4 KB live on a board while a seal is signed)
# instead of 15 (about 1.9 KB; the seal was the day's heap peak), for about 7 % more work
_WBITS = const(2)
_WMASK = const(3)  # 2**_WBITS - 1: the table's largest multiple
_WINDOWS = const(128)  # 256-bit scalar
_POW_BITS = const(12)  # exponent bits per inversion op: about one point operation of work

# Signer phases.
_NONCE = const(0)
_TABLE = const(1)
_MULT = const(2)
_INV_Z = const(3)
_INV_K = const(4)
_DONE = const(5)


class SignatureError(EdgeError):
    """Bad key, digest or signature bytes (kind p256)."""

    kind = "p256"


# ------------------------------------------------------------ Jacobian point arithmetic
# A point is (X, Y, Z) with affine x = X/Z^2, y = Y/Z^3; Z == 0 is the point at infinity.
# No product of three 256-bit numbers: each is reduced after two factors, so the largest
# temporary is 514 bits (5 heap blocks on a 32-bit board, not 7); on a day-old board heap
# at 48 KB a 98-byte block was often not there and the daily seal's signing stalled.

_INF = (1, 1, 0)


def _dbl(pt):
    """2 * pt ("dbl-2001-b", a = -3)."""
    X, Y, Z = pt
    if Z == 0 or Y == 0:
        return _INF
    delta = Z * Z % P
    gamma = Y * Y % P
    beta = X * gamma % P
    alpha = 3 * (X - delta) * (X + delta) % P
    X3 = (alpha * alpha - 8 * beta) % P
    Z3 = ((Y + Z) * (Y + Z) - gamma - delta) % P
    Y3 = (alpha * (4 * beta - X3) - 8 * gamma * gamma) % P
    return (X3, Y3, Z3)


def _add(p1, p2):
    """p1 + p2 ("add-2007-bl"), doubling or infinity where the formula needs it."""
    X1, Y1, Z1 = p1
    X2, Y2, Z2 = p2
    if Z1 == 0:
        return p2
    if Z2 == 0:
        return p1
    Z1Z1 = Z1 * Z1 % P
    Z2Z2 = Z2 * Z2 % P
    U1 = X1 * Z2Z2 % P
    U2 = X2 * Z1Z1 % P
    S1 = Y1 * Z2 % P * Z2Z2 % P
    S2 = Y2 * Z1 % P * Z1Z1 % P
    H = (U2 - U1) % P
    r = 2 * (S2 - S1) % P
    if H == 0:
        if r == 0:
            return _dbl(p1)
        return _INF
    I = 4 * H * H % P
    J = H * I % P
    V = U1 * I % P
    X3 = (r * r - J - 2 * V) % P
    Y3 = (r * (V - X3) - 2 * S1 * J) % P
    Z3 = ((Z1 + Z2) * (Z1 + Z2) - Z1Z1 - Z2Z2) % P * H % P
    return (X3, Y3, Z3)


def on_curve(x, y):
    """True if the affine (x, y) lies on P-256 (coordinates in range)."""
    if not (0 <= x < P and 0 <= y < P):
        return False
    return (y * y - (x * x * x - 3 * x + B)) % P == 0


# ------------------------------------------------------------ stepwise building blocks


class _ModPow:
    """base ** exp % mod, left to right, `_POW_BITS` exponent bits per op."""

    def __init__(self, base, exp, mod):
        self.base = base % mod
        self.exp = exp
        self.mod = mod
        self.bit = 0
        n = exp
        while n:
            n >>= 1
            self.bit += 1
        self.acc = 1

    def op(self):
        """One bounded chunk; returns True once the result is in `acc`."""
        m = self.mod
        e = self.exp
        acc = self.acc
        b = self.base
        bit = self.bit
        i = 0
        while bit > 0 and i < _POW_BITS:
            bit -= 1
            acc = acc * acc % m
            if (e >> bit) & 1:
                acc = acc * b % m
            i += 1
        self.acc = acc  # committed together, after the arithmetic: see Signer
        self.bit = bit
        return bit == 0


class _ScalarMult:
    """k * point with a fixed window of _WBITS bits; one op is one table entry or one window.

    The table of 1.._WMASK x point is kept packed, 96 bytes a point, rather than as big
    ints: on MicroPython each reduced int keeps its product's allocation (an unpacked 15-point
    table held about 7 KB). One small bytearray per point, not one block: a long-running
    board's heap has room in small pieces, rarely in one large piece."""

    def __init__(self, k, point):
        self.k = k
        self.point = point
        self.table = [None] * (_WMASK + 1)
        self.filled = 1
        self._last = point
        _pack(self.table, 1, point)
        self.win = _WINDOWS
        self.acc = _INF

    def op(self):
        if self.filled < _WMASK:
            last = _add(self._last, self.point)
            _pack(self.table, self.filled + 1, last)
            self._last = last  # committed after the arithmetic: see Signer
            self.filled += 1
            if self.filled == _WMASK:
                self._last = None
            return False
        win = self.win - 1
        if win < 0:
            return True  # finished: asked again after a later step failed
        a = self.acc
        if a[2] != 0:
            a = _dbl(_dbl(a))
        d = (self.k >> (_WBITS * win)) & _WMASK
        if d:
            a = _add(a, _unpack(self.table, d))
        self.acc = a
        self.win = win
        if win == 0:
            self.table = None
            return True
        return False


def _pack(table, i, pt):
    b = bytearray(96)
    b[0:32] = pt[0].to_bytes(32, "big")
    b[32:64] = pt[1].to_bytes(32, "big")
    b[64:96] = pt[2].to_bytes(32, "big")
    table[i] = b


def _unpack(table, i):
    mv = memoryview(table[i])
    return (int.from_bytes(mv[0:32], "big"), int.from_bytes(mv[32:64], "big"),
            int.from_bytes(mv[64:96], "big"))


def _run(stepper):
    while not stepper.op():
        pass
    return stepper.acc


def _to_affine(pt):
    X, Y, Z = pt
    if Z == 0:
        return None
    zi = _run(_ModPow(Z, P - 2, P))
    zi2 = zi * zi % P
    return X * zi2 % P, Y * zi2 % P * zi % P


def mul(k, x, y):
    """k * (x, y) in affine form, or None for infinity (tests, key derivation)."""
    return _to_affine(_run(_ScalarMult(k % N, (x, y, 1))))


# ------------------------------------------------------------ keys and encodings


def _int32(b, what):
    if len(b) != 32:
        raise SignatureError("%s must be 32 bytes" % what)
    return int.from_bytes(b, "big")


def private_scalar(priv):
    """32-byte private key -> int in 1..N-1 (SignatureError otherwise)."""
    d = _int32(priv, "private key")
    if not 0 < d < N:
        raise SignatureError("private key out of range")
    return d


def public_key(priv):
    """32-byte private key -> 65-byte SEC1 uncompressed public key."""
    x, y = mul(private_scalar(priv), GX, GY)
    return encode_point(x, y)


def encode_point(x, y):
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def decode_point(pub):
    """65-byte SEC1 uncompressed public key -> (x, y), checked to lie on the curve."""
    if len(pub) != PUB_LEN or pub[0] != 4:
        raise SignatureError("public key must be 65 bytes starting with 04")
    x = int.from_bytes(pub[1:33], "big")
    y = int.from_bytes(pub[33:65], "big")
    if not on_curve(x, y):
        raise SignatureError("public key is not a point on P-256")
    return x, y


# ------------------------------------------------------------ RFC 6979 nonces


class _Nonces:
    """HMAC-DRBG of RFC 6979 §3.2 for qlen = hlen = 256: candidate k values in order."""

    def __init__(self, d, h1):
        x = d.to_bytes(32, "big")
        h = (int.from_bytes(h1, "big") % N).to_bytes(32, "big")  # bits2octets
        V = b"\x01" * 32
        K = HmacSha256(b"\x00" * 32).digest(V + b"\x00" + x + h)
        V = HmacSha256(K).digest(V)
        K = HmacSha256(K).digest(V + b"\x01" + x + h)
        self.V = HmacSha256(K).digest(V)
        self.K = K
        self.first = True

    def next(self):
        K = self.K
        V = self.V
        first = self.first
        while True:
            if not first:  # §3.2 step h.3: the candidate was refused, move on
                K = HmacSha256(K).digest(V + b"\x00")
                V = HmacSha256(K).digest(V)
            first = False
            V = HmacSha256(K).digest(V)
            k = int.from_bytes(V, "big")
            if 0 < k < N:
                self.K = K  # committed once the candidate is found: see Signer
                self.V = V
                self.first = False
                return k


# ------------------------------------------------------------ signing and verifying


class Signer:
    """One ECDSA signature, computed in bounded steps.

    `Signer(priv32, digest32)`, then `step(ops)` until it returns True; `signature()` gives
    the 64-byte r || s. One op is about one point doubling or addition (ten to sixteen
    256-bit modular multiplications); `step(ops)` does `ops` of them (at least one).
    `low_s=True` replaces s by N - s when s > N/2 (BIP 62 style); off by default so the
    output equals RFC 6979's published vectors. Verifiers accept either.

    A step may fail part way (MemoryError on a full board heap; the agent counts it and
    calls again): every op computes into locals and commits its state only at its end, and
    the nonce is drawn once, so the retried op continues the same computation and the
    signature is the same bytes. A half-updated state signed a wrong seal once.
    """

    def __init__(self, priv, digest, low_s=False):
        self.d = private_scalar(priv)
        if len(digest) != 32:
            raise SignatureError("digest must be 32 bytes (SHA-256)")
        self.e = int.from_bytes(digest, "big") % N
        self.low_s = low_s
        self._nonces = _Nonces(self.d, digest)
        self.phase = _NONCE
        self.ops = 0  # total ops so far (progress, tests)
        self._k = 0
        self._work = None
        self._R = None
        self._r = 0
        self._sig = None

    def done(self):
        return self.phase == _DONE

    def step(self, ops=1):
        """Do up to `ops` ops of work; True when the signature is ready."""
        n = ops if ops > 0 else 1
        while n > 0 and self.phase != _DONE:
            self._op()
            self.ops += 1
            n -= 1
        return self.phase == _DONE

    def _op(self):
        ph = self.phase
        if ph == _NONCE:
            if not self._k:  # drawn once: a retry after a failed step keeps the same k
                self._k = self._nonces.next()
            self._work = _ScalarMult(self._k, (GX, GY, 1))
            self.phase = _TABLE
        elif ph == _TABLE or ph == _MULT:
            if self._work.op():
                w = _ModPow(self._work.acc[2], P - 2, P)
                self._R = self._work.acc
                self._work = w
                self.phase = _INV_Z
            else:
                self.phase = _TABLE if self._work.filled < _WMASK else _MULT
        elif ph == _INV_Z:
            if self._work.op():
                zi = self._work.acc
                r = self._R[0] * zi % P * zi % P % N
                if r == 0:
                    self._k = 0
                    self.phase = _NONCE
                    return
                self._r = r
                self._work = _ModPow(self._k, N - 2, N)
                self.phase = _INV_K
        elif ph == _INV_K:
            if self._work.op():
                s = (self.e + self._r * self.d) % N * self._work.acc % N
                if s == 0:
                    self._k = 0
                    self.phase = _NONCE
                    return
                if self.low_s and s > N >> 1:
                    s = N - s
                self._sig = self._r.to_bytes(32, "big") + s.to_bytes(32, "big")
                self._work = None
                self._R = None
                self._k = 0
                self.phase = _DONE

    def signature(self):
        if self.phase != _DONE:
            raise SignatureError("signature not finished")
        return self._sig


def sign_digest(priv, digest, low_s=False):
    """Sign a 32-byte SHA-256 digest in one go (host tools, tests)."""
    s = Signer(priv, digest, low_s)
    while not s.step(64):
        pass
    return s.signature()


def sign(priv, message, low_s=False):
    return sign_digest(priv, hashlib.sha256(message).digest(), low_s)


def verify_digest(pub, digest, sig):
    """True if sig (64 bytes r || s) is a valid ECDSA P-256 signature of digest under pub.

    Raises SignatureError only for a malformed public key; a bad signature is False.
    """
    qx, qy = decode_point(pub)
    if len(sig) != SIG_LEN or len(digest) != 32:
        return False
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if not (0 < r < N and 0 < s < N):
        return False
    e = int.from_bytes(digest, "big") % N
    w = _run(_ModPow(s, N - 2, N))
    u1 = e * w % N
    u2 = r * w % N
    pt = _add(_run(_ScalarMult(u1, (GX, GY, 1))), _run(_ScalarMult(u2, (qx, qy, 1))))
    X, _, Z = pt
    if Z == 0:
        return False
    # x(R) = X / Z^2; compare without an inversion: X == r' * Z^2 for r' in {r, r + N}.
    z2 = Z * Z % P
    if X == r * z2 % P:
        return True
    return r + N < P and X == (r + N) * z2 % P


def verify(pub, message, sig):
    return verify_digest(pub, hashlib.sha256(message).digest(), sig)
