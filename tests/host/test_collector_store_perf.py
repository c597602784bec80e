"""The collector's throughput helpers: worker routing without decoding, the WAL checkpoint
thread. Both must change nothing observable but speed."""
import os
import random
import time

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import frame as fr
from host_tools.collector import server, store, wire

KEY = bytes(range(32))


def route_by_decoding(data, n):
    """The routing rule as first written: decode the whole datagram."""
    try:
        dev = cbor2.loads(data)[1][1]
    except Exception:
        return 0
    return dev % n if type(dev) is int and dev >= 0 else 0


BOUNDS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]


@settings(max_examples=300, deadline=None)
@given(dev=st.one_of(st.sampled_from(BOUNDS), st.integers(0, 2**64 - 1)),
       key_no=st.integers(0, 8191), seq=st.integers(0, 2**64 - 1), n=st.integers(1, 5),
       nrec=st.integers(1, 3), version=st.booleans(), pos=st.integers(0, 40),
       val=st.integers(0, 255))
def test_route_matches_decoding(dev, key_no, seq, n, nrec, version, pos, val):
    data = fr.FrameEncoder(dev, KEY, key_no).encode(seq, [[7 + i, 1, 0, 0] for i in range(nrec)])
    if version:  # the optional version key 0 in front
        body = cbor2.loads(data)
        data = cbor2.dumps({0: 1, 1: body[1], 2: body[2]}) + data[-8:]
    assert wire.peek_device_id(data) == dev == wire.parse_frame(data).device_id
    assert server.route(data, n) == route_by_decoding(data, n) == dev % n
    # damaged or cut datagrams: never raises, always a valid worker index
    bad = bytearray(data)
    bad[pos % len(bad)] = val
    for d in (bytes(bad), data[: pos % len(data)]):
        assert 0 <= server.route(d, n) < n


def test_route_garbage_never_raises():
    rng = random.Random(5)
    for _ in range(3000):
        d = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24)))
        if rng.random() < 0.5:
            d = b"\xa2\x01\x84" + d
        assert 0 <= server.route(d, 3) < 3


def test_checkpointer_copies_the_wal_back_and_stops(tmp_path):
    """Rows reach the main database file while the writer never checkpoints itself (its
    fallback threshold is far above what is written): only the thread can have done it."""
    path = str(tmp_path / "c.db")
    s = store.Store(path)
    s.start_checkpointer(interval=0.01)
    s.start_checkpointer(interval=0.01)  # a second call is a no-op
    thread = s._ckpt_thread
    assert thread.is_alive()
    assert s.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == \
        store.FALLBACK_AUTOCHECKPOINT_PAGES
    start = os.path.getsize(path)
    for b in range(30):
        s.begin()
        s.insert_values([(d, b, 1, 0, 0, 0, b, 0, 0) for d in range(2000)])
        s.commit()
    wal_pages = os.path.getsize(path + "-wal") // 4096
    assert wal_pages < store.FALLBACK_AUTOCHECKPOINT_PAGES
    deadline = time.time() + 10
    while os.path.getsize(path) < start + (1 << 20) and time.time() < deadline:
        time.sleep(0.02)
    assert os.path.getsize(path) >= start + (1 << 20)
    s.close()
    assert not thread.is_alive()
    ro = store.Store(path, readonly=True)
    assert ro.count_values() == 60000
    ro.close()
