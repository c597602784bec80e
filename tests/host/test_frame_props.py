"""Frame schema v1 against an independent construction (cbor2 + stdlib hmac), by property.

tests/vectors/frames_v1.json is checked here against that construction, so the golden bytes
the portable tests (and MicroPython) compare with are not just edge/frame.py's own output.
Regenerate after a deliberate schema change: SMETER_REGEN_VECTORS=1 pytest this file.
"""
import datetime
import hashlib
import hmac
import json
import os

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import frame as fr
from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS

VECTORS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "vectors", "frames_v1.json")
JST = datetime.timezone(datetime.timedelta(hours=9))
KEY = bytes(range(0x40, 0x60))
U32 = 2**32 - 1


def slot_at(y, mo, d, h, mi):
    t = int(datetime.datetime(y, mo, d, h, mi, tzinfo=JST).timestamp())
    return (t - EDGE_EPOCH_UNIX) // SLOT_SECONDS


SLOT_2026 = slot_at(2026, 6, 1, 12, 0)
SLOT_2040 = slot_at(2040, 12, 31, 23, 30)


def independent_frame(key, device_id, kid, seq, status, records):
    """The schema as docs/frames.md states it, built with cbor2 and hmac."""
    flat = []
    prev = None
    for slot, imp, exp, flags in records:
        flat += [slot if prev is None else slot - prev, imp, exp, flags]
        prev = slot
    body = cbor2.dumps({1: [kid, device_id, seq, status], 2: flat}, canonical=True)
    tlen = {1: 8, 2: 16}[kid & 7]
    return body + hmac.new(key, body, hashlib.sha256).digest()[:tlen]


def independent_ack(key, device_id, kid, upto, seqs, time=None):
    m = {1: [kid, device_id]}
    if upto is not None:
        m[3] = upto
    if seqs:
        m[4] = list(seqs)
    if time is not None:
        m[6] = list(time)
    body = cbor2.dumps(m, canonical=True)
    return body + hmac.new(key, body, hashlib.sha256).digest()[: {1: 8, 2: 16}[kid & 7]]


def vector_cases():
    s = SLOT_2026
    frames = [
        ("pv_export_2026", 1234567, 0, 1, 42, 0, [[s, 0, 1234, 0]]),
        ("worst_single_2040", U32, 0, 1, U32, 15, [[SLOT_2040, 5000, 5000, 63]]),
        ("typical_single_2040", U32, 0, 1, U32, 0, [[SLOT_2040, 0, 5000, 0]]),
        ("batch_3_consecutive", 7, 0, 1, 100, 0, [[s, 10, 0, 0], [s + 1, 250, 0, 1], [s + 2, 0, 4999, 8]]),
        ("batch_with_gaps", 7, 0, 1, 101, 1, [[s, 1, 2, 0], [s + 5, 3, 4, 2], [s + 305, 5, 6, 4]]),
        ("alg2_16_byte_tag", 99, 0, 2, 5, 0, [[s, 100, 0, 0]]),
        ("key_no_5_rotated", 99, 5, 1, 6, 0, [[s, 100, 0, 0]]),
        ("zero_everything", 0, 0, 1, 0, 0, [[0, 0, 0, 0]]),
    ]
    acks = [
        ("ack_upto", U32, 0, 1, 100, []),
        ("ack_seqs", 7, 0, 1, None, [101, 103, 200]),
        ("ack_upto_and_seqs", 7, 3, 1, 100, [102, 4000000000]),
        # the collector's time (key 6) for a frame with status bit ST_TIME_REQUEST: the
        # steady-state ack of one seq, at 2026-12-03 12:00:00.999 JST and 2040-12-31 23:59:59.000
        ("ack_seq_with_time", U32, 0, 1, None, [U32], (slot_at(2026, 12, 3, 12, 0) * 1800, 999)),
        ("ack_upto_with_time", 7, 0, 1, 100, [], (SLOT_2040 * 1800 + 1799, 0)),
    ]
    return frames, acks


def build_vectors():
    frames, acks = vector_cases()
    out = {
        "source": "Built by tests/host/test_frame_props.py with cbor2 + stdlib hmac (independent of "
        "edge/frame.py); schema in docs/frames.md.",
        "key": KEY.hex(),
        "frames": [],
        "acks": [],
    }
    for name, dev, key_no, alg, seq, status, records in frames:
        kid = (key_no << 3) | alg
        raw = independent_frame(KEY, dev, kid, seq, status, records)
        out["frames"].append(
            {"name": name, "device_id": dev, "key_no": key_no, "alg": alg, "seq": seq,
             "status": status, "records": records, "size": len(raw), "hex": raw.hex()}
        )
    for name, dev, key_no, alg, upto, seqs, *tm in acks:
        kid = (key_no << 3) | alg
        raw = independent_ack(KEY, dev, kid, upto, seqs, *tm)
        v = {"name": name, "device_id": dev, "kid": kid, "upto": upto, "seqs": seqs,
             "size": len(raw), "hex": raw.hex()}
        if tm:
            v["time"] = list(tm[0])
        out["acks"].append(v)
    return out


