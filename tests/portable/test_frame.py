"""Frame schema v1 on both runtimes: golden bytes, decode reasons, acks, batching."""
# mp-heap: 128K
import json

from edge import frame as fr
from edge.cbor import dumps
from edge.errors import EdgeError
from edge.mac import HmacSha256


def _vectors():
    here = __file__.rsplit("/", 1)[0]
    with open(here + "/../vectors/frames_v1.json") as f:
        return json.load(f)


V = _vectors()
KEY = bytes.fromhex(V["key"])


def _lookup(d, k):
    return KEY


def _no_key(d, k):
    return None


def _reason(data, lookup=_lookup, ack=False):
    try:
        if ack:
            fr.decode_ack(data, lookup)
        else:
            fr.decode_frame(data, lookup)
    except fr.FrameError as e:
        return e.kind
    except Exception as e:  # anything else is a bug
        return "UNEXPECTED " + repr(e)
    return None


def _frame(name):
    for v in V["frames"]:
        if v["name"] == name:
            return v
    raise KeyError(name)


def test_golden_frames_encode_byte_for_byte_and_decode():
    assert len(V["frames"]) >= 8
    for v in V["frames"]:
        enc = fr.FrameEncoder(v["device_id"], KEY, v["key_no"], v["alg"])
        raw = enc.encode(v["seq"], v["records"], status=v["status"])
        assert raw == bytes.fromhex(v["hex"]), v["name"]
        assert len(raw) == v["size"] == enc.frame_size(v["seq"], v["records"], 0, len(v["records"]), v["status"])
        got = fr.decode_frame(raw, _lookup)
        assert got.device_id == v["device_id"] and got.seq == v["seq"], v["name"]
        assert got.status == v["status"] and got.records == v["records"], v["name"]
        assert got.kid == enc.kid and got.key_no == v["key_no"] and got.alg == v["alg"]


def test_golden_acks_encode_and_decode():
    for v in V["acks"]:
        raw = fr.encode_ack(KEY, v["device_id"], v["kid"], v["upto"], v["seqs"], v.get("time"))
        assert raw == bytes.fromhex(v["hex"]), v["name"]
        a = fr.decode_ack(raw, _lookup)
        assert (a.device_id, a.kid, a.upto, a.seqs) == (v["device_id"], v["kid"], v["upto"], v["seqs"])
        assert a.time == v.get("time"), v["name"]


def test_single_record_frames_fit_the_echonet_lite_38_bytes():
    # EPC 0xEA + 0xEB response: 12-byte header + 2 x 13 = 38 bytes, unauthenticated.
    worst = _frame("worst_single_2040")
    assert worst["device_id"] == 2**32 - 1 and worst["seq"] == 2**32 - 1
    assert worst["records"][0][1:] == [5000, 5000, 63] and worst["status"] == 15
    assert worst["size"] == 38
    for v in V["frames"]:
        if len(v["records"]) == 1:
            assert v["size"] <= 38 or v["alg"] == fr.ALG_HMAC_SHA256_128, v["name"]


def test_batch_extra_slot_costs_at_most_12_bytes():
    enc = fr.FrameEncoder(2**32 - 1, KEY)
    recs = []
    for i in range(48):
        recs.append([368207 + i, 5000, 5000, 63])
    prev = enc.frame_size(2**32 - 1, recs, 0, 1, 15)
    for n in range(2, 49):
        size = enc.frame_size(2**32 - 1, recs, 0, n, 15)
        assert size - prev <= 12
        prev = size
    assert prev == 38 + 47 * 9 + 1


def test_every_byte_flip_is_rejected():
    raw = bytes.fromhex(_frame("batch_3_consecutive")["hex"])
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        kind = _reason(bytes(bad))
        assert kind is not None and kind.startswith("frame_"), (i, kind)
    # flips inside the tag or inside an integer value are caught by the MAC
    assert _reason(raw[:-1] + bytes([raw[-1] ^ 1])) == "frame_bad_mac"


