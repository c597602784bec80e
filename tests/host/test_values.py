"""Preliminary/confirmed value sets, completion over the collector store, timeliness and
retention, on a real SQLite store (and once through the real ingest pipeline)."""
import datetime

import pytest

from edge import frame as fr
from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS
from host_tools.collector import ingest, keys, store
from host_tools.tso import completion as comp
from host_tools.tso import values

JST = datetime.timezone(datetime.timedelta(hours=9))
DAY = (int(datetime.datetime(2026, 6, 1, tzinfo=JST).timestamp()) - EDGE_EPOCH_UNIX) // 86400
FIRST = DAY * 48
KEY = bytes(range(32))


def end_of(slot):
    return EDGE_EPOCH_UNIX + (slot + 1) * SLOT_SECONDS


def row(dev, slot, imp, exp=0, delay_s=600):
    arrived = end_of(slot) + delay_s
    return (dev, slot, imp, exp, 0, 0, slot, arrived * 1000, delay_s * 1000)


def put(st, rows):
    st.begin()
    st.insert_values(rows)
    st.commit()


@pytest.fixture
def st(tmp_path):
    s = store.Store(str(tmp_path / "c.db"))
    yield s
    s.close()


def history(dev, days=3, imp=lambda s: 100 + s % 48):
    """`days` full days before DAY, delivered on time."""
    return [row(dev, s, imp(s)) for s in range(FIRST - 48 * days, FIRST)]


def test_preliminary_profile_then_backfill_replaces_confirmed(st):
    put(st, history(1))
    # day DAY: slots 0..9 on time, slot 10..11 missing, 12 on time
    put(st, [row(1, s, 7) for s in list(range(FIRST, FIRST + 10)) + [FIRST + 12]])
    now = end_of(FIRST + 12) + 1200  # 20 min after slot 12 ended
    got = values.update(st, now, since_slot=FIRST)
    assert got["preliminary"] == 13 and got["confirmed"] == 0 and got["unfilled"] == 0
    pre = {r.slot: r for r in values.value_set(st, values.PRELIMINARY, 1)}
    assert pre[FIRST + 10].method == comp.METHOD_PROFILE and pre[FIRST + 10].estimated == 1
    assert pre[FIRST + 10].import_wh == 110  # same slot on the 3 days before: 110 each
    assert pre[FIRST + 9].method == comp.METHOD_MEASURED and pre[FIRST + 9].import_wh == 7
    assert all(r.made_unix == now for r in pre.values())
    # running again issues nothing new: preliminaries are what was published
    assert values.update(st, now + 60, since_slot=FIRST)["preliminary"] == 0
    # the backfill window passes: confirmed values, still estimated for slot 10, 11
    later = end_of(FIRST + 12) + values.BACKFILL_S
    got = values.update(st, later, since_slot=FIRST)
    conf = {r.slot: r for r in values.value_set(st, values.CONFIRMED, 1, FIRST, FIRST + 12)}
    assert len(conf) == 13 and conf[FIRST + 11].estimated == 1
    # slot 11 arrives by backfill: the confirmed value is replaced, revision 1
    put(st, [row(1, FIRST + 11, 55, delay_s=values.BACKFILL_S + 3600)])
    got = values.update(st, later + 3600, since_slot=FIRST)
    assert got["revised"] == 1
    c = values.value_set(st, values.CONFIRMED, 1, FIRST + 11, FIRST + 11)[0]
    assert (c.import_wh, c.method, c.estimated, c.revision) == (55, "measured", 0, 1)
    p = values.value_set(st, values.PRELIMINARY, 1, FIRST + 11, FIRST + 11)[0]
    assert p.estimated == 1 and p.import_wh == 111  # the published preliminary stays