def test_golden_vectors_match_the_independent_construction():
    built = build_vectors()
    if os.environ.get("SMETER_REGEN_VECTORS"):
        with open(VECTORS, "w") as f:
            json.dump(built, f, indent=1)
    with open(VECTORS) as f:
        stored = json.load(f)
    assert stored == built


def test_realistic_worst_case_sizes():
    # 10 kW device (5,000 Wh per slot both ways), device id and seq 2**32-1, year 2040,
    # every status bit and every integrator flag set: still inside ECHONET Lite's 38 bytes.
    assert SLOT_2040 == 368207
    enc = fr.FrameEncoder(U32, KEY)
    worst = [[SLOT_2040 + i, 5000, 5000, 63] for i in range(64)]
    assert enc.frame_size(U32, worst, 0, 1, status=15) == 38
    assert enc.frame_size(U32, worst, 0, 1, status=0) == 38
    assert enc.frame_size(U32, [[SLOT_2040, 5000, 5000, 0]], 0, 1) == 37
    sizes = [enc.frame_size(U32, worst, 0, n, status=15) for n in range(1, 65)]
    steps = [b - a for a, b in zip(sizes, sizes[1:])]
    assert max(steps) <= 12
    assert steps[0] == 9  # dslot 1 + 3 + 3 + flags 2
    assert sizes[47] == 38 + 47 * 9 + 1  # a full day: array head grows once (6+ records)
    # a long gap (dslot >= 256) plus 16-bit flags is the per-slot maximum: 3 + 3 + 3 + 3
    gap = [[SLOT_2040, 5000, 5000, 0xFFFF], [SLOT_2040 + 300, 5000, 5000, 0xFFFF]]
    assert enc.frame_size(0, gap, 0, 2) - enc.frame_size(0, gap, 0, 1) == 12


records_st = st.lists(
    st.tuples(
        st.integers(1, 70000),  # dslot
        st.integers(0, U32),
        st.integers(0, U32),
        st.integers(0, 0xFFFF),
    ),
    min_size=1,
    max_size=30,
).map(lambda rs: _absolute(rs))


def _absolute(rs):
    out = []
    slot = 0
    for d, imp, exp, fl in rs:
        slot += d
        out.append([slot, imp, exp, fl])
    return out


@settings(max_examples=200, deadline=None)
@given(
    dev=st.integers(0, 2**64 - 1),
    key_no=st.integers(0, fr.MAX_KEY_NO),
    alg=st.sampled_from([1, 2]),
    seq=st.integers(0, 2**64 - 1),
    status=st.integers(0, 0xFFFF),
    records=records_st,
    key=st.binary(min_size=16, max_size=100),
)
def test_encoder_matches_independent_construction_and_round_trips(dev, key_no, alg, seq, status, records, key):
    enc = fr.FrameEncoder(dev, key, key_no, alg)
    raw = enc.encode(seq, records, status=status)
    assert raw == independent_frame(key, dev, enc.kid, seq, status, records)
    assert len(raw) == enc.frame_size(seq, records, 0, len(records), status)
    got = fr.decode_frame(raw, lambda d, k: key if (d, k) == (dev, enc.kid) else None)
    assert (got.device_id, got.seq, got.status, got.kid) == (dev, seq, status, enc.kid)
    assert got.records == records
    assert got.alg == alg and got.key_no == key_no
    # the collector may decode the body with cbor2 alone, or use it as decode_frame's codec
    assert cbor2.loads(raw[: got.body_len])[2][0] == records[0][0]
    fast = fr.decode_frame(raw, lambda d, k: key if (d, k) == (dev, enc.kid) else None, cbor2)
    assert fast.__dict__ == got.__dict__


@settings(max_examples=200, deadline=None)
@given(records=records_st, max_payload=st.integers(60, 1280), seq=st.integers(0, 2**40))
def test_batches_split_to_fit_and_never_truncate(records, max_payload, seq):
    enc = fr.FrameEncoder(424242, KEY)
    plan = fr.plan_frames(enc, max_payload, seq, records)
    got = []
    for i, (s, start, count) in enumerate(plan):
        assert s == seq + i and count >= 1
        raw = enc.encode(s, records, start, count)
        assert len(raw) <= max_payload
        if start + count < len(records):  # greedy: one more record would not have fit
            assert enc.frame_size(s, records, start, count + 1) > max_payload
        got += fr.decode_frame(raw, lambda d, k: KEY).records
    assert got == records


def test_payload_below_a_one_slot_frame_raises_instead_of_truncating():
    enc = fr.FrameEncoder(1, KEY)
    recs = [[SLOT_2040, 5000, 5000, 0]]
    need = enc.frame_size(1, recs)
    with pytest.raises(fr.FrameError) as e:
        enc.fits(need - 1, 1, recs)
    assert e.value.kind == "frame_too_large"
    assert enc.fits(need, 1, recs) == 1


