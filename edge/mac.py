"""HMAC-SHA256 (RFC 2104) on hashlib.sha256 alone, and a constant-time tag comparison.

MicroPython ports ship hashlib.sha256 but usually no `hmac` module, so the construction is
spelled out here: H(K ^ opad || H(K ^ ipad || message)). The padded key blocks are computed
once per key. Each MAC still allocates two sha256 objects and two 32-byte digests on
MicroPython (hashlib has no copy() or digest-into); tests/portable/test_mac.py measures it.
"""
import hashlib

from edge.compat import IS_MICROPYTHON, const
from edge.errors import EdgeError

_BLOCK = const(64)
DIGEST_SIZE = const(32)
MIN_TAG = const(8)

try:
    if IS_MICROPYTHON:
        raise ImportError
    from hmac import compare_digest as _compare_digest
except ImportError:
    _compare_digest = None


class MacError(EdgeError):
    kind = "mac"


class HmacSha256:
    """One key, many messages. `key` is bytes-like; keys over 64 bytes are hashed first."""

    def __init__(self, key):
        try:
            n = len(key)
        except TypeError:
            raise MacError("key must be bytes")
        if n > _BLOCK:
            key = hashlib.sha256(key).digest()
            n = len(key)
        ipad = bytearray(_BLOCK)
        opad = bytearray(_BLOCK)
        for i in range(_BLOCK):
            k = key[i] if i < n else 0
            ipad[i] = k ^ 0x36
            opad[i] = k ^ 0x5C
        self._ipad = bytes(ipad)
        self._opad = bytes(opad)

    def digest(self, data):
        """The full 32-byte HMAC of a bytes-like message (memoryview slices welcome)."""
        h = hashlib.sha256(self._ipad)
        h.update(data)
        inner = h.digest()
        h = hashlib.sha256(self._opad)
        h.update(inner)
        return h.digest()

    def tag_into(self, data, out, off, n):
        """Write the first n bytes of the HMAC of data into out[off:off+n]; return off + n."""
        if n < 1 or n > DIGEST_SIZE or off + n > len(out):
            raise MacError("tag of %d bytes does not fit" % n)
        d = self.digest(data)
        for i in range(n):
            out[off + i] = d[i]
        return off + n

    def verify(self, data, tag):
        """True when tag equals the HMAC of data truncated to len(tag) (8..32 bytes).

        Shorter tags are refused outright: a 1-byte tag would be forged in 256 tries.
        """
        n = len(tag)
        if n < MIN_TAG or n > DIGEST_SIZE:
            return False
        return equal(self.digest(data)[:n], tag)


def hmac_sha256(key, data):
    return HmacSha256(key).digest(data)


def equal(a, b):
    """Compare two equal-length byte strings without an early exit (lengths are public)."""
    if len(a) != len(b):
        return False
    if _compare_digest is not None:
        return _compare_digest(a, b)
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0
