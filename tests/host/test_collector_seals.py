"""The collector and daily seals: seal frames accepted and acked like slots, each seal checked
against the stored values with the public-key registry, its verdict kept in `seals`."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import frame as fr
from edge import p256, seal
from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS
from host_tools.collector import ingest, keys, store
from host_tools.seal import check, pubkeys

KEY = bytes(range(32))
DEV = 1001
PRIV = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
T0 = 1780000000.0  # 2026-05-28 18:26 JST
DAY_NO = (int(T0) - EDGE_EPOCH_UNIX) // SLOT_SECONDS // 48 - 1  # yesterday, JST
DAY = seal.day_code(DAY_NO)
PEER = ("127.0.0.1", 40000)


def _values():
    return {s: (s * 13, 0, 1 if s == 3 else 0) for s in range(1, 49)}


@pytest.fixture
def env(tmp_path):
    kr = keys.Keyring([keys.KeyEntry(DEV, 0, 1, KEY)])
    reg = pubkeys.Registry([pubkeys.PubKey(DEV, 0, p256.public_key(PRIV))])
    st = store.Store(str(tmp_path / "c.db"))
    ing = ingest.Ingest(st, lambda: kr, ingest.Policy(window=64), now=lambda: T0,
                        pubkeys=lambda: reg)
    yield ing, st, reg
    st.close()


def _slot_frames(values, seq0=1):
    enc = fr.FrameEncoder(DEV, KEY, 0)
    recs = [[DAY_NO * 48 + s - 1, v[0], v[1], v[2]] for s, v in sorted(values.items())]
    return [(enc.encode(seq0 + i, recs[i:i + 16]), PEER) for i in range(0, 48, 16)]


def _seal_frame(raw, seq):
    buf = bytearray(600)
    n = fr.FrameEncoder(DEV, KEY, 0).encode_seal_into(buf, seq, raw)
    return bytes(buf[:n])


def _acked(replies):
    out = []
    for _, data in replies:
        a = fr.decode_ack(data, lambda d, k: KEY)
        out += a.seqs if a.seqs else [a.upto]
    return out


def test_seal_frame_is_stored_verified_and_acked(env):
    ing, st, reg = env
    ing.process(_slot_frames(_values()))
    raw = seal.make_seal(DEV, PRIV, 0, DAY, 1, 48, _values())
    replies = ing.process([(_seal_frame(raw, 10), PEER)])
    assert _acked(replies) == [10]
    rows = st.seals(DEV)
    assert [(r.day, r.first_slot, r.n_slots, r.verdict, r.raw) for r in rows] == [(DAY, 1, 48, "verified", raw)]
    assert ing.stats["seals_verified"] == 1 and st.counters()["seals_received"] == 1
    assert st.count_frames() == 4  # the seal frame is kept for audit like any frame
    # resent (a lost ack): a new seq, the same seal: still one row, acked again
    replies = ing.process([(_seal_frame(raw, 11), PEER)])
    assert _acked(replies) == [11] and len(st.seals(DEV)) == 1
    # the very same frame again is a retransmission
    assert _acked(ing.process([(_seal_frame(raw, 11), PEER)])) == [11]
    assert [r.verdict for r in check.check_store(st, reg)] == ["PASS"]


def test_seal_disagreeing_with_stored_values_is_flagged_not_refused(env):
    ing, st, reg = env
    vals = _values()
    ing.process(_slot_frames(vals))
    sealed = dict(vals)
    sealed[17] = (999, 0, 0)  # the device sealed something else than it sent
    del sealed[30]
    raw = seal.make_seal(DEV, PRIV, 0, DAY, 1, 48, sealed)
    assert _acked(ing.process([(_seal_frame(raw, 10), PEER)])) == [10]
    (row,) = st.seals(DEV)
    assert row.verdict == "failed" and "slots 17, 30" in row.detail
    res = check.check_store(st, reg)
    assert [(r.verdict, r.failed_slots()) for r in res] == [("FAIL", [17, 30])]


def test_bad_signature_unknown_key_malformed_and_no_registry(env, tmp_path):
    ing, st, reg = env
    ing.process(_slot_frames(_values()))
    raw = bytearray(seal.make_seal(DEV, PRIV, 0, DAY, 1, 48, _values()))
    raw[-1] ^= 1
    ing.process([(_seal_frame(bytes(raw), 10), PEER)])
    assert st.seals(DEV)[0].verdict == "failed" and "signature" in st.seals(DEV)[0].detail
    other = seal.make_seal(DEV, PRIV, 5, DAY, 1, 20, _values())
    ing.process([(_seal_frame(other, 11), PEER)])
    row = [r for r in st.seals(DEV) if r.n_slots == 20][0]
    assert row.verdict == "failed" and "no public key 5" in row.detail
    replies = ing.process([(_seal_frame(b"\xa0not a seal", 12), PEER)])
    assert _acked(replies) == [12]  # authentic: acked so the device moves on, but logged
    assert [r.reason for r in st.rejections()] == ["seal_malformed"]
    assert ing.stats["seals_malformed"] == 1 and ing.stats["rejected"] == 0
    st2 = store.Store(str(tmp_path / "d.db"))
    ing2 = ingest.Ingest(st2, ing.keyring, ingest.Policy(window=64), now=lambda: T0)
    ing2.process([(_seal_frame(seal.make_seal(DEV, PRIV, 0, DAY, 1, 48, _values()), 1), PEER)])
    assert st2.seals(DEV)[0].verdict == "unchecked"
    st2.close()


@pytest.mark.parametrize("mode", ["c", "python", None])
def test_seal_frames_take_the_general_path_in_every_fast_path_mode(env, mode):
    ing, st, _ = env
    if mode == "c" and ingest._fastpath is None:
        pytest.skip("C fast path not built")
    ing.fast_path = mode
    ing.process(_slot_frames(_values()))
    raw = seal.make_seal(DEV, PRIV, 0, DAY, 1, 48, _values())
    assert _acked(ing.process([(_seal_frame(raw, 10), PEER)])) == [10]
    assert st.seals(DEV)[0].verdict == "verified"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(min_size=1, max_size=400),
                      st.builds(lambda pos, val: _mutated(pos, val), st.integers(0, 317),
                                st.integers(0, 255))))
def test_any_authenticated_seal_bytes_cost_one_seal_never_the_batch(env, data):
    ing, st_, _ = env
    seq = ing.stats["received"] + 100
    replies = ing.process([(_seal_frame(data, seq), PEER)])
    assert _acked(replies) == [seq]  # authentic: stored and acked whatever the seal says
    assert ing.stats["seals_received"] == (ing.stats["seals_verified"] + ing.stats["seals_failed"]
                                           + ing.stats["seals_malformed"])


_GOOD = seal.make_seal(DEV, PRIV, 0, DAY, 1, 48, _values())


def _mutated(pos, val):
    b = bytearray(_GOOD)
    b[pos % len(b)] = val
    return bytes(b)
