"""host_tools/collector/wire.py (cbor2 + hmac) against edge/frame.py over the same bytes."""
import hashlib
import hmac
import json
import os

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import frame as fr
from host_tools.collector import ingest, wire

VECTORS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "vectors", "frames_v1.json")
KEY = bytes(range(1, 33))
U32 = 2**32 - 1
U64 = 2**64 - 1


def host_decode(data, key=KEY):
    """(device_id, kid, seq, status, records) or the rejection reason."""
    try:
        pf = wire.parse_frame(data)
        wire.verify(pf, data, wire.MacKey(key))
    except wire.WireReject as r:
        return "reject:" + r.reason
    return (pf.device_id, pf.kid, pf.seq, pf.status, [list(r) for r in pf.records], pf.seal)


def edge_decode(data, key=KEY):
    try:
        f = fr.decode_frame(data, lambda d, k: key)
    except fr.FrameError as e:
        return "reject:" + e.kind
    return (f.device_id, f.kid, f.seq, f.status, [list(r) for r in f.records], f.seal)


def sign(body, key=KEY, tlen=8):
    return body + hmac.new(key, body, hashlib.sha256).digest()[:tlen]


def test_golden_vectors_decode_identically():
    with open(VECTORS, encoding="utf-8") as f:
        vec = json.load(f)
    key = bytes.fromhex(vec["key"])
    assert vec["frames"] and vec["acks"]
    for v in vec["frames"]:
        data = bytes.fromhex(v["hex"])
        got = host_decode(data, key)
        assert got == (v["device_id"], v["key_no"] << 3 | v["alg"], v["seq"], v["status"],
                       v["records"], None), v["name"]
        assert got == edge_decode(data, key)
    for v in vec["acks"]:
        data = bytes.fromhex(v["hex"])
        mk = wire.MacKey(key)
        assert wire.encode_ack(mk, v["device_id"], v["kid"], v["seqs"], v["upto"],
                               v.get("time")) == data
        kid, dev, upto, seqs, tm, ref, m = wire.parse_ack_time(data)
        assert (kid, dev, upto, seqs, tm) == (v["kid"], v["device_id"], v["upto"], v["seqs"],
                                              v.get("time"))
        assert wire.parse_ack(data) == (kid, dev, upto, seqs, m)
    assert sum("time" in v for v in vec["acks"]) == 2


records_st = st.lists(
    st.tuples(st.integers(1, 5000), st.integers(0, U32), st.integers(0, U32),
              st.integers(0, 0xFFFF)),
    min_size=1, max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(dev=st.integers(0, U64), seq=st.integers(0, U64), status=st.integers(0, 0xFFFF),
       key_no=st.integers(0, 8191), alg=st.sampled_from([1, 2]),
       start=st.integers(0, U32 - 60000), recs=records_st)
def test_device_frames_decode_identically(dev, seq, status, key_no, alg, start, recs):
    records = []
    slot = start
    for gap, imp, exp, flags in recs:
        slot += gap
        records.append([slot, imp, exp, flags])
    data = fr.FrameEncoder(dev, KEY, key_no, alg).encode(seq, records, status=status)
    got = host_decode(data)
    assert got == (dev, key_no << 3 | alg, seq, status, records, None)
    assert got == edge_decode(data)
    assert host_decode(data, bytes(32)) == "reject:bad_mac"


@settings(max_examples=150, deadline=None)
@given(dev=st.integers(0, U64), kid=st.integers(0, 0xFFFF).filter(lambda k: k & 7 in (1, 2)),
       upto=st.one_of(st.none(), st.integers(0, U64 - 100)),
       gaps=st.lists(st.integers(1, 1000), max_size=20))
def test_ack_byte_identical_to_edge(dev, kid, upto, gaps):
    seqs = []
    last = -1 if upto is None else upto
    for g in gaps:
        last += g
        seqs.append(last)
    if upto is None and not seqs:
        seqs = [0]
    if seqs and seqs[-1] > U64:
        return
    mine = wire.encode_ack(wire.MacKey(KEY), dev, kid, seqs, upto)
    assert mine == fr.encode_ack(KEY, dev, kid, upto, seqs)
    if upto is None and len(seqs) == 1:  # the collector's cached-prefix encoder
        assert wire.MacKey(KEY).ack_one(dev, kid, seqs[0]) == mine
    ack = fr.decode_ack(mine, lambda d, k: KEY)
    assert (ack.upto, list(ack.seqs), ack.device_id) == (upto, seqs, dev)


@settings(max_examples=200, deadline=None)
@given(dev=st.integers(0, U64), kid=st.sampled_from([1, 2, 9, 0xFFF9]),
       seq=st.one_of(st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32,
                                      U64]), st.integers(0, U64)))