@settings(max_examples=200, deadline=None)
@given(
    dev=st.integers(0, 2**64 - 1),
    upto=st.one_of(st.none(), st.integers(0, 2**63)),
    extra=st.lists(st.integers(1, 1000), max_size=20, unique=True),
)
def test_ack_matches_independent_construction(dev, upto, extra):
    base = -1 if upto is None else upto
    seqs = sorted(base + e for e in extra)
    if upto is None and not seqs:
        return
    kid = fr.make_kid(2)
    raw = fr.encode_ack(KEY, dev, kid, upto, seqs)
    assert raw == independent_ack(KEY, dev, kid, upto, seqs)
    a = fr.decode_ack(raw, lambda d, k: KEY if d == dev else None)
    assert (a.device_id, a.kid, a.upto, a.seqs) == (dev, kid, upto, seqs)
    for s in seqs:
        assert a.covers(s)


def test_ack_and_data_frames_cannot_be_swapped():
    enc = fr.FrameEncoder(9, KEY)
    data = enc.encode(3, [[SLOT_2026, 1, 2, 0]])
    ack = fr.encode_ack(KEY, 9, enc.kid, upto=3)
    with pytest.raises(fr.FrameError) as e:
        fr.decode_ack(data, lambda d, k: KEY)
    assert e.value.kind == "frame_malformed"
    with pytest.raises(fr.FrameError) as e:
        fr.decode_frame(ack, lambda d, k: KEY)
    assert e.value.kind == "frame_malformed"


def test_cbor2_codec_path_is_as_strict_as_the_edge_decoder():
    def signed(body):
        return body + hmac.new(KEY, body, hashlib.sha256).digest()[:8]

    hdr = cbor2.dumps([1, 5, 1, 0])
    recs = cbor2.dumps([10, 1, 2, 0])
    bad_bodies = [
        b"\xa3\x01" + hdr + b"\x01" + hdr + b"\x02" + recs,  # duplicate key 1
        b"\xa2\x02" + recs + b"\x01" + hdr,  # unsorted keys
        b"\xa2\x18\x01" + hdr + b"\x02" + recs,  # key 1 in a long head
        b"\xbf\x01" + hdr + b"\x02" + recs + b"\xff",  # indefinite map
    ]
    for body in bad_bodies:
        for codec in (None, cbor2):
            with pytest.raises(fr.FrameError) as e:
                fr.decode_frame(signed(body), lambda d, k: KEY, codec)
            assert e.value.kind == "frame_malformed", (body.hex(), codec)
    good = signed(b"\xa2\x01" + hdr + b"\x02" + recs)
    assert fr.decode_frame(good, lambda d, k: KEY, cbor2).records == [[10, 1, 2, 0]]
    with pytest.raises(fr.FrameError) as e:
        fr.decode_frame(good + b"\x00", lambda d, k: KEY, cbor2)
    assert e.value.kind == "frame_malformed"


junk = st.one_of(
    st.none(), st.integers(-(2**70), 2**70), st.text(max_size=3), st.binary(max_size=3),
    st.floats(allow_nan=False), st.lists(st.integers(-5, 2**33), max_size=5),
)


@settings(max_examples=200, deadline=None)
@given(
    seq=junk, status=junk, start=junk, count=junk, max_payload=junk,
    records=st.one_of(st.lists(st.one_of(junk, st.lists(junk, max_size=5)), max_size=4), junk),
)
def test_encoder_api_raises_only_frame_errors(seq, status, start, count, max_payload, records):
    enc = fr.FrameEncoder(77, KEY)
    buf = bytearray(128)
    for call in (
        lambda: enc.frame_size(seq, records, start, count, status),
        lambda: enc.fits(max_payload, seq, records, start, status),
        lambda: enc.encode_into(buf, seq, records, start, count, status),
        lambda: enc.encode(seq, records, start, count, status),
        lambda: fr.plan_frames(enc, max_payload, seq, records, status),
    ):
        try:
            call()
        except fr.FrameError as e:
            assert e.kind in ("frame_bad_value", "frame_too_large")


def test_bound_code_costs_one_byte_on_an_estimated_slot_only():
    # The attribution bound (docs/frames.md) rides in flags bits 8..12 of estimated slots only.
    from edge.flags import ALL, BOUND_SHIFT, BOUND_UNKNOWN, ESTIMATED

    enc = fr.FrameEncoder(U32, KEY)
    exact = [[SLOT_2040, 5000, 5000, 63]]
    est = [[SLOT_2040, 5000, 5000, ALL | BOUND_UNKNOWN << BOUND_SHIFT]]
    assert enc.frame_size(U32, exact, 0, 1, status=15) == 38
    assert enc.frame_size(U32, est, 0, 1, status=15) == 39
    one = [[SLOT_2040, 5000, 5000, ESTIMATED | 1 << BOUND_SHIFT]]
    assert enc.frame_size(U32, one, 0, 1) == 39
    frame = enc.encode(1, est)
    assert fr.decode_frame(frame, lambda d, k: KEY).records[0][3] == est[0][3]