def test_register_reads_bracket_the_gap_exactly(st):
    put(st, history(1, imp=lambda s: 10 if s % 48 < 5 else 30))
    put(st, [row(1, s, 20) for s in range(FIRST, FIRST + 2)])
    put(st, [row(1, s, 20) for s in range(FIRST + 6, FIRST + 8)])
    # readings at the start of slot 0 and of slot 8: 20+20 + gap + 20+20 = 1000 - 0
    values.add_reads(st, [(1, FIRST, 0, 5000), (1, FIRST + 8, 1000, 5000)])
    values.update(st, end_of(FIRST + 7) + 60, since_slot=FIRST)
    pre = values.value_set(st, values.PRELIMINARY, 1, FIRST + 2, FIRST + 5)
    assert [r.method for r in pre] == ["bracketed"] * 4
    imp = [r.import_wh for r in pre]
    # 920 Wh split over profile 10,10,10,30 -> 153.33.., 153.33.., 153.33.., 460
    assert sum(imp) == 920 and imp == [154, 153, 153, 460]
    assert [r.export_wh for r in pre] == [0, 0, 0, 0]


def test_bracket_upgrades_a_confirmed_profile_estimate(st):
    put(st, history(1))
    put(st, [row(1, FIRST, 5), row(1, FIRST + 2, 5)])
    now = end_of(FIRST + 2) + values.BACKFILL_S
    values.update(st, now, since_slot=FIRST)
    c = values.value_set(st, values.CONFIRMED, 1, FIRST + 1, FIRST + 1)[0]
    assert c.method == "profile"
    values.add_reads(st, [(1, FIRST, 0, 0), (1, FIRST + 3, 100, 0)])
    assert values.update(st, now + 1800, since_slot=FIRST)["revised"] == 1
    c = values.value_set(st, values.CONFIRMED, 1, FIRST + 1, FIRST + 1)[0]
    assert (c.method, c.import_wh, c.estimated, c.revision) == ("bracketed", 90, 1, 1)


def test_no_history_stays_unfilled_and_bad_reads_are_reported(st):
    put(st, [row(2, FIRST, 5), row(2, FIRST + 3, 5)])
    values.add_reads(st, [(2, FIRST, 100, 0), (2, FIRST + 4, 50, 0)])  # register went back
    got = values.update(st, end_of(FIRST + 3) + 60, since_slot=FIRST, deadline_s=0)
    assert got["unfilled"] == 2 and got["preliminary"] == 2
    assert got["problems"][0][:4] == (2, FIRST, FIRST + 4, "import")


