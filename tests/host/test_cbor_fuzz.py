"""Fuzz the decoders: random and mutated bytes may only raise CborError / FrameError.

The default run is a small sample (CI runs it every time). A long run:
    SMETER_FUZZ_EXAMPLES=20000 SMETER_FUZZ_ITER=1000000 \
        .venv/bin/python -m pytest -q -m fuzz --timeout=0 tests/host/test_cbor_fuzz.py
(hypothesis examples per test, and iterations of the plain seeded loop, which is cheaper
per case and so reaches millions of inputs).
Differential check: whatever edge/cbor.py accepts, cbor2 decodes to the same value.
"""
import os
import random

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest

from edge import cbor
from edge import frame as fr

EXAMPLES = int(os.environ.get("SMETER_FUZZ_EXAMPLES", "250"))
ITERATIONS = int(os.environ.get("SMETER_FUZZ_ITER", "3000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
KEY = b"fuzzing key: 32 bytes, fixed...."

pytestmark = pytest.mark.fuzz

SEEDS = [
    cbor.dumps({1: [1, 2**32 - 1, 7, 0], 2: [368207, 5000, 5000, 63, 1, 0, 10, 0]}),
    cbor.dumps([b"\x00\x01", "text", -(2**70), {"k": None, 3: [True, False]}]),
    bytes.fromhex("c249010000000000000000"),
    bytes.fromhex("a26161016162820203"),
]
ENC = fr.FrameEncoder(2**32 - 1, KEY)
FRAMES = [
    ENC.encode(2**32 - 1, [[368207, 5000, 5000, 63]], status=15),
    ENC.encode(5, [[368207 + i, i, 2 * i, i % 64] for i in range(12)]),
    fr.encode_ack(KEY, 2**32 - 1, ENC.kid, 100, [102, 104]),
]


def _mutate(data, ops):
    b = bytearray(data)
    for kind, pos, val in ops:
        if not b:
            b.append(val)
            continue
        i = pos % len(b)
        if kind == 0:
            b[i] ^= 1 << (val % 8)
        elif kind == 1:
            b[i] = val
        elif kind == 2:
            b.insert(i, val)
        elif kind == 3:
            del b[i]
        else:
            del b[i:]
    return bytes(b)


ops_st = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4
)


def _check_cbor(data):
    try:
        v = cbor.loads(data)
    except cbor.CborError as e:
        assert e.kind.startswith("cbor_")
        return
    assert cbor2.loads(data) == v  # differential: the reference agrees
    assert cbor.dumps(v) == data  # strict decoding accepts only the deterministic form


@FUZZ
@given(st.binary(max_size=64))
def test_random_bytes(data):
    _check_cbor(data)


@FUZZ
@given(st.sampled_from(SEEDS), ops_st)
def test_mutated_cbor(seed, ops):
    _check_cbor(_mutate(seed, ops))


@FUZZ
@given(st.sampled_from(FRAMES), ops_st)
def test_mutated_frames_are_always_rejected(seed, ops):
    data = _mutate(seed, ops)
    if data == seed:
        return
    for decode in (fr.decode_frame, fr.decode_ack):
        for codec in (None, cbor2):
            try:
                decode(data, lambda d, k: KEY, codec)
            except fr.FrameError as e:
                assert e.kind.startswith("frame_")
            else:
                raise AssertionError("accepted a mutated frame: " + data.hex())


@FUZZ
@given(st.binary(max_size=80))
def test_random_frames_are_rejected(data):
    for decode in (fr.decode_frame, fr.decode_ack):
        for codec in (None, cbor2):
            try:
                decode(data, lambda d, k: KEY, codec)
            except fr.FrameError:
                pass
            else:
                raise AssertionError("accepted random bytes as a frame")


def _outcome(decode, data, codec):
    try:
        r = decode(data, lambda d, k: KEY if k != 9 else None, codec)
    except fr.FrameError as e:
        return ("error", e.kind in ("frame_unknown_key", "frame_bad_mac"))
    return ("ok", r.__dict__ if not hasattr(r, "covers") else (r.upto, r.seqs))


def _resign(data):
    """Re-MAC a mutated body so the mutation reaches the structural checks."""
    try:
        _, end = cbor.loads_prefix(data, 0, strict=False)
    except cbor.CborError:
        return data
    return data[:end] + fr.HmacSha256(KEY).digest(data[:end])[:8]


@FUZZ
@given(st.sampled_from(FRAMES), ops_st)
def test_cbor2_fast_path_agrees_with_the_edge_decoder(seed, ops):
    data = _resign(_mutate(seed, ops))
    for decode in (fr.decode_frame, fr.decode_ack):
        assert _outcome(decode, data, None) == _outcome(decode, data, cbor2), data.hex()


def test_seeded_mutation_loop():
    """Plain seeded loop: random mutations of frames, acks and CBOR seeds, plus random bytes."""
    rng = random.Random(int(os.environ.get("SMETER_FUZZ_SEED", "2026")))
    seeds = FRAMES + SEEDS
    counts = {}
    for i in range(ITERATIONS):
        if i % 5 == 0:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 48)))
        else:
            ops = [(rng.randrange(5), rng.randrange(10**6), rng.randrange(256)) for _ in range(rng.randrange(1, 4))]
            data = _mutate(rng.choice(seeds), ops)
        _check_cbor(data)
        for decode in (fr.decode_frame, fr.decode_ack):
            try:
                decode(data, lambda d, k: KEY)
            except fr.FrameError as e:
                counts[e.kind] = counts.get(e.kind, 0) + 1
            else:
                assert data in FRAMES, data.hex()
    assert "frame_bad_mac" in counts and "frame_malformed" in counts
