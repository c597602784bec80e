"""`smeter complete` (both modes) and `smeter purge` through their entry points."""
import argparse
import datetime

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS
from host_tools.commands import complete as complete_cmd, gen_tso_data as gen_tso_data_cmd, purge as purge_cmd
from host_tools.collector import store
from host_tools.tso import model

JST = datetime.timezone(datetime.timedelta(hours=9))
DAY = (int(datetime.datetime(2026, 6, 1, tzinfo=JST).timestamp()) - EDGE_EPOCH_UNIX) // 86400
FIRST = DAY * 48


def smeter(*argv):
    parser = argparse.ArgumentParser(prog="smeter")
    sub = parser.add_subparsers()
    for m in (complete_cmd, gen_tso_data_cmd, purge_cmd):
        m.register(sub)
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def iso(slot):
    return datetime.datetime.fromtimestamp(EDGE_EPOCH_UNIX + slot * SLOT_SECONDS,
                                           JST).isoformat()


def make_db(path):
    st = store.Store(str(path))
    rows = []
    for s in range(FIRST - 96, FIRST + 48):
        if FIRST + 20 <= s < FIRST + 24:
            continue
        rows.append((5, s, 100, 0, 0, 0, s, (EDGE_EPOCH_UNIX + (s + 1) * 1800 + 60) * 1000,
                     60000))
    st.begin()
    st.insert_values(rows)
    st.commit()
    st.close()


def test_complete_db_with_reads_report_and_export(tmp_path, capsys):
    db = tmp_path / "c.db"
    make_db(db)
    reads = tmp_path / "reads.csv"
    reads.write_text("device_id,read_at,import_total_wh,export_total_wh\n"
                     "5,%s,1000,0\n5,%s,2000,0\n" % (iso(FIRST + 18), iso(FIRST + 26)))
    out = tmp_path / "sets.csv"
    rep = tmp_path / "rep.csv"
    now = iso(FIRST + 48 + 4)  # 2 h after the day's last slot ended
    assert smeter("complete", "--db", db, "--now", now, "--reads", reads, "--out", out,
                  "--report", rep, "--backfill", "1h", "--since", "2026-05-30") == 0
    cap = capsys.readouterr()
    # 3 days + the next day's slots 1-3 (estimated: ended >= 30 min ago); slot 4 just ended
    assert "preliminary values issued: 147, confirmed: 146" in cap.err  # prose: stderr
    assert cap.out.startswith("date,due,on_time")  # stdout: the CSV report alone
    t = pacsv.read_csv(str(out)).to_pydict()
    sel = [i for i, (s, m) in enumerate(zip(t["set"], t["method"])) if s == "confirmed"
           and m == "bracketed"]
    # 1000 Wh between the readings minus 4 delivered slots of 100 -> 600 over 4 slots
    assert [t["import_wh"][i] for i in sel] == [150] * 4
    assert [t["slot_of_day"][i] for i in sel] == [21, 22, 23, 24]
    lines = rep.read_text().splitlines()
    assert lines[0].startswith("date,due,on_time,late,estimated,unfilled")
    assert lines[-2].startswith("2026-06-01,48,44,0,4,0,")
    # the device sent nothing after the day: the next day's due slots are listed, estimated
    assert lines[-1].startswith("2026-06-02,2,0,0,2,0,")
    # bad inputs: exit 2 (USAGE) with a message
    reads.write_text("device_id,read_at,import_total_wh,export_total_wh\n5,%s,1,0\n"
                     % iso(FIRST)[:-6].replace("00:00", "00:10"))
    assert smeter("complete", "--db", db, "--reads", reads) == 2
    assert smeter("complete", "--db", tmp_path / "none.db") == 2
    assert smeter("complete", "--db", db, "--backfill", "3w") == 2
    assert smeter("complete", "--data", tmp_path) == 2  # --data needs --out