def test_rejection_reasons_are_distinct():
    good = bytes.fromhex(_frame("pv_export_2026")["hex"])
    assert _reason(good) is None
    assert _reason(good, _no_key) == "frame_unknown_key"
    assert _reason(good, lambda d, k: b"another key, 16+ bytes") == "frame_bad_mac"
    assert _reason(good[:-1]) == "frame_malformed"  # short tag
    assert _reason(good + b"\x00") == "frame_malformed"  # long tag
    assert _reason(good[:10]) == "frame_malformed"
    assert _reason(b"") == "frame_malformed"
    assert _reason("not bytes") == "frame_malformed"
    assert _reason(b"\x00" * 5000) == "frame_malformed"
    # same body re-MACed under a different schema version / algorithm id
    body_v2 = dumps({0: 2, 1: [1, 5, 1, 0], 2: [1, 2, 3, 0]})
    assert _reason(body_v2 + b"\x00" * 8) == "frame_unsupported_version"
    body_v1 = dumps({0: 1, 1: [1, 5, 1, 0], 2: [1, 2, 3, 0]})
    tag = HmacSha256(KEY).digest(body_v1)[:8]
    assert _reason(body_v1 + tag) is None  # an explicit version 1 is accepted
    for alg in (0, 3, 4, 5, 7):
        body = dumps({1: [8 | alg, 5, 1, 0], 2: [1, 2, 3, 0]})
        assert _reason(body + b"\x00" * 8) == "frame_unsupported_algorithm", alg


def test_well_formed_cbor_with_the_wrong_shape_is_malformed():
    def signed(body):
        return body + HmacSha256(KEY).digest(body)[:8]

    shapes = [
        [1, 2],
        {1: [1, 5, 1], 2: [1, 2, 3, 0]},  # header too short
        {1: [1, 5, 1, 0]},  # no records
        {1: [1, 5, 1, 0], 2: []},
        {1: [1, 5, 1, 0], 2: [1, 2, 3]},  # not a multiple of 4
        {1: [1, 5, 1, 0], 2: [1, 2, 3, 0, 0, 1, 1, 0]},  # dslot 0
        {1: [1, 5, 1, 0], 2: [1, -2, 3, 0]},  # negative Wh
        {1: [1, 5, 1, 0], 2: [1, 2, 3, 0x10000]},  # flags over 16 bits
        {1: [1, 5, 1, 0], 2: [2**32, 2, 3, 0]},  # slot over 32 bits
        {1: [1, 5, 1, 0], 2: [2**32 - 1, 2, 3, 0, 1, 0, 0, 0]},  # slot overflow by delta
        {1: [1, 5, 1, 0], 2: [1, True, 3, 0]},
        {1: [1, "5", 1, 0], 2: [1, 2, 3, 0]},
        {1: [1, 5, 1, 0x10000], 2: [1, 2, 3, 0]},
        {1: [1, 5, 1, 0], 2: [1, 2, 3, 0], 9: 0},  # unknown key
        {1: [1, 5, 1, 0], 2: [1, 2, 3, 0], "x": 0},
    ]
    for s in shapes:
        assert _reason(signed(dumps(s))) == "frame_malformed", s
    # non-deterministic CBOR is malformed too, even with a valid MAC
    unsorted = b"\xa2\x02" + dumps([1, 2, 3, 0]) + b"\x01" + dumps([1, 5, 1, 0])
    assert _reason(signed(unsorted)) == "frame_malformed"


def test_ack_rejections():
    v = V["acks"][0]
    raw = bytes.fromhex(v["hex"])
    assert _reason(raw, ack=True) is None
    assert _reason(raw, _no_key, ack=True) == "frame_unknown_key"
    assert _reason(raw[:-1] + bytes([raw[-1] ^ 0x80]), ack=True) == "frame_bad_mac"

    def signed(body):
        return body + HmacSha256(KEY).digest(body)[:8]

    for s in (
        {1: [1, 5]},  # neither upto nor seqs
        {1: [1, 5], 4: []},
        {1: [1, 5], 3: 10, 4: [10]},  # seq not above upto
        {1: [1, 5], 4: [3, 2]},
        {1: [1, 5, 7], 3: 1},
        {1: [1, 5], 3: -1},
    ):
        assert _reason(signed(dumps(s)), ack=True) == "frame_malformed", s