def test_single_seq_ack_byte_identical_to_edge(dev, kid, seq):
    """The collector's usual ack (one seq) skips cbor2 for the seq list."""
    mac = wire.MacKey(KEY)
    want = fr.encode_ack(KEY, dev, kid, None, [seq])
    for _ in range(2):  # the second call uses the cached prefix and HMAC state
        assert mac.ack_one(dev, kid, seq) == want == wire.encode_ack(mac, dev, kid, [seq])
    # the same key object asked for another device or kid is never served the cached prefix
    assert mac.ack_one(dev ^ 1, kid, seq) == fr.encode_ack(KEY, dev ^ 1, kid, None, [seq])
    assert mac.ack_one(dev, 0xFFF9, seq) == fr.encode_ack(KEY, dev, 0xFFF9, None, [seq])
    assert mac.ack_one(dev, kid, seq) == want


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=16, max_size=200), msg=st.binary(max_size=300),
       n=st.sampled_from([8, 16, 32]))
def test_mac_key_is_hmac_sha256(key, msg, n):
    """MacKey's own HMAC construction (two SHA-256 states) gives hmac.new's tags, keys
    longer than a block (hashed first) included."""
    mk = wire.MacKey(key)
    want = hmac.new(key, msg, hashlib.sha256).digest()
    assert mk.tag(msg, n) == want[:n]
    assert mk.check(msg + want[:n], len(msg), n)
    assert not mk.check(msg + bytes([want[0] ^ 1]) + want[1:n], len(msg), n)
    assert mk.tag(msg, n) == want[:n]  # the key's states are not consumed


@pytest.mark.skipif(ingest._fastpath is None, reason="_fastpath not built")
@settings(max_examples=300, deadline=None)
@given(key=st.binary(min_size=0, max_size=200), msg=st.binary(max_size=300))
def test_c_loop_hmac_is_hmac_sha256(key, msg):
    """The C loop's own SHA-256 and HMAC (it verifies frames and signs acks without a Python
    call) give hmac.new's digest: messages across the one- and two-block padding limits,
    keys longer than a block."""
    want = hmac.new(key, msg, hashlib.sha256).digest()
    assert ingest._fastpath.hmac_sha256(key, msg) == want  # SHA-NI where the CPU has it
    assert ingest._fastpath.hmac_sha256(key, msg, True) == want  # the portable block code


@pytest.mark.skipif(ingest._fastpath is None, reason="_fastpath not built")
def test_c_loop_hmac_at_every_padding_length():
    for n in range(0, 200):
        msg = bytes(range(n % 256))[:n] + bytes(max(0, n - 256))
        for key in (b"k" * 16, bytes(range(64)), bytes(range(65)), bytes(100)):
            want = hmac.new(key, msg, hashlib.sha256).digest()
            assert ingest._fastpath.hmac_sha256(key, msg) == want, (n, key)
            assert ingest._fastpath.hmac_sha256(key, msg, True) == want, (n, key)


GOOD_BODY = cbor2.dumps({1: [9, 7, 5, 0], 2: [112488, 10, 0, 0, 1, 11, 0, 1]})


