"""The collector's batch pipeline (ingest.py) with a real SQLite store and device-made frames."""
import os
import sqlite3

import pytest

from edge import frame as fr
from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS
from host_tools.collector import ingest, keys, store, wire

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
DEV = 1001
T0 = 1780000000.0  # 2026-05-28 (unix): the collector's clock in these tests
SLOT_NOW = (int(T0) - EDGE_EPOCH_UNIX) // SLOT_SECONDS - 1  # the last closed slot
PEER = ("127.0.0.1", 40000)


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def env(tmp_path):
    kr = keys.Keyring([keys.KeyEntry(DEV, 0, 1, KEY_A), keys.KeyEntry(DEV + 1, 0, 1, KEY_B)])
    st = store.Store(str(tmp_path / "c.db"))
    clock = Clock(T0)
    ing = ingest.Ingest(st, lambda: kr, ingest.Policy(window=64), now=clock)
    yield ing, st, clock, tmp_path
    st.close()


def frame(seq, slots, dev=DEV, key=KEY_A, key_no=0, status=0, wh=100):
    recs = [[s, wh + i, 0, 0] for i, s in enumerate(slots)]
    return fr.FrameEncoder(dev, key, key_no).encode(seq, recs, status=status)


def acked(replies, key=KEY_A):
    out = []
    for addr, data in replies:
        a = fr.decode_ack(data, lambda d, k: key)
        out.extend(a.seqs)
    return sorted(out)


def test_accept_store_and_ack(env):
    ing, st, clock, _ = env
    f = frame(5, [SLOT_NOW - 2, SLOT_NOW - 1, SLOT_NOW], status=fr.ST_CLOCK_UNSYNCED)
    replies = ing.process([(f, PEER)])
    assert [r[0] for r in replies] == [PEER]
    assert acked(replies) == [5]
    rows = st.slot_values(DEV)
    assert [r.slot for r in rows] == [SLOT_NOW - 2, SLOT_NOW - 1, SLOT_NOW]
    assert [r.import_wh for r in rows] == [100, 101, 102]
    assert all(r.status == fr.ST_CLOCK_UNSYNCED and r.seq == 5 for r in rows)
    assert all(r.arrived_ms == int(T0 * 1000) for r in rows)
    end = EDGE_EPOCH_UNIX + (SLOT_NOW + 1) * SLOT_SECONDS
    assert rows[-1].delay_ms == int(T0 * 1000) - end * 1000
    assert st.frame_raw(DEV, 5) == f
    assert st.counters()["accepted"] == 1 and st.counters()["stored_slots"] == 3


def test_retransmission_is_reacked_not_stored(env):
    ing, st, clock, _ = env
    f = frame(5, [SLOT_NOW])
    ing.process([(f, PEER)])
    # same bytes again, in a later batch and twice within one batch
    assert acked(ing.process([(f, PEER)])) == [5]
    assert acked(ing.process([(f, PEER), (f, PEER)])) == [5]
    assert st.count_values() == 1
    assert ing.stats["duplicate_frames"] == 3 and ing.stats["rejected"] == 0


def test_same_seq_other_bytes_is_a_replay(env):
    ing, st, clock, _ = env
    ing.process([(frame(5, [SLOT_NOW - 1]), PEER)])
    replies = ing.process([(frame(5, [SLOT_NOW], wh=999), PEER)])
    assert replies == []
    assert [r.slot for r in st.slot_values(DEV)] == [SLOT_NOW - 1]
    rej = st.rejections("replay")
    assert len(rej) == 1 and rej[0].device_id == DEV and rej[0].seq == 5


def test_window_out_of_order_and_below(env):
    ing, st, clock, _ = env
    ing.process([(frame(100, [SLOT_NOW]), PEER)])
    # reordered in flight: 90 is inside the 64-wide window and new
    assert acked(ing.process([(frame(90, [SLOT_NOW - 1]), PEER)])) == [90]
    # 30 is below the window: refused even though its slot is new
    assert ing.process([(frame(30, [SLOT_NOW - 2]), PEER)]) == []
    assert ing.stats["rejected.seq_below_window"] == 1
    assert st.count_values() == 2


def test_window_survives_restart(env):
    ing, st, clock, tmp = env
    f = frame(7, [SLOT_NOW])
    ing.process([(f, PEER)])
    st2 = store.Store(st.path)
    kr = ing.keyring()
    ing2 = ingest.Ingest(st2, lambda: kr, ingest.Policy(window=64), now=clock)
    assert ing2.process([(frame(7, [SLOT_NOW - 1], wh=5), PEER)]) == []
    assert ing2.stats["rejected.replay"] == 1
    assert acked(ing2.process([(f, PEER)])) == [7]  # identical bytes: re-acked
    st2.close()


def test_new_seq_resending_stored_slots(env):
    """After a reboot the device re-frames unacked slots under a new seq: no double count."""
    ing, st, clock, _ = env
    ing.process([(frame(5, [SLOT_NOW - 2, SLOT_NOW - 1]), PEER)])
    replies = ing.process([(frame(300, [SLOT_NOW - 2, SLOT_NOW - 1, SLOT_NOW]), PEER)])
    assert acked(replies) == [300]
    rows = st.slot_values(DEV)
    assert [(r.slot, r.seq) for r in rows] == [(SLOT_NOW - 2, 5), (SLOT_NOW - 1, 5), (SLOT_NOW, 300)]
    assert ing.stats["duplicate_slots"] == 2
    # a later frame with a different value for a stored slot: first value kept, logged
    ing.process([(frame(301, [SLOT_NOW], wh=7), PEER)])
    assert st.slot_values(DEV)[-1].import_wh == 102
    assert ing.stats["slot_conflict"] == 1
    assert len(st.rejections("slot_conflict")) == 1


