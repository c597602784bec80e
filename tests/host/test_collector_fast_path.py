"""Ingest.verify's steady-state fast path takes exactly the decisions of the general path.

The same batches — steady-state frames mixed with everything the fast path must hand over:
retransmissions, replays, seqs below the window, several records, too old or future slots,
forged MACs, unknown and time-bounded keys, wide integer heads, big ids, garbage, datagrams
that are not (bytes, addr) tuples — go through collectors with the fast path off, with its
Python loop and with its C loop (host_tools/collector/_fastpath.c, when built); their acks,
counters and stored rows must be identical."""
import hashlib
import hmac
import random
import sys

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import frame as fr
from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS
from host_tools.collector import ingest, keys, store, wire

KEY = bytes(range(32))
OTHER = bytes(range(40, 72))
T0 = 1780000000.0
SLOT_NOW = (int(T0) - EDGE_EPOCH_UNIX) // SLOT_SECONDS - 1
DEVICES = [0, 1, 23, 24, 300, 70000, 2**40, 2**64 - 1]
BOUNDED = 300  # this device's key expires after the third batch


def keyring():
    entries = [keys.KeyEntry(d, 0, 1, KEY, None, T0 + 2.5 if d == BOUNDED else None)
               for d in DEVICES]
    entries.append(keys.KeyEntry(24, 1, 2, OTHER))  # a second key of device 24, 16-byte tags
    return keys.Keyring(entries)


def make_batch(rng, sent):
    """A batch of datagrams; `sent` keeps earlier frames for retransmission and replay."""
    batch = []
    for _ in range(rng.randrange(1, 25)):
        dev = rng.choice(DEVICES + [999])  # 999: no key
        key_no, key = (1, OTHER) if dev == 24 and rng.random() < 0.3 else (0, KEY)
        enc = fr.FrameEncoder(dev, key, key_no, alg=2 if key_no else 1)
        kind = rng.random()
        if kind < 0.15 and sent:
            data = rng.choice(sent)  # retransmission (or a replay of a captured frame)
        else:
            seq = rng.choice([rng.randrange(0, 40), rng.randrange(0, 2**64)])
            if kind < 0.6:
                slots = [SLOT_NOW - rng.randrange(0, 4)]
            elif kind < 0.7:
                slots = [SLOT_NOW - 5, SLOT_NOW - 4]
            elif kind < 0.8:
                slots = [SLOT_NOW - 40 * 48]  # older than the backfill window
            elif kind < 0.85:
                slots = [SLOT_NOW + 3]  # in the future
            else:
                slots = [rng.randrange(0, 2**32)]
            recs = [[s, rng.choice([0, 23, 24, 255, 256, 70000, 2**32 - 1]), rng.randrange(3),
                     rng.choice([0, 64, 0xFFFF])] for s in slots]
            data = enc.encode(seq, recs, status=rng.choice([0, 1, 0xFFFF]))
            if rng.random() < 0.05:  # forged: one bit of the tag flipped
                pos = len(data) - 1 - rng.randrange(16 if key_no else 8)
                data = data[:pos] + bytes([data[pos] ^ (1 << rng.randrange(8))]) + data[pos + 1:]
            elif rng.random() < 0.03:  # device id with a non-shortest head, MAC valid
                body = cbor2.loads(data[: -(16 if key_no else 8)])
                kid, d, q, stt = body[1]
                raw = (b"\xa2\x01\x84" + cbor2.dumps(kid) + b"\x1b" + d.to_bytes(8, "big")
                       + cbor2.dumps(q) + cbor2.dumps(stt) + b"\x02" + cbor2.dumps(body[2]))
                data = raw + hmac.new(key, raw, hashlib.sha256).digest()[: 16 if key_no else 8]
            elif rng.random() < 0.02:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
            sent.append(data)
        addr = ("127.0.0.1", 4000 + rng.randrange(3))
        shape = rng.random()
        if shape < 0.03:
            batch.append([data, addr])  # not a tuple: unpacked all the same
        elif shape < 0.06:
            batch.append((bytearray(data), addr))  # not bytes: read as bytes
        else:
            batch.append((data, addr))
    return batch


MODES = ["general", "python", "c"]


def set_mode(ing, mode):
    ing.fast_path = None if mode == "general" else mode