def test_timeliness_per_day(st):
    put(st, history(1, days=1))
    # the day: 40 on time, 4 late (61 min), 4 never -> estimated from the profile; the
    # completion runs 10 minutes after every slot end and the values arrive as they come
    arrivals = [row(1, FIRST + i, 1) for i in range(40)]
    arrivals += [row(1, FIRST + i, 1, delay_s=3660) for i in range(40, 44)]
    for k in range(48 + 2):
        t = end_of(FIRST + k) + 600
        put(st, [r for r in arrivals if t - 1800 < r[7] // 1000 <= t])
        values.update(st, t, since_slot=FIRST - 48)
    now = end_of(FIRST + 47) + 3600
    rep = {r.date: r for r in values.timeliness(st, now)}
    d = rep["2026-06-01"]
    assert (d.due, d.on_time, d.late, d.estimated, d.unfilled) == (48, 40, 4, 4, 0)
    assert d.preliminary_on_time == 48  # measured or estimated, all issued within 60 min
    assert (d.on_time_share, d.late_share, d.estimated_share) == (40 / 48, 4 / 48, 4 / 48)
    prev = rep["2026-05-31"]
    # the first run came 40 min after the previous day's last slot: only that one on time
    assert prev.on_time == 48 and prev.preliminary_on_time == 1
    assert values.format_timeliness([d]).splitlines()[1].startswith("2026-06-01,48,40,4,4,0,48")
    # the late slots' preliminaries were estimates issued on time
    pre = values.value_set(st, values.PRELIMINARY, 1, FIRST + 40, FIRST + 47)
    assert [r.estimated for r in pre] == [1] * 8


def test_values_from_the_real_ingest_pipeline(st):
    kr = keys.Keyring([keys.KeyEntry(9, 0, 1, KEY)])
    clock = [0.0]
    ing = ingest.Ingest(st, lambda: kr, now=lambda: clock[0])
    enc = fr.FrameEncoder(9, KEY)
    for i, s in enumerate([FIRST, FIRST + 1, FIRST + 3]):
        clock[0] = end_of(s) + 300
        assert ing.process([(enc.encode(i + 1, [[s, 40, 2, 0]]), None)])
    got = values.update(st, end_of(FIRST + 3) + 600, since_slot=FIRST, deadline_s=0)
    assert got["preliminary"] == 3 and got["unfilled"] == 1  # no history for slot 2
    # with the 60-minute deadline slot 2 (ended 40 min ago) is not due yet: not counted
    assert values.update(st, end_of(FIRST + 3) + 600, since_slot=FIRST)["unfilled"] == 0
    pre = values.value_set(st, values.PRELIMINARY, 9)
    assert [(r.slot - FIRST, r.import_wh, r.export_wh) for r in pre] == [
        (0, 40, 2), (1, 40, 2), (3, 40, 2)]


@pytest.mark.parametrize("now,age,cut", [
    (datetime.datetime(2029, 6, 1, 12, tzinfo=JST), "3y", "2026-06-01"),
    (datetime.datetime(2028, 2, 29, 0, 10, tzinfo=JST), "1y", "2027-02-28"),
    (datetime.datetime(2029, 6, 1, tzinfo=JST), "36m", "2026-06-01"),
    (datetime.datetime(2026, 6, 3, tzinfo=JST), "2d", "2026-06-01"),
])
def test_cutoff_dates(now, age, cut):
    day = values.cutoff_day(now.timestamp(), values.parse_age(age))
    assert values.g_timeliness.day_date(day).isoformat() == cut


def test_parse_age_rejects_garbage():
    for bad in ("", "y", "3", "3w", "-3y", "3.5y"):
        with pytest.raises(ValueError):
            values.parse_age(bad)


def test_purge_counts_then_deletes_only_old_rows(st):
    put(st, history(1, days=2))
    values.update(st, end_of(FIRST - 1) + 60, since_slot=FIRST - 96)
    values.add_reads(st, [(1, FIRST - 96, 0, 0), (1, FIRST, 5, 0)])
    now = datetime.datetime(2029, 5, 31, 12, tzinfo=JST).timestamp()  # cutoff 2026-05-31
    cut, counts = values.purge(st, now, values.parse_age("3y"), dry_run=True)
    assert cut == "2026-05-31"
    assert (counts["slot_values"], counts["value_sets"], counts["register_reads"]) == (48, 48, 1)
    assert st.count_values() == 96
    cut, counts = values.purge(st, now, values.parse_age("3y"))
    assert counts["slot_values"] == 48 and st.count_values() == 48
    assert min(r.slot for r in st.slot_values(1)) == FIRST - 48
    assert values.purge(st, now, values.parse_age("3y"))[1]["slot_values"] == 0


def test_default_window_is_backfill_plus_two_days(st):
    put(st, [row(1, s, 1) for s in range(FIRST - 48 * 10, FIRST + 48)])
    now = end_of(FIRST + 47) + 600
    got = values.update(st, now, backfill_s=24 * 3600)
    # backfill 1 day: confirmed up to the day before; window starts 2 days before that
    rows = values.value_set(st, values.PRELIMINARY, 1)
    assert min(r.slot for r in rows) == FIRST - 3 * 48 and got["preliminary"] == 4 * 48
    assert got["confirmed"] == 3 * 48


def test_a_value_the_device_flagged_estimated_is_measured_but_estimated(st):
    from edge.flags import BOUND_SHIFT, ESTIMATED

    exact = row(1, FIRST, 500)
    est = (1, FIRST + 1, 480, 0, ESTIMATED | 6 << BOUND_SHIFT, 0, FIRST + 1,
           end_of(FIRST + 1) * 1000 + 600000, 600000)
    put(st, [exact, est])
    values.update(st, end_of(FIRST + 1) + 1200, since_slot=FIRST)
    pre = {r.slot: r for r in values.value_set(st, values.PRELIMINARY, 1)}
    assert (pre[FIRST].method, pre[FIRST].estimated) == (comp.METHOD_MEASURED, 0)
    assert (pre[FIRST + 1].method, pre[FIRST + 1].estimated) == (comp.METHOD_MEASURED, 1)
    assert st.db.execute("SELECT bound_wh FROM slot_quality WHERE slot = ?",
                         (FIRST + 1,)).fetchone()[0] == 12
