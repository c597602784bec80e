"""`smeter complete` (both modes) and `smeter purge` through their entry points."""
import argparse
import datetime

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS
from host_tools import complete_cmd, gen_tso_data_cmd, purge_cmd
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
    assert "preliminary values issued: 147, confirmed: 146" in cap.out
    t = pacsv.read_csv(str(out)).to_pydict()
    sel = [i for i, (s, m) in enumerate(zip(t["set"], t["method"])) if s == "confirmed"
           and m == "bracketed"]
    # 1000 Wh between the readings minus 4 delivered slots of 100 -> 600 over 4 slots
    assert [t["import_wh"][i] for i in sel] == [150] * 4
    assert [t["slot_of_day"][i] for i in sel] == [21, 22, 23, 24]
    lines = rep.read_text().splitlines()
    assert lines[0].startswith("date,due,on_time,late,estimated,unfilled")
    assert lines[-1].startswith("2026-06-01,48,44,0,4,0,")
    # bad inputs: exit 1 with a message
    reads.write_text("device_id,read_at,import_total_wh,export_total_wh\n5,%s,1,0\n"
                     % iso(FIRST)[:-6].replace("00:00", "00:10"))
    assert smeter("complete", "--db", db, "--reads", reads) == 1
    assert smeter("complete", "--db", tmp_path / "none.db") == 1
    assert smeter("complete", "--db", db, "--backfill", "3w") == 1
    assert smeter("complete", "--data", tmp_path) == 1  # --data needs --out


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
    assert smeter("purge", "--db", db, "--older-than", "soon") == 1


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
    printed = capsys.readouterr().out
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
