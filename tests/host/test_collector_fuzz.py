"""Fuzz the collector's full verify path with malformed, truncated, oversized and mutated frames.

Every datagram must be rejected with a known reason, nothing may raise, and the values and
frames tables must stay empty. The default suite runs a 3,000-datagram sample each time;
the full run (>= 100,000) is selected by its marker:

    .venv/bin/python -m pytest -m fuzz tests/host/test_collector_fuzz.py
    SMETER_FUZZ_N=1000000 SMETER_FUZZ_SEED=7 .venv/bin/python -m pytest -m fuzz tests/host/test_collector_fuzz.py
"""
import os
import random

import cbor2
import pytest

from edge import frame as fr
from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS
from host_tools.collector import ingest, keys, store

KEY = bytes(range(7, 39))
DEVS = (1, 2, 2**64 - 1)
NOW = 1780000000.0
SLOT = (int(NOW) - EDGE_EPOCH_UNIX) // SLOT_SECONDS - 1


def _valid_frames(rng, n):
    out = []
    for i in range(n):
        dev = rng.choice(DEVS)
        alg = rng.choice((1, 2))
        recs = []
        s = SLOT - rng.randrange(0, 300)
        for _ in range(rng.randrange(1, 8)):
            recs.append([s, rng.randrange(0, 2**32), rng.randrange(0, 5000), rng.randrange(0, 64)])
            s += rng.randrange(1, 3)
        out.append(fr.FrameEncoder(dev, KEY, 0, alg).encode(rng.randrange(0, 2**40), recs))
    return out


def _random_cbor(rng, depth=0):
    k = rng.randrange(9 if depth < 4 else 5)
    if k == 0:
        return rng.randrange(-(2**64), 2**64)
    if k == 1:
        return rng.randbytes(rng.randrange(0, 12))
    if k == 2:
        return rng.choice((True, False, None, 1.5, "x", -1))
    if k == 3:
        return rng.randrange(0, 30)
    if k == 4:
        return cbor2.CBORTag(rng.choice((0, 1, 2, 3, 24, 28, 29, 55799, 258)), rng.randrange(0, 99))
    if k in (5, 6):
        return [_random_cbor(rng, depth + 1) for _ in range(rng.randrange(0, 6))]
    return {rng.randrange(-2, 6): _random_cbor(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def malformed(rng, valid):
    """One malformed datagram (never one of the valid frames, e.g. a splice at one point)."""
    while True:
        d = _mutant(rng, valid)
        if d not in valid:
            return d


def _mutant(rng, valid):
    f = rng.choice(valid)
    kind = rng.randrange(10)
    if kind == 0:  # random bytes
        return rng.randbytes(rng.randrange(0, 64))
    if kind == 1:  # truncated
        return f[: rng.randrange(0, len(f))]
    if kind == 2:  # oversized: a valid frame padded, or plain junk over the limit
        return f + rng.randbytes(rng.randrange(2048 - len(f) + 1, 4000 - len(f)))
    if kind == 3:  # bit flips anywhere
        b = bytearray(f)
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == 4:  # byte replaced / inserted / deleted
        b = bytearray(f)
        i = rng.randrange(len(b))
        op = rng.randrange(3)
        if op == 0:
            b[i] = rng.randrange(256)
            if bytes(b) == f:
                b[i] ^= 0xFF
        elif op == 1:
            b.insert(i, rng.randrange(256))
        else:
            del b[i]
        return bytes(b)
    if kind == 5:  # random CBOR structures with a tag-sized tail
        try:
            body = cbor2.dumps(_random_cbor(rng))
        except Exception:
            body = b"\xf7"
        return body + rng.randbytes(rng.choice((0, 8, 16)))
    if kind == 6:  # frame-shaped body with hostile field values and a random tag
        hdr = [rng.choice((9, 1, 0x10001, -1, 3)), rng.choice(DEVS + (-5, 2**64)),
               rng.choice((0, 2**64, -1, "s", 1.0)), rng.choice((0, 2**16, None))]
        recs = [rng.choice((0, -1, 2**32, 2**33, b"", [])) for _ in range(rng.randrange(0, 9))]
        return cbor2.dumps({1: hdr[: rng.randrange(0, 5)], 2: recs}) + rng.randbytes(8)
    if kind == 7:  # two frames spliced
        g = rng.choice(valid)
        return f[: rng.randrange(1, len(f))] + g[rng.randrange(0, len(g)) :]
    if kind == 8:  # well-formed frame under an unknown device or key number
        dev = rng.choice((3, 4, 2**63))
        return fr.FrameEncoder(dev, KEY, rng.randrange(0, 50)).encode(1, [[SLOT, 1, 0, 0]])
    # valid structure signed with the wrong key
    return fr.FrameEncoder(rng.choice(DEVS), bytes(32), 0).encode(rng.randrange(99), [[SLOT, 1, 0, 0]])


def run_fuzz(tmp_path, n, seed):
    rng = random.Random(seed)
    valid = _valid_frames(rng, 64)
    kr = keys.Keyring([keys.KeyEntry(d, 0, a, KEY) for d in DEVS for a in (1, 2)])
    st = store.Store(str(tmp_path / "fuzz.db"))
    ing = ingest.Ingest(st, lambda: kr, ingest.Policy(max_raw=64), now=lambda: NOW)
    ing.log = None
    sent = 0
    while sent < n:
        batch = [(malformed(rng, valid), ("127.0.0.1", 9)) for _ in range(min(2000, n - sent))]
        assert ing.process(batch) == []
        sent += len(batch)
    s = ing.stats
    assert s["received"] == n and s["rejected"] == n and s["accepted"] == 0
    assert s["duplicate_frames"] == 0
    assert st.count_values() == 0 and st.count_frames() == 0
    reasons = dict(st.db.execute("SELECT reason, count(*) FROM rejections GROUP BY reason"))
    assert sum(reasons.values()) == n
    assert set(reasons) <= set(ingest.REASONS), reasons
    assert st.db.execute("SELECT max(length(raw)) FROM rejections").fetchone()[0] <= 64
    # the fuzz reached deep into the pipeline, not only the CBOR decoder
    for r in ("bad_mac", "unknown_key", "oversized", "malformed_cbor", "bad_schema",
              "non_canonical", "bad_tag_length"):
        assert reasons.get(r, 0) > 0, (r, reasons)
    # and the collector still works afterwards
    ok = fr.FrameEncoder(1, KEY).encode(2**41, [[SLOT, 5, 0, 0]])
    assert len(ing.process([(ok, None)])) == 1 and st.count_values() == 1
    st.close()
    return reasons


def test_fuzz_sample(tmp_path):
    run_fuzz(tmp_path, 3000, 12345)


@pytest.mark.fuzz
def test_fuzz_full(tmp_path, request):
    if "fuzz" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("full fuzz runs only when selected: pytest -m fuzz " + __file__)
    n = int(os.environ.get("SMETER_FUZZ_N", "100000"))
    seed = int(os.environ.get("SMETER_FUZZ_SEED", "1"))
    assert n >= 100000 or "SMETER_FUZZ_N" in os.environ
    reasons = run_fuzz(tmp_path, n, seed)
    print("fuzz %d datagrams, seed %d: %s" % (n, seed, reasons))
