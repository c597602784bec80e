"""The head-end's SQLite store (WAL): slot values, raw frames for audit, rejections, state.

Schema in docs/collector.md. SQLite integers are signed 64-bit while device ids and sequence
numbers are unsigned 64-bit on the wire, so they are stored in two's complement (values
>= 2**63 become negative) and converted back by this module's readers: read through this
API, or apply the same mapping in raw SQL.
"""
import collections
import itertools
import operator
import sqlite3
import threading

from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS

SCHEMA_VERSION = 3
WRITER_CACHE_KIB = 65536  # page cache of the writer connection (SQLite default: 2 MiB)
CHECKPOINT_INTERVAL_S = 0.1
# With the checkpoint thread running, the writer checkpoints itself only past this many
# WAL pages (16,000 x 4 KiB = 64 MiB); SQLite's default is 1,000.
FALLBACK_AUTOCHECKPOINT_PAGES = 16000
# Rows per INSERT statement on the hot path (x 9 columns stays far below SQLite's limit of
# 32,766 host parameters).
MULTI_ROW = 64
_TWO63 = 1 << 63
_TWO64 = 1 << 64
_chain = itertools.chain.from_iterable

# The stored rows of an accepted frame, declared once: (column, SQL type). Every writer
# builds its rows in this order — ingest.py's two Python paths through frame_row/value_row,
# the C loop (_fastpath.c) by mapping these names once — and the INSERTs name the columns.
FRAME_TABLE = (
    ("device_id", "INTEGER NOT NULL"),
    ("seq", "INTEGER NOT NULL"),
    ("kid", "INTEGER NOT NULL"),
    ("status", "INTEGER NOT NULL"),
    ("n_records", "INTEGER NOT NULL"),
    ("arrived_ms", "INTEGER NOT NULL"),
    ("peer", "TEXT"),
    ("raw", "BLOB NOT NULL"),
)
VALUE_TABLE = (  # one 30-minute value
    ("device_id", "INTEGER NOT NULL"),
    ("slot", "INTEGER NOT NULL"),
    ("import_wh", "INTEGER NOT NULL"),
    ("export_wh", "INTEGER NOT NULL"),
    ("flags", "INTEGER NOT NULL"),
    ("status", "INTEGER NOT NULL"),
    ("seq", "INTEGER NOT NULL"),
    ("arrived_ms", "INTEGER NOT NULL"),
    ("delay_ms", "INTEGER NOT NULL"),
)
FRAME_COLUMNS = tuple(c for c, _ in FRAME_TABLE)
VALUE_COLUMNS = tuple(c for c, _ in VALUE_TABLE)


_V_DEV = VALUE_COLUMNS.index("device_id")
_V_SEQ = VALUE_COLUMNS.index("seq")
_FRAME_FIELDS = operator.itemgetter(*FRAME_COLUMNS)
_VALUE_FIELDS = operator.itemgetter(*VALUE_COLUMNS)


def frame_row(**fields):
    """A frames row from its fields by column name (all of FRAME_COLUMNS), in table order."""
    return _FRAME_FIELDS(fields)


def value_row(**fields):
    """A slot_values row from its fields by column name (all of VALUE_COLUMNS)."""
    return _VALUE_FIELDS(fields)


def _columns_sql(table):
    return ",\n".join("    %-10s %s" % c for c in table)


