"""The collector's SQLite layout (schema 3): time-clustered tables, per-device reads that
seek instead of scanning, and the migrations of schema-1 and schema-2 databases."""
import os
import sqlite3

import pytest

from host_tools.collector import store

SCHEMA_1 = """
CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE slot_values (device_id INTEGER NOT NULL, slot INTEGER NOT NULL,
    import_wh INTEGER NOT NULL, export_wh INTEGER NOT NULL, flags INTEGER NOT NULL,
    status INTEGER NOT NULL, seq INTEGER NOT NULL, arrived_ms INTEGER NOT NULL,
    delay_ms INTEGER NOT NULL, PRIMARY KEY (device_id, slot)) WITHOUT ROWID;
CREATE TABLE frames (device_id INTEGER NOT NULL, seq INTEGER NOT NULL, kid INTEGER NOT NULL,
    status INTEGER NOT NULL, n_records INTEGER NOT NULL, arrived_ms INTEGER NOT NULL,
    peer TEXT, raw BLOB NOT NULL, PRIMARY KEY (device_id, seq)) WITHOUT ROWID;
CREATE TABLE rejections (id INTEGER PRIMARY KEY, arrived_ms INTEGER NOT NULL, peer TEXT,
    reason TEXT NOT NULL, detail TEXT, device_id INTEGER, seq INTEGER,
    raw_len INTEGER NOT NULL, raw BLOB NOT NULL);
CREATE INDEX rejections_reason ON rejections (reason);
CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def _plan(db, q, args):
    return " | ".join(r[-1] for r in db.execute("EXPLAIN QUERY PLAN " + q, args))


def _fill(st, devices, slots):
    st.begin()
    st.insert_frames([(d, s, 8, 0, 1, 1000 + s, "p", b"raw%d" % s)
                      for s in slots for d in devices])
    st.insert_values([(d, s, 10 * s + d, 0, 0, 0, s, 1000 + s, 5) for s in slots
                      for d in devices])
    st.commit()


def test_per_device_reads_seek_not_scan(tmp_path):
    st = store.Store(str(tmp_path / "c.db"))
    _fill(st, range(50), range(100, 140))
    st.db.execute("ANALYZE")
    rows = st.slot_values(7, 110, 119)
    assert [r.slot for r in rows] == list(range(110, 120))
    assert all(r.device_id == 7 and r.import_wh == 10 * r.slot + 7 for r in rows)
    assert [r.slot for r in st.slot_values(7)] == list(range(100, 140))
    assert [r.slot for r in st.slot_values(7, slot_from=135)] == list(range(135, 140))
    assert st.slot_values(7, 200, 300) == [] and st.slot_values(999) == []
    assert st.slot_values(7, 120, 110) == []
    plan = _plan(st.db, "WITH RECURSIVE s(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM s WHERE "
                 "x < ?) SELECT v.* FROM s CROSS JOIN slot_values v ON v.slot = s.x AND "
                 "v.device_id = ?", (110, 119, 7))
    assert "SEARCH v USING PRIMARY KEY (slot=? AND device_id=?)" in plan, plan
    assert "SEARCH frames USING INDEX frames_device_seq" in _plan(
        st.db, "SELECT raw FROM frames WHERE device_id=? AND seq=?", (7, 110))
    assert st.frame_raw(7, 110) == b"raw110"
    assert sorted(st.newest_seqs(7, 3)) == [137, 138, 139]
    st.close()


def test_steady_state_batch_writes_few_pages(tmp_path):
    """One frame from each of 1,000 devices for the same slot: the commit writes a few pages of
    each table plus the frames index, not a page per device per table (schema 1 wrote
    about 2,000 pages per such batch)."""
    path = str(tmp_path / "c.db")
    st = store.Store(path)
    st.db.execute("PRAGMA wal_autocheckpoint=0")
    devices = range(1000)
    for s in range(10):
        _fill(st, devices, [s])
    st.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert os.path.getsize(path + "-wal") == 0
    _fill(st, devices, [10])
    pages = os.path.getsize(path + "-wal") // (4096 + 24)
    assert 0 < pages < 150, pages
    st.close()


def test_schema_1_database_is_migrated(tmp_path):
    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.executemany("INSERT INTO slot_values VALUES (?,?,?,?,?,?,?,?,?)",
                   [(d, s, s + d, 1, 0, 0, s, 5000 - s, 7) for d in (3, -5) for s in (9, 8)])
    db.executemany("INSERT INTO frames VALUES (?,?,?,?,?,?,?,?)",
                   [(d, s, 8, 0, 1, 5000 - s, "p", b"f%d" % s) for d in (3, -5) for s in (9, 8)])
    db.execute("INSERT INTO counters VALUES ('accepted', 4)")
    db.commit()
    db.close()
    st = store.Store(path)
    assert st.migrated_from == 1
    assert st.db.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()[0] == "3"
    assert [(r.slot, r.import_wh) for r in st.slot_values(3)] == [(8, 11), (9, 12)]
    assert [r.slot for r in st.slot_values(2**64 - 5)] == [8, 9]
    assert st.frame_raw(2**64 - 5, 9) == b"f9"
    # frames keep arrival order in the new rowid table
    assert [r[0] for r in st.db.execute("SELECT arrived_ms FROM frames ORDER BY rowid")] == \
        [4991, 4991, 4992, 4992]
    assert st.counters() == {"accepted": 4}
    assert {r[0] for r in st.db.execute("SELECT name FROM sqlite_master")} >= {
        "frames_device_seq", "slot_values", "frames"}
    assert not {"slot_values_v1", "frames_v1"} & {
        r[0] for r in st.db.execute("SELECT name FROM sqlite_master")}
    st.close()
    again = store.Store(path)  # already current: nothing to do
    assert again.migrated_from is None and again.count_values() == 4
    again.close()


# Schema 2 as it was (commit a3a2d6c): the TSO tools' tables were added on first use by
# tso/values.py (CREATE TABLE IF NOT EXISTS), outside the schema version.
SCHEMA_2 = """
CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE slot_values (device_id INTEGER NOT NULL, slot INTEGER NOT NULL,
    import_wh INTEGER NOT NULL, export_wh INTEGER NOT NULL, flags INTEGER NOT NULL,
    status INTEGER NOT NULL, seq INTEGER NOT NULL, arrived_ms INTEGER NOT NULL,
    delay_ms INTEGER NOT NULL, PRIMARY KEY (slot, device_id)) WITHOUT ROWID;