@pytest.mark.parametrize("body,reason", [
    # seq 5 as a 1-byte-argument head (non-shortest)
    (GOOD_BODY.replace(bytes.fromhex("090705"), bytes.fromhex("09071805"), 1), "non_canonical"),
    # keys out of order
    (cbor2.dumps({2: [112488, 10, 0, 0], 1: [9, 7, 5, 0]}), "non_canonical"),
    # duplicate key 1, indefinite lengths and tags: refused by the decoder itself (wire.py)
    (bytes.fromhex("a3018409070500") + bytes.fromhex("018409070500") + bytes.fromhex("02841a0001b7680a0000"), "malformed_cbor"),
    # indefinite-length records array
    (bytes.fromhex("a2018409070500029f1a0001b7680a0000ff"), "malformed_cbor"),
    # a tag around seq (bignum 2 of value 5)
    (bytes.fromhex("a20184090 7c2410500028 41a0001b7680a0000".replace(" ", "")), "malformed_cbor"),
    # one-record frames (the parser's short path) whose keys equal 1 and 2 but are not ints
    (cbor2.dumps({True: [9, 7, 5, 0], 2: [1, 1, 1, 1]}), "non_canonical"),
    (cbor2.dumps({1: [9, 7, 5, 0], 2.0: [1, 1, 1, 1]}), "non_canonical"),
    (cbor2.dumps({1.0: [9, 7, 5, 0], 2: [1, 1, 1, 1]}), "non_canonical"),
    # unsupported version, unknown key, bool where an int belongs, 3-field header
    (cbor2.dumps({0: 2, 1: [9, 7, 5, 0], 2: [1, 1, 1, 1]}), "unsupported_version"),
    (cbor2.dumps({1: [9, 7, 5, 0], 2: [1, 1, 1, 1], 5: 0}), "bad_schema"),
    (cbor2.dumps({1: [9, 7, 5, 0], 2: [1, 1, 1, 1], 5: b"seal"}), "bad_schema"),
    (cbor2.dumps({1: [9, 7, 5, 0], 5: b""}), "bad_schema"),
    (cbor2.dumps({1: [9, 7, 5, 0], 5: "seal"}), "bad_schema"),
    (cbor2.dumps({1: [9, 7, True, 0], 2: [1, 1, 1, 1]}), "bad_schema"),
    (cbor2.dumps({1: [9, 7, 5], 2: [1, 1, 1, 1]}), "bad_schema"),
    (cbor2.dumps({1: [9, 7, 5, 0], 2: [1, 1, 1, 1, 0, 1, 1, 1]}), "bad_schema"),
    (cbor2.dumps({1: [9, 7, 5, 0], 2: [1, 1.5, 1, 1]}), "bad_schema"),
    (cbor2.dumps({1: [9 & ~7 | 3, 7, 5, 0], 2: [1, 1, 1, 1]}), "unsupported_algorithm"),
])
def test_strictness_matches_edge(body, reason):
    data = sign(body)
    assert host_decode(data) == "reject:" + reason
    assert edge_decode(data).startswith("reject:")


def test_tag_and_trailing_bytes():
    assert host_decode(sign(GOOD_BODY))[2] == 5
    assert host_decode(sign(GOOD_BODY) + b"\x00") == "reject:bad_tag_length"
    assert host_decode(sign(GOOD_BODY)[:-1]) == "reject:bad_tag_length"
    assert host_decode(sign(GOOD_BODY, tlen=16)) == "reject:bad_tag_length"
    assert host_decode(b"\xa2" * 3000) == "reject:oversized"
    assert host_decode(b"\xa2\x01") == "reject:too_short"


def cbor_values():
    leaf = st.one_of(st.integers(-(2**64), 2**65), st.booleans(), st.none(),
                     st.binary(max_size=6), st.text(max_size=4))
    return st.recursive(leaf, lambda c: st.one_of(st.lists(c, max_size=6),
                                                  st.dictionaries(st.integers(-2, 6), c, max_size=4)),
                        max_leaves=20)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hdr=st.lists(cbor_values(), max_size=5), recs=st.lists(st.integers(-3, 2**33), max_size=9),
       extra=st.dictionaries(st.integers(0, 5), st.one_of(cbor_values(), st.binary(max_size=40)),
                             max_size=2),
       tlen=st.sampled_from([8, 16, 7]))
def test_differential_signed_bodies(hdr, recs, extra, tlen):
    """Bodies that carry a valid MAC: both decoders accept the same ones, with the same content."""
    if hdr and hdr[0] is not None and type(hdr[0]) is int and hdr[0] >= 0:
        hdr[0] = hdr[0] & ~7 | 1 if hdr[0] <= 0xFFFF else hdr[0]
    body = dict(extra)
    body[1] = hdr
    if 5 not in extra:  # with key 5 and no key 2: a seal frame candidate
        body[2] = recs
    try:
        raw = cbor2.dumps(body, canonical=True)
    except Exception:
        return
    data = sign(raw, tlen=tlen)
    h, e = host_decode(data), edge_decode(data)
    assert isinstance(h, str) == isinstance(e, str), (h, e)
    if not isinstance(h, str):
        assert h == e


@settings(max_examples=500, deadline=None)
@given(pos=st.integers(0, 40), val=st.integers(0, 255), cut=st.integers(0, 3))
def test_differential_mutated_then_resigned(pos, val, cut):
    """Mutate the body bytes of a valid frame and re-sign: accept/reject must agree."""
    body = bytearray(GOOD_BODY)
    body[pos % len(body)] = val
    body = bytes(body[: len(body) - cut]) if cut < len(body) else bytes(body)
    data = sign(body)
    h, e = host_decode(data), edge_decode(data)
    assert isinstance(h, str) == isinstance(e, str), (body.hex(), h, e)
    if not isinstance(h, str):
        assert h == e


def uint_head(v, width=None):
    """A CBOR unsigned int, shortest form unless width (argument bytes 0/1/2/4/8) is given."""
    if width is None:
        width = 0 if v < 24 else 1 if v < 256 else 2 if v < 65536 else 4 if v < 2**32 else 8
    if width == 0:
        return bytes([v])
    return bytes([{1: 0x18, 2: 0x19, 4: 0x1A, 8: 0x1B}[width]]) + v.to_bytes(width, "big")


