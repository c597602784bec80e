"""edge/p256.py on both runtimes: RFC 6979 A.2.5 vectors, steps, verification, bad input."""
# mp-heap: 96K
import hashlib
import json

from edge import p256
from runtime import micropython_only


def _vectors():
    here = __file__.rsplit("/", 1)[0]
    with open(here + "/../vectors/ecdsa_p256_rfc6979.json") as f:
        return json.load(f)


def _h(s):
    return bytes.fromhex(s)


def test_public_key_matches_rfc6979():
    v = _vectors()
    pub = p256.public_key(_h(v["private_key"]))
    assert pub == b"\x04" + _h(v["public_x"]) + _h(v["public_y"])
    assert p256.decode_point(pub) == (int(v["public_x"], 16), int(v["public_y"], 16))


def test_nonces_match_rfc6979():
    v = _vectors()
    d = int(v["private_key"], 16)
    for c in v["cases"]:
        h1 = hashlib.sha256(c["message"].encode()).digest()
        assert p256._Nonces(d, h1).next() == int(c["k"], 16), c["message"]


def test_signatures_match_rfc6979_and_verify():
    v = _vectors()
    priv = _h(v["private_key"])
    pub = p256.public_key(priv)
    for c in v["cases"]:
        msg = c["message"].encode()
        sig = p256.sign(priv, msg)
        assert sig == _h(c["r"]) + _h(c["s"]), c["message"]
        assert p256.verify(pub, msg, sig)
        assert not p256.verify(pub, msg + b"!", sig)


def test_stepwise_signing_equals_one_go_and_counts_ops():
    v = _vectors()
    priv = _h(v["private_key"])
    digest = hashlib.sha256(b"sample").digest()
    s = p256.Signer(priv, digest)
    steps = 0
    while not s.step(1):
        steps += 1
        assert not s.done()
    assert s.signature() == p256.sign_digest(priv, digest)
    # nonce 1 + table 2 + windows 128 (2-bit) + two inversions of 256 bits at 12 bits per op
    assert steps + 1 == s.ops
    assert 160 < s.ops < 190, s.ops


def test_low_s_flips_high_s_and_still_verifies():
    v = _vectors()
    priv = _h(v["private_key"])
    pub = p256.public_key(priv)
    sig = p256.sign(priv, b"sample", low_s=True)  # RFC's s for "sample" is above N/2
    s = int.from_bytes(sig[32:], "big")
    assert s <= p256.N >> 1
    assert s == p256.N - int(v["cases"][0]["s"], 16)
    assert p256.verify(pub, b"sample", sig)


def test_every_single_bit_flip_of_a_signature_fails():
    v = _vectors()
    priv = _h(v["private_key"])
    pub = p256.public_key(priv)
    sig = p256.sign(priv, b"test")
    # every byte, one bit each (all 512 bits would take long inside MicroPython)
    for i in range(64):
        bad = bytearray(sig)
        bad[i] ^= 1 << (i % 8)
        assert not p256.verify(pub, b"test", bytes(bad)), i


def test_out_of_range_and_wrong_length_signatures_are_false():
    v = _vectors()
    pub = p256.public_key(_h(v["private_key"]))
    zero = b"\x00" * 32
    n = p256.N.to_bytes(32, "big")
    one = (1).to_bytes(32, "big")
    for sig in (zero + one, one + zero, n + one, one + n, b"", b"\x01" * 63, b"\x01" * 65):
        assert not p256.verify(pub, b"sample", sig)


def test_bad_keys_raise_typed_errors():
    bad_privs = (b"", b"\x00" * 32, p256.N.to_bytes(32, "big"), b"\x01" * 31)
    for priv in bad_privs:
        try:
            p256.public_key(priv)
        except p256.SignatureError as e:
            assert e.kind == "p256"
        else:
            raise AssertionError("accepted private key %r" % priv)
    v = _vectors()
    good = p256.public_key(_h(v["private_key"]))
    off_curve = bytearray(good)
    off_curve[64] ^= 1
    for pub in (b"", good[:64], b"\x02" + good[1:], bytes(off_curve)):
        try:
            p256.verify(pub, b"sample", b"\x01" * 64)
        except p256.SignatureError as e:
            assert e.kind == "p256"
        else:
            raise AssertionError("accepted public key")


def test_point_arithmetic_identities():
    # n * G is infinity; (n - 1) * G is -G; 2G via add equals 2G via dbl
    assert p256.mul(p256.N, p256.GX, p256.GY) is None
    x, y = p256.mul(p256.N - 1, p256.GX, p256.GY)
    assert x == p256.GX and y == p256.P - p256.GY
    g = (p256.GX, p256.GY, 1)
    assert p256._to_affine(p256._add(g, g)) == p256._to_affine(p256._dbl(g))
    assert p256._add(g, (p256.GX, p256.P - p256.GY, 1))[2] == 0
    assert p256.on_curve(*p256.mul(12345, p256.GX, p256.GY))


def test_negative_intermediates_reduce_like_cpython():
    # the formulas rely on floored % for negative big ints on both runtimes
    assert (-5) % p256.P == p256.P - 5
    assert (3 - p256.P * 7) % p256.P == 3



def test_signing_needs_no_large_free_block():
    """A board that has run for a day has its free heap in small pieces. Fill the heap with
    256-byte blocks, free every other one: half the heap is free but no 1.5 KB block is, and
    a signature still comes out (the window table is one 96-byte bytearray per point)."""
    import gc

    v = _vectors()
    priv = _h(v["private_key"])
    digest = hashlib.sha256(b"sample").digest()
    want = p256.sign_digest(priv, digest)
    micropython_only("a fragmented heap exists only on MicroPython (gc.mem_free)")
    gc.collect()
    blocks = [None] * 1024
    n = 0
    try:
        while n < len(blocks):
            blocks[n] = bytearray(240)
            n += 1
    except MemoryError:
        pass
    assert n < len(blocks), "heap not filled"
    for i in range(0, n, 2):
        blocks[i] = None
    gc.collect()
    try:
        bytearray(1536)
        fragmented = False
    except MemoryError:
        fragmented = True
    try:
        assert fragmented, "the heap still has a 1.5 KB block"
        s = p256.Signer(priv, digest)
        while not s.step(4):
            pass
        assert s.signature() == want
    finally:
        blocks = None
        gc.collect()