def test_forged_unknown_and_expired_keys(env):
    ing, st, clock, _ = env
    good = frame(1, [SLOT_NOW])
    forged = frame(2, [SLOT_NOW], key=bytes(32))
    unknown_dev = frame(3, [SLOT_NOW], dev=555)
    unknown_kid = frame(4, [SLOT_NOW], key_no=3)
    altered = bytearray(good)
    altered[12] ^= 1
    replies = ing.process([(forged, PEER), (unknown_dev, PEER), (unknown_kid, PEER),
                           (bytes(altered), PEER)])
    assert replies == []
    assert st.count_values() == 0 and st.count_frames() == 0
    s = ing.stats
    assert s["rejected.bad_mac"] == 2 and s["rejected.unknown_key"] == 2
    assert {r.reason for r in st.rejections()} == {"bad_mac", "unknown_key"}


def test_slot_windows(env):
    ing, st, clock, _ = env
    # a slot ending more than 300 s after now: whole frame refused, not acked
    assert ing.process([(frame(1, [SLOT_NOW, SLOT_NOW + 2]), PEER)]) == []
    assert ing.stats["rejected.slot_in_future"] == 1
    # the slot just closing within the tolerance is fine
    clock.t = EDGE_EPOCH_UNIX + (SLOT_NOW + 2) * SLOT_SECONDS - 200
    assert acked(ing.process([(frame(1, [SLOT_NOW + 1]), PEER)])) == [1]
    # records 36 days old are beyond the 35-day backfill: not stored, yet the frame is acked
    old = SLOT_NOW + 1 - 36 * 48
    assert acked(ing.process([(frame(2, [old, old + 1, SLOT_NOW - 2]), PEER)])) == [2]
    assert [r.slot for r in st.slot_values(DEV)] == [SLOT_NOW - 2, SLOT_NOW + 1]
    assert ing.stats["rejected_slots.slot_too_old"] == 2
    assert len(st.rejections("slot_too_old")) == 1


def test_raw_truncated_in_rejections(env):
    ing, st, clock, _ = env
    ing.policy.max_raw = 10
    junk = os.urandom(3000)
    ing.process([(junk, PEER)])
    r = st.rejections()[0]
    assert r.reason == "oversized" and r.raw_len == 3000 and r.raw == junk[:10]
    assert r.peer == "127.0.0.1:40000"


def test_store_failure_rolls_back_and_acks_nothing(env, monkeypatch):
    ing, st, clock, _ = env

    def broken(rows):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(st, "insert_values", broken)
    with pytest.raises(sqlite3.OperationalError):
        ing.process([(frame(1, [SLOT_NOW]), PEER)])
    monkeypatch.undo()
    assert st.count_frames() == 0
    # the window was reloaded: the resent frame is fresh and stored now
    assert acked(ing.process([(frame(1, [SLOT_NOW]), PEER)])) == [1]
    assert st.count_values() == 1


def test_many_devices_one_batch_and_big_ids(env):
    ing, st, clock, _ = env
    big = 2**64 - 1
    kr = keys.Keyring([keys.KeyEntry(d, 0, 1, KEY_A) for d in range(50)] +
                      [keys.KeyEntry(big, 0, 1, KEY_A)])
    ing.keyring = lambda: kr
    batch = [(frame(2**64 - 2, [SLOT_NOW], dev=big), PEER)]
    batch += [(frame(s, [SLOT_NOW - s], dev=d), ("127.0.0.1", 1000 + d))
              for d in range(50) for s in (1, 2)]
    replies = ing.process(batch)
    assert len(replies) == 51
    assert st.count_values() == 101
    assert st.slot_values(big)[0].seq == 2**64 - 2
    assert big in st.devices()
    # a device id >= 2**63 (stored negative) sending another value for its stored slot
    conflicting = frame(2**64 - 1, [SLOT_NOW], dev=big, wh=9)
    assert ing.process([(conflicting, PEER)])
    assert ing.stats["slot_conflict"] == 1
    rej = st.rejections("slot_conflict")
    assert [(r.device_id, r.seq, r.raw) for r in rej] == [(big, 2**64 - 1, conflicting)]
    assert st.slot_values(big)[0].import_wh == 100
    # acks of many seqs are split into several frames
    ing.policy.ack_max_seqs = 2
    replies = ing.process([(frame(s, [SLOT_NOW - 3 - s], dev=3), PEER) for s in range(3, 8)])
    assert [len(fr.decode_ack(r[1], lambda d, k: KEY_A).seqs) for r in replies] == [2, 2, 1]


def test_stats_line_names_reasons(env):
    ing, st, clock, _ = env
    ing.process([(b"\xff" * 20, PEER), (frame(1, [SLOT_NOW]), PEER)])
    line = ing.stats_line()
    assert "received=2" in line and "accepted=1" in line and "rejected.malformed_cbor=1" in line
    assert wire.R_BAD_MAC in ingest.REASONS