CREATE TABLE frames (device_id INTEGER NOT NULL, seq INTEGER NOT NULL, kid INTEGER NOT NULL,
    status INTEGER NOT NULL, n_records INTEGER NOT NULL, arrived_ms INTEGER NOT NULL,
    peer TEXT, raw BLOB NOT NULL);
CREATE UNIQUE INDEX frames_device_seq ON frames (device_id, seq);
CREATE TABLE rejections (id INTEGER PRIMARY KEY, arrived_ms INTEGER NOT NULL, peer TEXT,
    reason TEXT NOT NULL, detail TEXT, device_id INTEGER, seq INTEGER,
    raw_len INTEGER NOT NULL, raw BLOB NOT NULL);
CREATE INDEX rejections_reason ON rejections (reason);
CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO meta VALUES ('schema_version', '2');
"""
TSO_TABLES_2 = """
CREATE TABLE register_reads (device_id INTEGER NOT NULL, slot INTEGER NOT NULL,
    import_total_wh INTEGER NOT NULL, export_total_wh INTEGER NOT NULL, source TEXT NOT NULL,
    PRIMARY KEY (device_id, slot)) WITHOUT ROWID;
CREATE TABLE value_sets (device_id INTEGER NOT NULL, slot INTEGER NOT NULL,
    kind INTEGER NOT NULL, import_wh INTEGER NOT NULL, export_wh INTEGER NOT NULL,
    method TEXT NOT NULL, estimated INTEGER NOT NULL, made_unix INTEGER NOT NULL,
    revision INTEGER NOT NULL, PRIMARY KEY (device_id, slot, kind)) WITHOUT ROWID;
