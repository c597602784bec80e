"""The collector's time in acks (docs/frames.md "Acknowledgements", edge/clock_sync.py): only
for a frame with status bit ST_TIME_REQUEST, the batch's time in edge seconds and ms, the
same in every fast-path mode; every other ack stays byte for byte what it was."""
import pytest

from edge import frame as fr
from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS
from host_tools.collector import ingest, keys, store

KEY = bytes(range(32))
DEV = 77
T0 = 1780000000.123  # unix seconds: the collector's clock
SLOT_NOW = (int(T0) - EDGE_EPOCH_UNIX) // SLOT_SECONDS - 1
PEER = ("127.0.0.1", 40000)
MODES = ["c", "python", None] if ingest._fastpath is not None else ["python", None]


@pytest.fixture(params=MODES)
def ing(request, tmp_path):
    kr = keys.Keyring([keys.KeyEntry(DEV, 0, 1, KEY)])
    st = store.Store(str(tmp_path / "c.db"))
    now = [T0]
    i = ingest.Ingest(st, lambda: kr, ingest.Policy(window=64), now=lambda: now[0])
    i.fast_path = request.param
    i.clock = now
    yield i
    st.close()


def frame(seq, status):
    return fr.FrameEncoder(DEV, KEY).encode(seq, [[SLOT_NOW, 100, 0, 0]], status=status)


def decode(replies):
    return [fr.decode_ack(a, lambda d, k: KEY) for _, a in replies]


def test_a_frame_asking_for_the_time_gets_it_in_its_ack(ing):
    replies = ing.process([(frame(1, fr.ST_TIME_REQUEST | fr.ST_CLOCK_UNSYNCED), PEER)])
    (a,) = decode(replies)
    edge_ms = 1780000000123 - EDGE_EPOCH_UNIX * 1000
    assert a.seqs == [1] and a.time == [edge_ms // 1000, edge_ms % 1000] == [a.time[0], 123]
    assert replies[0][1] == fr.encode_ack(KEY, DEV, 1, None, [1], a.time)
    assert ing.stats["acks_timed"] == 1
    # its retransmission is acked with the time of the batch that answers it
    ing.clock[0] = T0 + 2.5
    (b,) = decode(ing.process([(frame(1, fr.ST_TIME_REQUEST | fr.ST_CLOCK_UNSYNCED), PEER)]))
    assert b.seqs == [1] and b.time == [a.time[0] + 2, 623]


def test_other_acks_are_unchanged_and_carry_no_time(ing):
    replies = ing.process([(frame(1, 0), PEER), (frame(2, 0xFFFF & ~fr.ST_TIME_REQUEST), PEER)])
    assert [r[1] for r in replies] == [fr.encode_ack(KEY, DEV, 1, None, [1, 2])]
    assert all(a.time is None for a in decode(replies))


def test_a_mixed_batch_acks_each_frame_as_it_asked(ing):
    replies = ing.process([(frame(1, 0), PEER), (frame(2, fr.ST_TIME_REQUEST), PEER)])
    got = sorted((a.seqs, a.time is not None) for a in decode(replies))
    assert got == [([1], False), ([2], True)]


def test_ack_time_is_refused_when_malformed():
    good = fr.encode_ack(KEY, DEV, 1, None, [1], (100, 5))
    assert fr.decode_ack(good, lambda d, k: KEY).time == [100, 5]
    import cbor2
    import hashlib
    import hmac

    for bad in ([100], [100, 1000], [2**32, 0], [100, -1], 100, [100, 5, 0]):
        body = cbor2.dumps({1: [1, DEV], 4: [1], 6: bad}, canonical=True)
        data = body + hmac.new(KEY, body, hashlib.sha256).digest()[:8]
        with pytest.raises(fr.FrameError) as e:
            fr.decode_ack(data, lambda d, k: KEY)
        assert e.value.kind == "frame_malformed", bad
    # a data frame never carries the ack's time key
    body = cbor2.dumps({1: [1, DEV, 1, 0], 2: [SLOT_NOW, 1, 0, 0], 6: [100, 5]}, canonical=True)
    with pytest.raises(fr.FrameError):
        fr.decode_frame(body + hmac.new(KEY, body, hashlib.sha256).digest()[:8], lambda d, k: KEY)
    with pytest.raises(fr.FrameError):
        fr.encode_ack(KEY, DEV, 1, None, [1], (100, 1000))


def test_a_frame_from_a_clock_ahead_is_refused_with_the_time(ing):
    """A verified frame whose slot ends in the collector's future is not stored and not
    acked; if it asked for the time it gets it, with its seq as refused (key 7)."""
    ahead = fr.FrameEncoder(DEV, KEY).encode(1, [[SLOT_NOW + 3, 5, 0, 0]],
                                             status=fr.ST_TIME_REQUEST | fr.ST_CLOCK_UNSYNCED)
    (a,) = decode(ing.process([(ahead, PEER)]))
    assert a.seqs == [] and a.upto is None and list(a.refused) == [1] and a.time is not None
    assert not a.covers(1)
    assert ing.stats["rejected.slot_in_future"] == 1
    # without the request: refused in silence, as before
    quiet = fr.FrameEncoder(DEV, KEY).encode(2, [[SLOT_NOW + 3, 5, 0, 0]], status=0)
    assert ing.process([(quiet, PEER)]) == []


def test_refused_seqs_travel_only_with_the_time():
    import cbor2
    import hashlib
    import hmac

    for body in ({1: [1, DEV], 7: [5]}, {1: [1, DEV], 6: [1, 2], 7: []},
                 {1: [1, DEV], 6: [1, 2], 7: [5, 5]}):
        raw = cbor2.dumps(body, canonical=True)
        with pytest.raises(fr.FrameError):
            fr.decode_ack(raw + hmac.new(KEY, raw, hashlib.sha256).digest()[:8],
                          lambda d, k: KEY)
    with pytest.raises(fr.FrameError):
        fr.encode_ack(KEY, DEV, 1, refused=[5])
    from host_tools.collector import wire

    good = fr.encode_ack(KEY, DEV, 1, time=(10, 20), refused=[5, 9])
    assert wire.encode_ack(wire.MacKey(KEY), DEV, 1, time=(10, 20), refused=[5, 9]) == good
    assert wire.parse_ack_time(good)[4:6] == ([10, 20], [5, 9])