def test_ack_covers():
    a = fr.decode_ack(bytes.fromhex(V["acks"][2]["hex"]), _lookup)
    assert a.covers(0) and a.covers(100) and a.covers(102) and a.covers(4000000000)
    assert not a.covers(101) and not a.covers(103)


def test_key_rotation_selects_the_key_by_kid():
    old = b"old key 16 bytes"
    new = b"new key 16 bytes"
    keys = {(5, fr.make_kid(0)): old, (5, fr.make_kid(1)): new}

    def lookup(d, k):
        return keys.get((d, k))

    a = fr.FrameEncoder(5, old, 0).encode(1, [[10, 1, 0, 0]])
    b = fr.FrameEncoder(5, new, 1).encode(2, [[11, 1, 0, 0]])
    assert fr.decode_frame(a, lookup).key_no == 0
    assert fr.decode_frame(b, lookup).key_no == 1
    del keys[(5, fr.make_kid(0))]
    assert _reason(a, lookup) == "frame_unknown_key"
    # a precomputed HmacSha256 is accepted in place of raw key bytes (collector speed)
    assert fr.decode_frame(b, lambda d, k: HmacSha256(new)).seq == 2


def test_encoder_argument_errors_are_typed():
    def kind(fn):
        try:
            fn()
        except EdgeError as e:
            return e.kind
        return None

    enc = fr.FrameEncoder(1, KEY)
    assert kind(lambda: fr.FrameEncoder(1, b"short")) == "frame_bad_value"
    assert kind(lambda: fr.FrameEncoder(-1, KEY)) == "frame_bad_value"
    assert kind(lambda: fr.FrameEncoder(1, KEY, fr.MAX_KEY_NO + 1)) == "frame_bad_value"
    assert kind(lambda: fr.FrameEncoder(1, KEY, 0, 4)) == "frame_unsupported_algorithm"
    assert kind(lambda: enc.encode(1, [[5, 0, 0, 0], [5, 0, 0, 0]])) == "frame_bad_value"
    assert kind(lambda: enc.encode(1, [[5, -1, 0, 0]])) == "frame_bad_value"
    assert kind(lambda: enc.encode(1, [[5, 0, 2**32, 0]])) == "frame_bad_value"
    assert kind(lambda: enc.encode(1, [[5, 0, 0, 0x10000]])) == "frame_bad_value"
    assert kind(lambda: enc.encode(-1, [[5, 0, 0, 0]])) == "frame_bad_value"
    assert kind(lambda: enc.encode(1, [[5, 0, 0, 0]], status=0x10000)) == "frame_bad_value"
    assert kind(lambda: enc.encode(1, [])) == "frame_bad_value"
    assert kind(lambda: enc.encode_into(bytearray(20), 1, [[5, 0, 0, 0]])) == "frame_too_large"
    assert kind(lambda: fr.encode_ack(KEY, 1, 1)) == "frame_bad_value"
    assert kind(lambda: fr.encode_ack(KEY, 1, 1, 5, [5])) == "frame_bad_value"


def test_fits_and_plan_split_a_week_backlog():
    enc = fr.FrameEncoder(2**32 - 1, KEY)
    recs = []
    for i in range(336):
        recs.append((368207 - 336 + i, 5000, 0, 0))
    n = enc.fits(100, 7, recs)
    assert enc.frame_size(7, recs, 0, n) <= 100 < enc.frame_size(7, recs, 0, n + 1)
    plan = fr.plan_frames(enc, 100, 7, recs)
    total = 0
    for i in range(len(plan)):
        seq, start, count = plan[i]
        assert seq == 7 + i and start == total
        assert enc.frame_size(seq, recs, start, count) <= 100
        total += count
    assert total == 336
    assert enc.fits(100, 7, recs, 336) == 0