# Version 2 clusters both hot tables by time, not by device: a steady-state batch holds one
# frame from each of many devices for the slot that just closed, so keyed by device it
# dirtied one leaf page per device in each table (most of a commit's cost); keyed by slot
# (slot_values) or arrival (frames, a rowid table) the batch lands on a few adjacent pages.
# Only the small (device_id, seq) index of frames is still written per device.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slot_values (
%s,
    PRIMARY KEY (slot, device_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS frames (
%s
);
CREATE UNIQUE INDEX IF NOT EXISTS frames_device_seq ON frames (device_id, seq);
""" % (_columns_sql(VALUE_TABLE), _columns_sql(FRAME_TABLE)) + """
CREATE TABLE IF NOT EXISTS rejections (
    id         INTEGER PRIMARY KEY,
    arrived_ms INTEGER NOT NULL,
    peer       TEXT,
    reason     TEXT NOT NULL,
    detail     TEXT,
    device_id  INTEGER,
    seq        INTEGER,
    raw_len    INTEGER NOT NULL,
    raw        BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_reason ON rejections (reason);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seals (
    device_id  INTEGER NOT NULL,
    day        INTEGER NOT NULL,
    first_slot INTEGER NOT NULL,
    n_slots    INTEGER NOT NULL,
    key_no     INTEGER NOT NULL,
    arrived_ms INTEGER NOT NULL,
    raw        BLOB NOT NULL,
    verdict    TEXT NOT NULL,
    detail     TEXT,
    PRIMARY KEY (device_id, day, first_slot, n_slots)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS register_reads (
    device_id       INTEGER NOT NULL,
    slot            INTEGER NOT NULL,
    import_total_wh INTEGER NOT NULL,
    export_total_wh INTEGER NOT NULL,
    source          TEXT NOT NULL,
    PRIMARY KEY (device_id, slot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS value_sets (
    device_id  INTEGER NOT NULL,
    slot       INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    import_wh  INTEGER NOT NULL,
    export_wh  INTEGER NOT NULL,
    method     TEXT NOT NULL,
    estimated  INTEGER NOT NULL,
    made_unix  INTEGER NOT NULL,
    revision   INTEGER NOT NULL,
    PRIMARY KEY (device_id, slot, kind)
) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS slot_quality AS
    SELECT device_id, slot, import_wh, export_wh, flags,
           (flags & 64) != 0 AS estimated,
           CASE WHEN (flags & 64) = 0 THEN NULL
                WHEN (flags >> 8) & 31 = 31 THEN -1
                WHEN (flags >> 8) & 31 = 0 THEN 1
                ELSE (2 | ((((flags >> 8) & 31) + 1) & 1)) << ((((flags >> 8) & 31) - 1) >> 1)
           END AS bound_wh
    FROM slot_values;
"""

# Schema 1 -> 2: the same columns, re-clustered (see SCHEMA); frames keep arrival order.
_MIGRATE_1_TO_2 = """
ALTER TABLE slot_values RENAME TO slot_values_v1;
ALTER TABLE frames RENAME TO frames_v1;
%(schema)s
INSERT INTO slot_values (%(v)s) SELECT %(v)s FROM slot_values_v1;
INSERT INTO frames (%(f)s) SELECT %(f)s FROM frames_v1 ORDER BY arrived_ms, device_id, seq;
DROP TABLE slot_values_v1;
DROP TABLE frames_v1;
UPDATE meta SET v = '2' WHERE k = 'schema_version';
""" % {"schema": SCHEMA, "v": ", ".join(VALUE_COLUMNS), "f": ", ".join(FRAME_COLUMNS)}
# Schema 2 -> 3: the TSO tools' tables (register_reads, value_sets; docs/completion.md) and
# the seals table come under the schema version. Under 2 they were created on first use by
# CREATE TABLE IF NOT EXISTS, so a version-2 database may hold them already, rows and all:
# kept as they are (same definitions).
_MIGRATE_2_TO_3 = """
%s
UPDATE meta SET v = '3' WHERE k = 'schema_version';
""" % SCHEMA
_MIGRATIONS = {"1": _MIGRATE_1_TO_2, "2": _MIGRATE_2_TO_3}

SlotValue = collections.namedtuple("SlotValue", VALUE_COLUMNS)
# day is yyyymmdd (JST), first_slot 1..48 within it (docs/seals.md); verdict is what the
# collector found when it checked the seal against its stored values.
SealRow = collections.namedtuple(
    "SealRow", "device_id day first_slot n_slots key_no arrived_ms raw verdict detail"
)
Rejection = collections.namedtuple(
    "Rejection", "id arrived_ms peer reason detail device_id seq raw_len raw"
)


def s64(v):
    """Unsigned 64-bit -> the signed value SQLite stores."""
    return v - _TWO64 if v >= _TWO63 else v


def u64(v):
    return v + _TWO64 if v is not None and v < 0 else v


def slot_end_unix(slot):
    """Unix seconds at which a slot closes (edge/timebase.py: slot 0 starts at the epoch)."""
    return EDGE_EPOCH_UNIX + (slot + 1) * SLOT_SECONDS


def slot_range(args, slot_from=None, slot_to=None):
    """SQL ' AND slot>=? AND slot<=?' for the bounds given (inclusive), appending to args."""
    q = ""
    if slot_from is not None:
        q += " AND slot>=?"
        args.append(slot_from)
    if slot_to is not None:
        q += " AND slot<=?"
        args.append(slot_to)
    return q


class Store:
    """One SQLite database. The collector is the only writer; readers may open it alongside."""

    def __init__(self, path, readonly=False, timeout=10.0):
        self.path = path
        self._ckpt_stop = None
        self._ckpt_thread = None
        self.migrated_from = None
        if readonly:
            self.db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=timeout)
        else:
            self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a committed batch survives a process crash; an OS crash may lose
            # the last batches, which the devices then resend (they were acked only after
            # commit, and NORMAL still never corrupts the database).
            self.db.execute("PRAGMA synchronous=NORMAL")
            # A steady-state batch still touches one page per device of the frames index; a
            # cache larger than the default 2 MiB keeps those in memory between batches.
            self.db.execute("PRAGMA cache_size=%d" % -WRITER_CACHE_KIB)
            self.migrated_from = self._migrate()
            self.db.executescript(SCHEMA)
            row = self.db.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                                (str(SCHEMA_VERSION),))

    def _migrate(self):
        """Bring an older database to SCHEMA_VERSION in one transaction; returns the version
        it had (None: new or current). A newer or unknown version is refused."""
        has_meta = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            return None
        row = self.db.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()
        if row is None or row[0] == str(SCHEMA_VERSION):
            return None
        if row[0] not in _MIGRATIONS:
            raise sqlite3.DatabaseError("schema version %s, expected %d (or 1 or 2, migrated)"
                                        % (row[0], SCHEMA_VERSION))
        self.db.execute("BEGIN IMMEDIATE")
        try:
            v = row[0]
            while v != str(SCHEMA_VERSION):
                for stmt in _MIGRATIONS[v].split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
                v = str(int(v) + 1)
            self.db.execute("COMMIT")
        except Exception:
            self.db.execute("ROLLBACK")
            raise
        return int(row[0])

    def close(self):
        self.stop_checkpointer()
        self.db.close()

    def start_checkpointer(self, interval=CHECKPOINT_INTERVAL_S):
        """Move WAL checkpoints off the commit path: a thread with its own connection runs a
        PASSIVE checkpoint every `interval` s (sqlite3 releases the GIL meanwhile, so it
        uses another core). The writer's own automatic checkpoint stays as a fallback, at a
        higher threshold, should the thread fall behind. Durability is unchanged: a batch
        is durable once its commit reaches the WAL; checkpoints only copy it into the main
        file. Call once, on the writer; close() stops the thread."""
        if self._ckpt_thread is not None:
            return
        self.db.execute("PRAGMA wal_autocheckpoint=%d" % FALLBACK_AUTOCHECKPOINT_PAGES)
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None,
                               check_same_thread=False)
        stop = threading.Event()

        def loop():
            try:
                while not stop.wait(interval):
                    try:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.OperationalError:
                        pass  # busy: the next round or the fallback catches up
            finally:
                conn.close()

        self._ckpt_stop = stop
        self._ckpt_thread = threading.Thread(target=loop, name="wal-checkpoint", daemon=True)
        self._ckpt_thread.start()

    def stop_checkpointer(self):
        if self._ckpt_thread is not None:
            self._ckpt_stop.set()
            self._ckpt_thread.join()
            self._ckpt_thread = None

    # ------------------------------------------------------------ writer (collector only)

    def begin(self):
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self):
        self.db.execute("COMMIT")

    def rollback(self):
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def _insert(self, verb, table, columns, rows):
        """INSERT rows in statements of MULTI_ROW rows each (multi-row VALUES), the rest one
        by one; returns the number of rows inserted. Per-row statement overhead is a third
        of an executemany insert's cost, and these tables take every accepted frame."""
        ncols = len(columns)
        table = "%s (%s)" % (table, ", ".join(columns))
        one = "(%s)" % ",".join("?" * ncols)
        n = len(rows)
        full = n - n % MULTI_ROW
        done = 0
        if full:
            q = "%s INTO %s VALUES %s" % (verb, table, ",".join([one] * MULTI_ROW))
            ex = self.db.execute
            flat = list(_chain(rows[:full]))
            step = MULTI_ROW * ncols
            for i in range(0, len(flat), step):
                done += ex(q, flat[i : i + step]).rowcount
        if full < n:
            done += self.db.executemany("%s INTO %s VALUES %s" % (verb, table, one),
                                        rows[full:]).rowcount
        return done

    def insert_frames(self, rows):
        """rows: tuples in FRAME_COLUMNS order (frame_row), ids and seqs s64 applied."""
        self._insert("INSERT", "frames", FRAME_COLUMNS, rows)

    def insert_values(self, rows):
        """rows: tuples in VALUE_COLUMNS order (value_row); returns how many were new
        ((device, slot) dedup)."""
        return self._insert("INSERT OR IGNORE", "slot_values", VALUE_COLUMNS, rows)

    def stored_for(self, device_id_s64, slots):
        """{slot: (import_wh, export_wh, flags, seq)} already stored for these slots."""
        out = {}
        slots = sorted(set(slots))
        for i in range(0, len(slots), 500):
            part = slots[i : i + 500]
            q = ("SELECT slot, import_wh, export_wh, flags, seq FROM slot_values "
                 "WHERE device_id=? AND slot IN (%s)" % ",".join("?" * len(part)))
            for r in self.db.execute(q, [device_id_s64] + part):
                out[r[0]] = (r[1], r[2], r[3], u64(r[4]))
        return out

    def insert_rejections(self, rows):
        """rows: (arrived_ms, peer, reason, detail, device_id, seq, raw_len, raw)."""
        self.db.executemany(
            "INSERT INTO rejections (arrived_ms, peer, reason, detail, device_id, seq, raw_len, raw)"
            " VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )

    def add_counters(self, counts):
        self.db.executemany(
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET n = n + excluded.n",
            list(counts.items()),
        )

    # ------------------------------------------------------------ readers (public API)

    def newest_seqs(self, device_id, n):
        """The n highest accepted sequence numbers of a device (unsigned order), any order."""
        d = s64(device_id)
        q = "SELECT seq FROM frames WHERE device_id=? AND seq %s 0 ORDER BY seq DESC LIMIT ?"
        # seqs >= 2**63 are stored negative and are the highest
        out = [u64(r[0]) for r in self.db.execute(q % "<", (d, n))]
        if len(out) < n:
            out += [r[0] for r in self.db.execute(q % ">=", (d, n - len(out)))]
        return out

    def frame_raw(self, device_id, seq):
        r = self.db.execute(
            "SELECT raw FROM frames WHERE device_id=? AND seq=?", (s64(device_id), s64(seq))
        ).fetchone()
        return None if r is None else bytes(r[0])

    def slot_values(self, device_id, slot_from=None, slot_to=None):
        """Stored 30-minute values of one device, ascending slot; bounds inclusive.

        The table is clustered by slot, so this walks the slots of the range and looks each
        (slot, device) up, instead of scanning every device's rows in the range."""
        lo, hi = slot_from, slot_to
        if lo is None or hi is None:
            first, last = self.db.execute("SELECT min(slot), max(slot) FROM slot_values").fetchone()
            if first is None:
                return []
            lo = first if lo is None else max(lo, first)
            hi = last if hi is None else min(hi, last)
        if lo > hi:
            return []
        q = ("WITH RECURSIVE s(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM s WHERE x < ?) "
             "SELECT %s FROM s CROSS JOIN slot_values v ON v.slot = s.x AND v.device_id = ? "
             "ORDER BY v.slot" % ", ".join("v." + c for c in VALUE_COLUMNS))
        return [SlotValue._make(r)._replace(device_id=u64(r[_V_DEV]), seq=u64(r[_V_SEQ]))
                for r in self.db.execute(q, (lo, hi, s64(device_id)))]

    def put_seal(self, device_id, day, first_slot, n_slots, key_no, arrived_ms, raw, verdict,
                 detail=None):
        """Store (or replace, for a resent seal) one device-day seal and its check verdict."""
        self.db.execute("INSERT OR REPLACE INTO seals VALUES (?,?,?,?,?,?,?,?,?)",
                        (s64(device_id), day, first_slot, n_slots, key_no, arrived_ms,
                         bytes(raw), verdict, detail))

    def seals(self, device_id=None, day=None):
        """Stored seals, by device, day and range; filtered when device_id/day are given."""
        q, args = "SELECT * FROM seals WHERE 1=1", []
        if device_id is not None:
            q += " AND device_id=?"
            args.append(s64(device_id))
        if day is not None:
            q += " AND day=?"
            args.append(day)
        return [SealRow(u64(r[0]), r[1], r[2], r[3], r[4], r[5], bytes(r[6]), r[7], r[8])
                for r in self.db.execute(q + " ORDER BY device_id, day, first_slot, n_slots", args)]

    def value_days(self):
        """[(device_id, JST day number)] that hold at least one stored value, ascending."""
        return [(u64(d), day) for d, day in self.db.execute(
            "SELECT DISTINCT device_id, slot / 48 FROM slot_values ORDER BY 1, 2")]

    def devices(self):
        return [u64(r[0]) for r in
                self.db.execute("SELECT DISTINCT device_id FROM slot_values ORDER BY device_id")]

    def count_values(self):
        return self.db.execute("SELECT count(*) FROM slot_values").fetchone()[0]

    def count_frames(self):
        return self.db.execute("SELECT count(*) FROM frames").fetchone()[0]

    def rejections(self, reason=None):
        q = "SELECT * FROM rejections"
        args = ()
        if reason is not None:
            q += " WHERE reason=?"
            args = (reason,)
        return [
            Rejection(r[0], r[1], r[2], r[3], r[4], u64(r[5]), u64(r[6]), r[7], bytes(r[8]))
            for r in self.db.execute(q + " ORDER BY id", args)
        ]

    def counters(self):
        """Cumulative counters over all runs: accepted frames, stored slots, each reason."""
        return dict(self.db.execute("SELECT name, n FROM counters"))

    # ------------------------------------------------------------ delivery timeliness

    def delivery_by_day(self, last_due, deadline_ms, slots_per_day, device_id=None,
                        slot_from=None, slot_below=None):
        """Per (device, day = slot // slots_per_day) with stored values: (device_id, day,
        stored due slots delivered within deadline_ms, max delay_ms, stored due slots), due
        meaning slot <= last_due; ascending. For collector.timeliness."""
        q = ("SELECT device_id, slot / %d AS day, sum(slot <= ? AND delay_ms <= ?), "
             "max(delay_ms), sum(slot <= ?) FROM slot_values" % slots_per_day)
        args = [last_due, deadline_ms, last_due]
        where = []
        if device_id is not None:
            where.append("device_id = ?")
            args.append(s64(device_id))
        if slot_from is not None:
            where.append("slot >= ?")
            args.append(slot_from)
        if slot_below is not None:
            where.append("slot < ?")
            args.append(slot_below)
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " GROUP BY device_id, day ORDER BY device_id, day"
        return [(u64(r[0]),) + tuple(r[1:]) for r in self.db.execute(q, args)]

    def first_slot(self):
        """The lowest slot with a stored value, or None."""
        return self.db.execute("SELECT min(slot) FROM slot_values").fetchone()[0]

    # ------------------------------------------------------------ TSO value sets
    # (host_tools/tso/values.py; docs/completion.md). Device ids in and out of the bulk
    # readers below are as stored (store.s64), which is what the numpy arrays there hold.

    def _joined(self, table, rows, query, args=()):
        """Fill a temporary table and run `query` joined to it (index seeks and range scans,
        never a scan of the whole history). One savepoint: rows are not committed one by
        one."""
        db = self.db
        db.execute("SAVEPOINT _cv")
        try:
            db.execute("DROP TABLE IF EXISTS temp.%s" % table)
            if table == "_cv_devs":
                db.execute("CREATE TEMP TABLE _cv_devs (id INTEGER PRIMARY KEY)")
                db.executemany("INSERT INTO _cv_devs VALUES (?)", rows)
            else:
                db.execute("CREATE TEMP TABLE %s (device_id INTEGER, slot INTEGER, idx INTEGER)"
                           % table)
                db.executemany("INSERT INTO %s VALUES (?,?,?)" % table, rows)
            out = db.execute(query, args).fetchall()
            db.execute("DROP TABLE temp.%s" % table)
        finally:
            db.execute("RELEASE _cv")
        return out

    def values_of(self, stored_ids, slot_from, slot_to, flag_mask=0):
        """[(device_id, slot, import_wh, export_wh, flags & flag_mask)] of these devices (as
        stored) in slot_from..slot_to inclusive, any order."""
        return self._joined(
            "_cv_devs", [(int(k),) for k in stored_ids],
            "SELECT v.device_id, v.slot, v.import_wh, v.export_wh, v.flags & %d FROM "
            "slot_values v CROSS JOIN _cv_devs d ON d.id = v.device_id WHERE v.slot >= ? AND "
            "v.slot <= ?" % int(flag_mask), (slot_from, slot_to))

    def values_at(self, wanted):
        """wanted: [(device_id as stored, slot, idx)] -> [(idx, import_wh, export_wh)] for
        those stored."""
        return self._joined("_cv_want", wanted,
                            "SELECT w.idx, v.import_wh, v.export_wh FROM _cv_want w CROSS JOIN "
                            "slot_values v ON v.device_id = w.device_id AND v.slot = w.slot")

    def add_register_reads(self, rows, source):
        """rows: (device_id, slot, import_total_wh, export_total_wh), a reading at the start
        of `slot`; replaces an earlier reading of the same boundary."""
        self.db.executemany("INSERT OR REPLACE INTO register_reads VALUES (?,?,?,?,?)",
                            [(s64(d), int(sl), int(i), int(e), source) for d, sl, i, e in rows])

    def register_reads(self, slot_from, slot_to):
        """[(device_id as stored, slot, import_total_wh, export_total_wh)] in the range
        (inclusive), by device and slot."""
        return self.db.execute(
            "SELECT device_id, slot, import_total_wh, export_total_wh FROM register_reads "
            "WHERE slot >= ? AND slot <= ? ORDER BY device_id, slot",
            (slot_from, slot_to)).fetchall()

    def value_set_kinds(self, stored_ids, slot_from, slot_to):
        """[(device_id as stored, slot, kind, method)] the value sets hold for these devices
        in the range (inclusive)."""
        return self._joined(
            "_cv_devs", [(int(k),) for k in stored_ids],
            "SELECT v.device_id, v.slot, v.kind, v.method FROM _cv_devs d CROSS JOIN value_sets v"
            " ON v.device_id = d.id AND v.slot >= ? AND v.slot <= ?", (slot_from, slot_to))

    def write_value_sets(self, made_unix, new, revised, revised_kind):
        """One transaction: new: {kind: [(device_id as stored, slot, import_wh, export_wh,
        method, estimated)]} inserted at revision 0 (an existing row is left alone: a
        concurrent run made it); revised: such rows replacing the value of `revised_kind`,
        revision + 1."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for kind, rows in new.items():
                db.executemany("INSERT OR IGNORE INTO value_sets VALUES (?,?,%d,?,?,?,?,%d,0)"
                               % (int(kind), int(made_unix)), rows)
            db.executemany("UPDATE value_sets SET import_wh=?, export_wh=?, method=?, "
                           "estimated=?, made_unix=%d, revision=revision+1 WHERE device_id=? "
                           "AND slot=? AND kind=%d" % (int(made_unix), int(revised_kind)),
                           [(r[2], r[3], r[4], r[5], r[0], r[1]) for r in revised])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def value_set(self, kind, device_id=None, slot_from=None, slot_to=None):
        """Rows of one value set: (device_id, slot, kind, import_wh, export_wh, method,
        estimated, made_unix, revision), ascending (device, slot)."""
        q = "SELECT * FROM value_sets WHERE kind=?"
        args = [kind]
        if device_id is not None:
            q += " AND device_id=?"
            args.append(s64(device_id))
        q += slot_range(args, slot_from, slot_to)
        rows = [(u64(r[0]),) + tuple(r[1:]) for r in self.db.execute(q, args)]
        rows.sort(key=lambda r: (r[0], r[1]))
        return rows

    def set_delivery_by_day(self, kind, deadline_s, last_due, slot_from, slots_per_day):
        """Per day (slot // slots_per_day) of the set `kind`'s values for slots slot_from ..
        last_due: (day, values without a stored 30-minute value behind them, values made
        within deadline_s of their slot's end)."""
        q = ("SELECT p.slot / %d, sum(v.slot IS NULL), "
             "sum(p.made_unix - (? + (p.slot + 1) * %d) <= ?) "
             "FROM value_sets p LEFT JOIN slot_values v ON v.device_id = p.device_id AND "
             "v.slot = p.slot WHERE p.kind = ? AND p.slot <= ? AND p.slot >= ? GROUP BY 1"
             % (slots_per_day, SLOT_SECONDS))
        return self.db.execute(q, (EDGE_EPOCH_UNIX, deadline_s, kind, last_due,
                                   slot_from)).fetchall()

    def purge_before(self, slot, arrived_ms, dry_run=False):
        """Delete (or with dry_run only count) in one transaction the values, value sets and
        register reads before `slot` and the frames and rejections that arrived before
        `arrived_ms`. Returns {table: rows}."""
        where = (("slot_values", "slot < ?", slot), ("value_sets", "slot < ?", slot),
                 ("register_reads", "slot < ?", slot), ("frames", "arrived_ms < ?", arrived_ms),
                 ("rejections", "arrived_ms < ?", arrived_ms))
        counts = collections.OrderedDict()
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for table, cond, arg in where:
                counts[table] = db.execute("SELECT count(*) FROM %s WHERE %s" % (table, cond),
                                           (arg,)).fetchone()[0]
                if not dry_run:
                    db.execute("DELETE FROM %s WHERE %s" % (table, cond), (arg,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return counts