def one_device_collector(tmp_path, mode):
    """A collector in `mode` (skipped for "c" if not built) and device 23's encoder."""
    if mode == "c" and ingest._fastpath is None:
        pytest.skip("_fastpath not built")
    kr = keyring()
    s = store.Store(str(tmp_path / "one.db"))
    ing = ingest.Ingest(s, lambda: kr, now=lambda: T0)
    set_mode(ing, mode)
    return s, ing, fr.FrameEncoder(23, KEY)


def snapshot(st):
    db = st.db
    return (db.execute("SELECT * FROM slot_values ORDER BY slot, device_id").fetchall(),
            db.execute("SELECT * FROM frames ORDER BY rowid").fetchall(),
            db.execute("SELECT arrived_ms, peer, reason, detail, device_id, seq, raw_len, raw "
                       "FROM rejections ORDER BY id").fetchall(),
            sorted(st.counters().items()))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_fast_path_equals_general_path(tmp_path_factory, seed):
    tmp = tmp_path_factory.mktemp("fast")
    kr = keyring()
    runs = []
    for mode in MODES if ingest._fastpath is not None else MODES[:2]:
        rng = random.Random(seed)
        s = store.Store(str(tmp / ("%s.db" % mode)))
        ing = ingest.Ingest(s, lambda: kr, ingest.Policy(window=16), now=lambda: T0)
        set_mode(ing, mode)
        sent, acks = [], []
        for b in range(6):
            acks.append(ing.process(make_batch(rng, sent), now=T0 + b))
            if b == 3:  # a restart: windows reloaded from the store
                ing = ingest.Ingest(s, lambda: kr, ingest.Policy(window=16), now=lambda: T0)
                set_mode(ing, mode)
        runs.append((acks, snapshot(s)))
        s.close()
    for other in runs[1:]:
        assert other == runs[0]
    assert runs[0][1][3]  # counters were written


def test_c_fast_path_is_built():
    """CI builds the C loop (setup.py): a silently missing build would leave only the
    slower Python loop, so on the platform CI runs on its absence fails here."""
    if sys.platform != "linux" or sys.implementation.name != "cpython":
        pytest.skip("the build is only required where CI runs")
    assert ingest._fastpath is not None, \
        "pip install -e . did not build _fastpath.c (or it is older than its source: rebuild)"
    assert ingest.Ingest(None, keyring).fast_path == "c"


@pytest.mark.parametrize("mode", ["python", "c"])
def test_fast_path_takes_the_steady_state(tmp_path, mode):
    """The fast path is really used for steady-state frames (not only equal by falling back):
    with the general parser broken, they are still accepted."""
    s, ing, enc = one_device_collector(tmp_path, mode)
    ing.process([(enc.encode(1, [[SLOT_NOW - 1, 5, 0, 0]]), None)])  # loads the window
    import host_tools.collector.wire as wire

    real = wire.parse_frame
    wire.parse_frame = None  # any general-path frame would now crash
    try:
        replies = ing.process([(enc.encode(2, [[SLOT_NOW, 7, 0, 0]]), ("127.0.0.1", 9))])
    finally:
        wire.parse_frame = real
    assert len(replies) == 1 and [r.import_wh for r in s.slot_values(23)] == [5, 7]
    s.close()


@pytest.mark.parametrize("mode", MODES)
def test_a_batch_that_fails_midway_leaves_no_marks(tmp_path, mode):
    """A batch that raises during verify (here an unhashable address, after a frame of
    the batch was already accepted) stores nothing and acks nothing; the replay windows
    must not keep that frame's seq either, or its resend would be refused as a replay."""
    s, ing, enc = one_device_collector(tmp_path, mode)
    ing.process([(enc.encode(1, [[SLOT_NOW - 1, 5, 0, 0]]), ("127.0.0.1", 9))])
    second = enc.encode(2, [[SLOT_NOW, 7, 0, 0]])
    with pytest.raises(TypeError):
        ing.process([(second, ("127.0.0.1", 9)), (enc.encode(3, [[SLOT_NOW, 8, 0, 0]]), [])])
    assert [r.import_wh for r in s.slot_values(23)] == [5]
    assert len(ing.process([(second, ("127.0.0.1", 9))])) == 1  # the device's resend
    assert [r.import_wh for r in s.slot_values(23)] == [5, 7]
    assert ing.stats["rejected"] == 0
    s.close()


