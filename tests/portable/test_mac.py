"""edge/mac.py on both runtimes: RFC 4231 vectors, truncation, comparison, allocation."""
import gc
import json

from edge import mac
from edge.compat import IS_MICROPYTHON
from edge.errors import EdgeError
from runtime import micropython_only


def _cases():
    here = __file__.rsplit("/", 1)[0]
    with open(here + "/../vectors/hmac_sha256_rfc4231.json") as f:
        return json.load(f)["cases"]


def test_rfc4231_vectors():
    cases = _cases()
    assert len(cases) == 7
    for c in cases:
        key = bytes.fromhex(c["key"])
        data = bytes.fromhex(c["data"])
        want = bytes.fromhex(c["mac"])
        got = mac.HmacSha256(key).digest(data)
        assert len(got) == 32
        assert got[: len(want)] == want, c["case"]
        assert mac.hmac_sha256(key, data)[: len(want)] == want
        assert mac.HmacSha256(key).verify(data, want)


def test_memoryview_slices_hash_like_bytes():
    c = _cases()[0]
    m = mac.HmacSha256(bytes.fromhex(c["key"]))
    data = bytes.fromhex(c["data"])
    buf = bytearray(data + b"tail")
    assert m.digest(memoryview(buf)[: len(data)]) == m.digest(data)


def test_tag_into_writes_only_its_window():
    m = mac.HmacSha256(b"k" * 16)
    out = bytearray(b"\x00" * 12)
    end = m.tag_into(b"msg", out, 2, 8)
    assert end == 10
    assert bytes(out[2:10]) == m.digest(b"msg")[:8]
    assert out[0] == 0 and out[1] == 0 and out[10] == 0 and out[11] == 0
    for bad_n, bad_off in ((0, 0), (33, 0), (8, 5)):
        try:
            m.tag_into(b"msg", out, bad_off, bad_n)
        except EdgeError as e:
            assert e.kind == "mac"
        else:
            raise AssertionError("wrote a tag that does not fit")


def test_verify_rejects_any_single_bit_flip_and_wrong_lengths():
    m = mac.HmacSha256(b"0123456789abcdef")
    tag = m.digest(b"frame body")[:8]
    assert m.verify(b"frame body", tag)
    for i in range(8):
        for bit in (1, 0x80):
            bad = bytearray(tag)
            bad[i] ^= bit
            assert not m.verify(b"frame body", bytes(bad))
    assert not m.verify(b"frame body", tag[:7])  # below the 8-byte floor
    assert m.verify(b"frame body", m.digest(b"frame body")[:16])
    assert not m.verify(b"frame body!", tag)
    assert not m.verify(b"frame body", b"")
    assert not m.verify(b"frame body", b"\x00" * 33)


def test_equal_compares_whole_strings():
    assert mac.equal(b"abcdefgh", b"abcdefgh")
    assert not mac.equal(b"abcdefgh", b"abcdefgX")
    assert not mac.equal(b"Xbcdefgh", b"abcdefgh")
    assert not mac.equal(b"abc", b"abcd")
    assert mac.equal(bytearray(b"ab"), memoryview(b"ab"))


def test_equal_uses_compare_digest_on_cpython_only():
    if IS_MICROPYTHON:
        assert mac._compare_digest is None
    else:
        import hmac

        assert mac._compare_digest is hmac.compare_digest


def test_non_bytes_key_is_a_typed_error():
    try:
        mac.HmacSha256(12345)
    except EdgeError as e:
        assert e.kind == "mac"
    else:
        raise AssertionError("accepted an int key")


def test_mac_allocation_is_bounded_and_measured():
    # hashlib has no digest-into on MicroPython, so each MAC allocates; measure it and
    # keep it bounded so the agent's 32 KB heap budget can account for it.
    m = mac.HmacSha256(b"K" * 32)
    out = bytearray(40)
    body = bytes(range(30))
    micropython_only("allocation is measured only on MicroPython (gc.mem_alloc)")
    m.tag_into(body, out, 30, 8)  # warm up
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(10):
        m.tag_into(body, out, 30, 8)
    used = (gc.mem_alloc() - before) // 10
    gc.enable()
    print("mac: bytes allocated per 8-byte tag on MicroPython:", used)
    assert 0 < used <= 1024