def short_vs_general(data):
    """The short path agrees with the general path: same fields whenever it answers, and it
    never accepts what the general path refuses. Returns whether the short path answered."""
    s = wire._parse_short(data)
    c_parse_equals_regex(data)
    try:
        g = wire._parse_general(data)
    except wire.WireReject:
        g = None
    if s is not None:
        assert g is not None, data.hex()
        assert [getattr(s, a) for a in s.__slots__] == [getattr(g, a) for a in g.__slots__]
    return s is not None


def c_parse_equals_regex(data):
    """The C fast path's parser (when built) reads exactly what wire._SHORT matches."""
    if ingest._fastpath is None:
        return
    m = wire.short_match(data)
    want = None if m is None else wire.layouts(m.regs).unpack_from(data) + (m.regs[0][1],)
    assert ingest._fastpath.parse_short(data) == want, data.hex()


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from([b"", b"\xa2\x01\x84", b"\xa2\x01\x84\x01\x18"]),
       data=st.binary(max_size=70))
def test_c_parser_equals_regex_on_random_bytes(prefix, data):
    c_parse_equals_regex(prefix + data)


def test_c_parser_equals_regex_at_every_head():
    """Every head byte with boundary arguments, in each of the eight fields."""
    fields = [uint_head(v) for v in (9, 7, 5, 0, 112488, 10, 0, 0)]
    # all-zero, one non-zero byte at each position, and the 23/24 boundary bytes
    args = [bytes(8)] + [bytes(k) + b"\x01" + bytes(7 - k) for k in range(8)] + [
        b"\x17" * 8, b"\x18" * 8, b"\xff" * 8]
    for i in range(8):
        for h in range(256):
            for a in args:
                f = list(fields)
                f[i] = bytes([h]) + a
                body = b"\xa2\x01\x84" + b"".join(f[:4]) + b"\x02\x84" + b"".join(f[4:])
                for cut in (0, 1, 5, 9):
                    c_parse_equals_regex(sign(body)[: len(body) + 8 - cut])


BOUNDS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
uints = st.one_of(st.sampled_from(BOUNDS), st.integers(0, 2**64 - 1))


@settings(max_examples=400, deadline=None)
@given(vals=st.lists(uints, min_size=8, max_size=8), alg=st.sampled_from([1, 2, 3, 0]),
       widths=st.lists(st.sampled_from([None, None, None, 0, 1, 2, 4, 8]), min_size=8, max_size=8),
       tlen=st.sampled_from([8, 16, 9]), pos=st.integers(-1, 60), val=st.integers(0, 255))
def test_short_path_equals_general_path(vals, alg, widths, tlen, pos, val):
    vals[0] = vals[0] & ~7 | alg
    items = []
    for v, w in zip(vals, widths):
        if w is not None and (w < 8 and v >= 1 << (8 * w) or w == 0 and v >= 24):
            w = None  # cannot hold v: shortest form
        items.append(uint_head(v, w))
    body = b"\xa2\x01\x84" + b"".join(items[:4]) + b"\x02\x84" + b"".join(items[4:])
    data = sign(body, tlen=tlen)
    took = short_vs_general(data)
    canonical = body == cbor2.dumps({1: vals[:4], 2: vals[4:]})
    in_range = (vals[0] <= 0xFFFF and vals[3] <= 0xFFFF and max(vals[4:7]) <= U32
                and vals[7] <= 0xFFFF)
    assert took == (canonical and in_range and wire.TAG_LEN.get(alg) == tlen)
    if pos >= 0:  # one byte changed anywhere, then truncations
        mutated = bytearray(data)
        mutated[pos % len(data)] = val
        short_vs_general(bytes(mutated))
        short_vs_general(sign(bytes(mutated[: len(body)]), tlen=tlen))
        for cut in (1, 2, tlen, len(body) - 1):
            short_vs_general(data[:-cut])


@settings(max_examples=60, deadline=None)
@given(dev=st.integers(0, U64), seq=st.integers(0, U64), status=st.integers(0, 0xFFFF),
       seal=st.binary(min_size=1, max_size=400))
def test_seal_frames_decode_identically(dev, seq, status, seal):
    buf = bytearray(512)
    n = fr.FrameEncoder(dev, KEY, 3).encode_seal_into(buf, seq, seal, status)
    data = bytes(buf[:n])
    assert host_decode(data) == edge_decode(data) == (dev, 3 << 3 | 1, seq, status, [], seal)