def test_purge_dry_run_then_delete(tmp_path, capsys):
    db = tmp_path / "c.db"
    make_db(db)
    now = "2029-05-31T12:00:00+09:00"
    assert smeter("purge", "--db", db, "--now", now, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would delete everything before 2026-05-31" in out
    assert "slot_values             48 row(s)" in out
    st = store.Store(str(db))
    assert st.count_values() == 140
    st.close()
    assert smeter("purge", "--db", db, "--now", now) == 0
    assert "deleted everything before 2026-05-31" in capsys.readouterr().out
    st = store.Store(str(db))
    assert st.count_values() == 92
    st.close()
    assert smeter("purge", "--db", db, "--older-than", "soon") == 2


def test_complete_data_set(tmp_path, capsys):
    src = tmp_path / "src"
    assert smeter("gen-tso-data", "--resources", 60, "--out", src, "--days", 4) == 0
    data = model.load(str(src))
    # drop two resources' device rows on day 3 and receiving rows on day 2; one has a total
    keep = data.device.copy()
    data.device_present[2, [4, 7]] = False
    data.receiving_present[1, 9] = False
    data.save(str(src))
    total = int(keep[2, 7].sum())
    (src / "day_totals.csv").write_text("resource_id,date,series,total_wh\n%s,%s,device,%d\n"
                                        % (data.resources["resource_id"][7], data.days[2], total))
    out = tmp_path / "out"
    assert smeter("complete", "--data", src, "--out", out) == 0
    printed = capsys.readouterr().err  # the counts are diagnostics: stderr
    # receiving-point resources have no device values: not counted as missing
    assert "device: 190 row(s) measured, 1 bracketed, 1 from the profile, 0 unfilled" \
        in printed
    done = model.load(str(out))
    assert done.device_present[2, [4, 7]].all() and done.receiving_present[1, 9]
    assert done.device[2, 7].sum() == total
    flags = pq.read_table(str(out / "completion.parquet")).to_pydict()
    got = sorted(zip(flags["resource_id"], flags["series"], flags["method"]))
    rid = data.resources["resource_id"]
    assert got == sorted([(rid[4], "device", "profile"), (rid[7], "device", "bracketed"),
                          (rid[9], "receiving", "profile")])
    assert np.array_equal(done.device[:2], data.device[:2])


def _store(path, spans):
    st = store.Store(str(path))
    rows = []
    for dev, lo, hi in spans:
        for s in range(lo, hi):
            rows.append((dev, s, 100, 0, 0, 0, s,
                         (EDGE_EPOCH_UNIX + (s + 1) * 1800 + 60) * 1000, 60000))
    st.begin()
    st.insert_values(rows)
    st.commit()
    st.close()


def _complete(capsys, *argv):
    assert smeter("complete", *argv) == 0
    cap = capsys.readouterr()  # the counts go to stderr, the CSV report alone to stdout
    unfilled = int(cap.err.split("slots without any value: ")[1].split(",")[0])
    lines = cap.out.splitlines()
    assert lines[0].startswith("date,due,")
    rep = {ln.split(",")[0]: [int(x) for x in ln.split(",")[1:7]] for ln in lines[1:]}
    return unfilled, rep


def test_without_since_the_window_starts_at_the_store_s_first_day(tmp_path, capsys):
    # one day of data; the default window (backfill and two days before) would reach back
    # before it, and those slots were counted "without any value" (384) while the table
    # said 0 unfilled
    db = tmp_path / "c.db"
    _store(db, [(5, FIRST, FIRST + 48), (6, FIRST, FIRST + 48)])
    unfilled, rep = _complete(capsys, "--db", db, "--now", iso(FIRST + 48 + 4))
    assert min(rep) == "2026-06-01" and rep["2026-06-01"][:3] == [96, 96, 0]
    assert rep["2026-06-02"][0] == 4  # slots 1-2 of both devices are due
    assert unfilled == sum(r[4] for r in rep.values()) == 0


def test_a_device_that_stops_reporting_shows_up_in_both_reports(tmp_path, capsys):
    """Device 5 reports 05-30 .. 06-01 and stops; device 6 starts on 05-31 and goes on."""
    from host_tools.commands import collect as collect_cmd
    db = tmp_path / "c.db"
    _store(db, [(5, FIRST - 96, FIRST + 48), (6, FIRST - 48, FIRST + 48 * 5)])
    now = iso(FIRST + 48 * 5 + 4)  # 06-06 02:00: 06-05 wholly due
    unfilled, rep = _complete(capsys, "--db", db, "--now", now, "--backfill", "1h",
                              "--since", "2026-05-30")
    assert min(rep) == "2026-05-30" and rep["2026-05-30"][:2] == [48, 48]  # 6 not started
    # device 5 is silent from 06-02: estimated from its profile days, listed every day
    assert rep["2026-06-02"] == [96, 48, 0, 48, 0, 0]  # due on_time late est unfilled pre_ok
    assert rep["2026-06-05"][:5] == [96, 48, 0, 48, 0]
    assert unfilled == sum(r[4] for r in rep.values())
    # and without --since, over the default window only: the same agreement
    unfilled, rep = _complete(capsys, "--db", db, "--now", now, "--backfill", "1h")
    assert min(rep) == "2026-06-04" and rep["2026-06-05"][:5] == [96, 48, 0, 48, 0]
    assert unfilled == sum(r[4] for r in rep.values())
    # collect --timeliness lists device 5's silent days as missing
    parser = argparse.ArgumentParser(prog="smeter")
    collect_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["collect", "--db", str(db), "--timeliness", "--device", "5"])
    when = datetime.datetime.fromisoformat(now).timestamp()
    import unittest.mock
    with unittest.mock.patch("time.time", return_value=when):
        assert args.func(args) == 0
    tl = capsys.readouterr().out.splitlines()
    days5 = {ln.split(",")[1]: ln.split(",") for ln in tl[1:]}
    assert sorted(days5)[0] == "2026-05-30" and sorted(days5)[-1] == "2026-06-06"
    assert days5["2026-06-05"][2:6] == ["48", "0", "0", "48"]  # due on_time late missing