def test_every_path_builds_rows_in_the_declared_column_order(tmp_path):
    """The stored row is declared once (store.FRAME_COLUMNS / VALUE_COLUMNS): the C loop maps
    those names to its fields when it is set up, so any order of the names gives rows in that
    order, and the Python paths build rows by name. Read back by name, all three agree."""
    if ingest._fastpath is None:
        pytest.skip("_fastpath not built")
    rows = {}
    for mode in MODES:
        kr = keyring()
        ing = ingest.Ingest(store.Store(str(tmp_path / ("%s.db" % mode))), lambda: kr,
                            now=lambda: T0)
        set_mode(ing, mode)
        enc = fr.FrameEncoder(2**64 - 1, KEY)
        ing.process([(enc.encode(1, [[SLOT_NOW - 1, 5, 0, 0]]), ("127.0.0.1", 9))])
        b = ing.verify([(enc.encode(2**63 + 5, [[SLOT_NOW, 7, 3, 64]]), ("127.0.0.1", 9))])
        rows[mode] = ([dict(zip(store.FRAME_COLUMNS, r)) for r in b.frames],
                      [dict(zip(store.VALUE_COLUMNS, r)) for r in b.values])
        ing.store_batch(b)
        ing.store.close()
    assert rows["c"] == rows["python"] == rows["general"]
    assert rows["c"][1][0]["seq"] == 5 - 2**63 and rows["c"][1][0]["import_wh"] == 7
    # the C loop follows whatever order the names come in
    kr = keyring()
    ing = ingest.Ingest(store.Store(str(tmp_path / "rev.db")), lambda: kr, now=lambda: T0)
    rev_f, rev_v = store.FRAME_COLUMNS[::-1], store.VALUE_COLUMNS[::-1]
    ing._c = ingest._fastpath.FastPath(frame_columns=rev_f, value_columns=rev_v,
                                       tag_len=ingest._TAG_LEN8, epoch=EDGE_EPOCH_UNIX,
                                       slot_seconds=SLOT_SECONDS, peer_of=ingest._peer)
    enc = fr.FrameEncoder(2**64 - 1, KEY)
    ing.process([(enc.encode(1, [[SLOT_NOW - 1, 5, 0, 0]]), ("127.0.0.1", 9))])
    b = ing.verify([(enc.encode(2**63 + 5, [[SLOT_NOW, 7, 3, 64]]), ("127.0.0.1", 9))])
    assert [dict(zip(rev_f, r)) for r in b.frames] == rows["c"][0]
    assert [dict(zip(rev_v, r)) for r in b.values] == rows["c"][1]
    ing.store.close()
    with pytest.raises(ValueError, match="no field for column bogus"):
        ingest._fastpath.FastPath(frame_columns=store.FRAME_COLUMNS + ("bogus",),
                                  value_columns=store.VALUE_COLUMNS, tag_len=ingest._TAG_LEN8,
                                  epoch=0, slot_seconds=1800, peer_of=ingest._peer)


@pytest.mark.parametrize("per_ack", [1, 5, 32])
def test_acks_of_many_seqs_equal_in_every_mode(tmp_path, per_ack):
    """A device with many frames in one batch (a backlog after an outage, resends among
    them): its acks list every distinct seq once, ascending, `ack_max_seqs` per ack, byte for
    byte the same whether the C loop or Python built them (and as wire.encode_ack)."""
    got = {}
    for mode in MODES:
        if mode == "c" and ingest._fastpath is None:
            continue
        kr = keyring()
        ing = ingest.Ingest(store.Store(str(tmp_path / ("%s%d.db" % (mode, per_ack)))),
                            lambda: kr, ingest.Policy(ack_max_seqs=per_ack), now=lambda: T0)
        set_mode(ing, mode)
        enc = fr.FrameEncoder(2**40, KEY)
        frames = [enc.encode(s, [[SLOT_NOW - 70 + s, s, 0, 0]]) for s in range(1, 71)]
        batch = [(f, ("127.0.0.1", 9)) for f in frames + frames[::7]]  # resends in the batch
        got[mode] = ing.process(batch)
        ing.store.close()
    want = [(("127.0.0.1", 9), wire.encode_ack(keys.KeyEntry(2**40, 0, 1, KEY).mac, 2**40, 1,
                                               list(range(1, 71))[i : i + per_ack]))
            for i in range(0, 70, per_ack)]
    for mode, replies in got.items():
        assert sorted(replies) == sorted(want), mode
