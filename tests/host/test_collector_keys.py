"""Keys file (keys.py): format checks, validity, rotation with frames in flight."""
import json
import os
import time

import pytest

from edge import frame as fr
from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS
from host_tools.collector import ingest, keys, store

OLD = bytes(range(16, 48))
NEW = bytes(range(48, 80))
DEV = 42


def test_parse_and_validity():
    doc = keys.keys_document([(DEV, 0, OLD, None, "2026-07-01T00:00:00+09:00"),
                              (DEV, 1, NEW, "2026-06-30T00:00:00+09:00")])
    kr = keys.parse_keys(json.loads(json.dumps(doc)))
    t_old = keys._time("2026-06-29T12:00:00+09:00", "t")
    t_overlap = keys._time("2026-06-30T12:00:00+09:00", "t")
    t_new = keys._time("2026-07-01T00:00:00+09:00", "t")
    kid0, kid1 = fr.make_kid(0), fr.make_kid(1)
    assert kr.lookup(DEV, kid0, t_old).key_no == 0
    with pytest.raises(Exception) as e:
        kr.lookup(DEV, kid1, t_old)
    assert e.value.reason == "key_not_valid"
    assert kr.lookup(DEV, kid0, t_overlap) and kr.lookup(DEV, kid1, t_overlap)
    with pytest.raises(Exception) as e:
        kr.lookup(DEV, kid0, t_new)  # not_after is exclusive
    assert e.value.reason == "key_not_valid"
    with pytest.raises(Exception) as e:
        kr.lookup(DEV + 1, kid0, t_old)
    assert e.value.reason == "unknown_key"


@pytest.mark.parametrize("mutate,msg", [
    (lambda d: d.update(format="x"), "format"),
    (lambda d: d["keys"][0].update(key_hex="00" * 8), "shorter"),
    (lambda d: d["keys"][0].update(key_hex="zz"), "hex"),
    (lambda d: d["keys"][0].update(alg=3), "alg"),
    (lambda d: d["keys"][0].update(device_id=-1), "device_id"),
    (lambda d: d["keys"][0].update(key_no=9000), "key_no"),
    (lambda d: d["keys"][0].update(not_before="2026-01-01T00:00"), "offset"),
    (lambda d: d["keys"][0].update(not_before="2026-02-01T00:00+09:00",
                                   not_after="2026-01-01T00:00+09:00"), "later"),
    (lambda d: d["keys"][0].update(colour="red"), "unknown fields"),
    (lambda d: d["keys"].append(dict(d["keys"][0])), "duplicate"),
])
def test_bad_files_are_refused_with_the_entry(mutate, msg):
    doc = keys.keys_document([(DEV, 0, OLD)])
    mutate(doc)
    with pytest.raises(keys.KeyFileError, match=msg):
        keys.parse_keys(doc)


def test_rotation_with_frames_in_flight(tmp_path):
    """Frames under the old key still verify during the overlap, new ones under the new key;
    after the overlap the old key is refused. The keys file is reloaded on change."""
    path = str(tmp_path / "keys.json")
    keys.write_keys(path, [(DEV, 0, OLD)])
    kf = keys.KeyFile(path)
    st = store.Store(str(tmp_path / "c.db"))
    now = [1780000000.0]
    ing = ingest.Ingest(st, lambda: kf.keyring, now=lambda: now[0])
    slot = (int(now[0]) - EDGE_EPOCH_UNIX) // SLOT_SECONDS - 1
    old_enc = fr.FrameEncoder(DEV, OLD, 0)
    new_enc = fr.FrameEncoder(DEV, NEW, 1)
    assert ing.process([(old_enc.encode(1, [[slot - 3, 1, 0, 0]]), None)])
    # rotation: old key valid one more hour, new key from now
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))  # noqa: E731
    keys.write_keys(path, [(DEV, 0, OLD, None, iso(now[0] + 3600)), (DEV, 1, NEW, iso(now[0] - 1))])
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert kf.maybe_reload() is True and len(kf.keyring) == 2
    in_flight = old_enc.encode(2, [[slot - 2, 2, 0, 0]])
    fresh = new_enc.encode(3, [[slot - 1, 3, 0, 0]])
    replies = ing.process([(fresh, None), (in_flight, None)])
    kids = sorted(fr.decode_ack(a, lambda d, k: NEW if k >> 3 else OLD).kid for _, a in replies)
    assert kids == [fr.make_kid(0), fr.make_kid(1)]
    now[0] += 3601
    assert ing.process([(old_enc.encode(4, [[slot, 4, 0, 0]]), None)]) == []
    assert ing.stats["rejected.key_not_valid"] == 1
    assert [r.import_wh for r in st.slot_values(DEV)] == [1, 2, 3]
    # a broken keys file keeps the previous keys and says why
    with open(path, "w") as f:
        f.write("{")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert "not JSON" in kf.maybe_reload()
    assert len(kf.keyring) == 2 and kf.maybe_reload() is None
    st.close()