"""


@pytest.mark.parametrize("with_tso_tables", [False, True])
def test_schema_2_database_is_migrated(tmp_path, with_tso_tables):
    """Schema 3 takes the TSO tools' tables (value sets, register reads) under the version: a
    schema-2 database gets them, or keeps those it had, rows and all; the TSO code then
    reads and writes them through the store's API."""
    from host_tools.tso import values

    path = str(tmp_path / "v2.db")
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_2 + (TSO_TABLES_2 if with_tso_tables else ""))
    db.executemany("INSERT INTO slot_values VALUES (?,?,?,?,?,?,?,?,?)",
                   [(-5, s, s, 1, 0, 0, s, 5000, 7) for s in (8, 9)])
    if with_tso_tables:
        db.execute("INSERT INTO value_sets VALUES (-5, 8, 1, 8, 1, 'measured', 0, 4000, 0)")
        db.execute("INSERT INTO register_reads VALUES (-5, 8, 100, 200, 'manual')")
    db.commit()
    db.close()
    st = store.Store(path)
    assert st.migrated_from == 2
    assert st.db.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()[0] == "3"
    assert [(r.slot, r.import_wh) for r in st.slot_values(2**64 - 5)] == [(8, 8), (9, 9)]
    kept = values.value_set(st, values.PRELIMINARY)
    assert [(r.device_id, r.slot, r.made_unix) for r in kept] == \
        ([(2**64 - 5, 8, 4000)] if with_tso_tables else [])
    assert st.register_reads(0, 100) == ([(-5, 8, 100, 200)] if with_tso_tables else [])
    values.add_reads(st, [(2**64 - 5, 10, 110, 200)])
    assert st.register_reads(10, 10) == [(-5, 10, 110, 200)]
    assert {r[0] for r in st.db.execute("SELECT name FROM sqlite_master")} >= {
        "value_sets", "register_reads", "seals", "slot_quality"}
    st.close()
    again = store.Store(path)
    assert again.migrated_from is None
    again.close()


def test_unknown_schema_version_is_refused(tmp_path):
    path = str(tmp_path / "new.db")
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1.replace("'1'", "'7'"))
    db.close()
    with pytest.raises(sqlite3.DatabaseError, match="schema version 7"):
        store.Store(path)


@pytest.mark.parametrize("n", [0, 1, store.MULTI_ROW - 1, store.MULTI_ROW, store.MULTI_ROW + 1,
                               3 * store.MULTI_ROW + 7])
def test_multi_row_inserts_count_and_keep_every_row(tmp_path, n):
    """Rows go in multi-row statements plus a remainder: each row stored once, in order,
    and the count of new values excludes (device, slot) rows already present."""
    st = store.Store(str(tmp_path / "c.db"))
    st.begin()
    st.insert_values([(5, s, 1, 0, 0, 0, 1, 0, 0) for s in range(0, 400, 3)])  # every 3rd slot
    frames = [(d, d * 7, 8, 0, 1, d, "p", b"r%d" % d) for d in range(n)]
    st.insert_frames(frames)
    new = st.insert_values([(5, s, 2, 0, 0, 0, 2, 0, 0) for s in range(n)])
    st.commit()
    assert new == n - len(range(0, n, 3))
    assert st.db.execute("SELECT device_id, seq, kid, status, n_records, arrived_ms, peer, raw "
                         "FROM frames ORDER BY rowid").fetchall() == frames
    got = {r.slot: r.import_wh for r in st.slot_values(5)}
    assert all(got[s] == (1 if s % 3 == 0 else 2) for s in range(n))
    with pytest.raises(sqlite3.IntegrityError):  # (device_id, seq) stays unique
        st.insert_frames(frames[-1:] * 2 if n else [(1, 1, 8, 0, 1, 0, "p", b"")] * 2)
    st.close()


def test_slot_quality_view_decodes_the_bound_code_like_edge_flags(tmp_path):
    from edge.flags import BOUND_SHIFT, ESTIMATED, bound_code, flag_bound

    s = store.Store(str(tmp_path / "q.db"))
    rows = []
    for i, c in enumerate(range(32)):
        rows.append((1, 100 + i, 10, 0, ESTIMATED | 1 | c << BOUND_SHIFT, 0, i, 0, 0))
    rows.append((1, 200, 10, 0, 3, 0, 99, 0, 0))  # not estimated: no bound carried
    s.db.executemany("INSERT INTO slot_values VALUES (?,?,?,?,?,?,?,?,?)", rows)
    got = dict(s.db.execute("SELECT slot, bound_wh FROM slot_quality WHERE device_id = 1"))
    for r in rows[:-1]:
        assert got[r[1]] == flag_bound(r[4]), r
    assert got[200] is None
    assert bound_code(got[105]) == 5
