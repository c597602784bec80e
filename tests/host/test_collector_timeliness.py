"""Delivery-delay report (timeliness.py) over values stored by the real pipeline."""
import datetime

from edge import frame as fr
from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS
from host_tools.collector import ingest, keys, store, timeliness

KEY = bytes(range(32))
JST = datetime.timezone(datetime.timedelta(hours=9))
DAY = (int(datetime.datetime(2026, 6, 1, tzinfo=JST).timestamp()) - EDGE_EPOCH_UNIX) // 86400


def end_of(slot):
    return EDGE_EPOCH_UNIX + (slot + 1) * SLOT_SECONDS


def test_slot_end_matches_timebase():
    # slot 0 is 2020-01-01 00:00-00:30 JST; day 2026-06-01 starts at slot DAY*48
    assert store.slot_end_unix(0) == int(datetime.datetime(2020, 1, 1, 0, 30, tzinfo=JST).timestamp())
    assert timeliness.day_date(DAY) == datetime.date(2026, 6, 1)
    assert timeliness.date_day(datetime.date(2026, 6, 1)) == DAY


def test_report(tmp_path):
    st = store.Store(str(tmp_path / "c.db"))
    kr = keys.Keyring([keys.KeyEntry(1, 0, 1, KEY), keys.KeyEntry(2, 0, 1, KEY)])
    now = [0.0]
    ing = ingest.Ingest(st, lambda: kr, now=lambda: now[0])
    enc = fr.FrameEncoder(1, KEY)
    first = DAY * 48
    seq = 0
    # device 1, day 1: slots 0..39 delivered 10 min after their end, 40..43 after 61 min,
    # 44..47 never; day 2: slots 0..9 on time, and the report runs at day 2 10:30 JST + 1 h
    for s in range(first, first + 58):
        if first + 44 <= s < first + 48:
            continue
        late = first + 40 <= s < first + 44
        now[0] = end_of(s) + (3660 if late else 600)
        seq += 1
        assert ing.process([(enc.encode(seq, [[s, 1, 0, 0]]), None)])
    report_at = end_of(first + 57) + 3600
    rows = timeliness.report(st, report_at, device_id=1)
    assert [r.date for r in rows] == ["2026-06-01", "2026-06-02"]
    d1, d2 = rows
    assert (d1.due, d1.on_time, d1.late, d1.missing, d1.pending) == (48, 40, 4, 4, 0)
    assert d1.max_delay_s == 3660.0
    assert abs(d1.on_time_share + d1.late_share + d1.missing_share - 1) < 1e-9
    assert (d2.due, d2.on_time, d2.late, d2.missing, d2.pending) == (10, 10, 0, 0, 38)
    # device 2 sent nothing: a requested day range shows every due slot missing
    rows = timeliness.report(st, report_at, device_id=2, day_from=DAY, day_to=DAY)
    assert [(r.due, r.missing, r.max_delay_s) for r in rows] == [(48, 48, None)]
    # a 2-hour deadline turns the late ones on time
    rows = timeliness.report(st, report_at, device_id=1, deadline_s=7200)
    assert (rows[0].on_time, rows[0].late) == (44, 0)
    csv = timeliness.format_csv(timeliness.report(st, report_at))
    assert csv.splitlines()[1].startswith("1,2026-06-01,48,40,4,4,0,0.8333,")
    st.close()