def _bignum_head(nbytes):
    """CBOR tag 2 (positive bignum) of nbytes 0xff bytes: ~4,300 decimal digits at 1,790."""
    return b"\xc2\x59" + bytes((nbytes >> 8, nbytes & 255)) + b"\xff" * nbytes


def test_decode_raises_only_frame_error_on_hostile_bignums():
    """Regression: a bignum version or key made decode_ack raise ValueError (CPython's
    int-to-str limit in the message), which agent._on_udp (catching EdgeError) let through."""
    big = _bignum_head(1790)
    tail = bytes(8)
    for data in (b"\xa1\x00" + big + tail,  # {0: bignum}: the version
                 b"\xa2" + big + b"\x00\x01\x82\x01\x05" + tail,  # a bignum key
                 b"\xa1\x01\x82\x01" + big + tail,  # bignum device id
                 b"\xa2\x01\x82\x01\x05\x03" + big + tail):  # bignum upto
        for ack in (True, False):
            r = _reason(data, ack=ack)
            assert r is not None and not r.startswith("UNEXPECTED"), (ack, r)


def test_decode_ack_fuzz_raises_only_frame_error():
    """Random and mutated acks (a portable LCG: same bytes on both runtimes): only FrameError."""
    seed = [12345]

    def rnd(n):
        seed[0] = (seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return seed[0] % n

    good = [bytes.fromhex(v["hex"]) for v in V["acks"]]
    pieces = (_bignum_head(40), _bignum_head(1790), b"\xc3\x41\x01", b"\x9f", b"\xff", b"\xd8\x1c",
              b"\xfb" + bytes(8), b"\x81" * 40, b"\x1b" + b"\xff" * 8, b"\x7f\x61a\xff")
    for i in range(600):
        b = bytearray(good[rnd(len(good))])
        k = rnd(4)
        if k == 0:
            b[rnd(len(b))] = rnd(256)
        elif k == 1:
            b = b[: rnd(len(b))]
        elif k == 2:
            j = rnd(len(b))
            b = b[:j] + pieces[rnd(len(pieces))] + b[j:]
        else:
            b = bytearray(rnd(256) for _ in range(rnd(40)))
        r = _reason(bytes(b), ack=True)
        assert r is None or r.startswith("frame_"), (bytes(b), r)


def test_seal_frames_round_trip_and_refuse_mixed_or_empty_bodies():
    enc = fr.FrameEncoder(5, KEY, 0)
    seal = bytes(range(200)) + bytes(118)  # any bytes: the frame does not look inside
    buf = bytearray(400)
    n = enc.encode_seal_into(buf, 77, seal, 2)
    assert n == enc.seal_frame_size(77, len(seal), 2)
    raw = bytes(buf[:n])
    # the body is the deterministic encoding of {1: header, 5: seal}, then the 8-byte tag
    assert raw[:-8] == dumps({1: [1, 5, 77, 2], 5: seal})
    f = fr.decode_frame(raw, _lookup)
    assert f.seal == seal and f.records == [] and (f.device_id, f.seq, f.status) == (5, 77, 2)
    assert fr.decode_frame(bytes.fromhex(V["frames"][0]["hex"]), _lookup).seal is None
    bad = bytearray(raw)
    bad[40] ^= 1
    assert _reason(bytes(bad)) == "frame_bad_mac"

    def signed(body):
        return body + HmacSha256(KEY).digest(body)[:8]

    for s in ({1: [1, 5, 1, 0], 5: b""}, {1: [1, 5, 1, 0], 5: "text"},
              {1: [1, 5, 1, 0], 2: [1, 2, 3, 0], 5: b"x"}, {1: [1, 5, 1, 0], 5: 7}):
        assert _reason(signed(dumps(s))) == "frame_malformed", s
    try:
        enc.encode_seal_into(bytearray(100), 1, seal)
    except fr.FrameError as e:
        assert e.kind == "frame_too_large"
    else:
        raise AssertionError("a seal frame larger than the buffer was written")
