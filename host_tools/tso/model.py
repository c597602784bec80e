"""The TSO-side data model, columnar, and its loading from CSV or Parquet.

Everything the TSO knows about one data set (docs/tso-data.md has the file formats):

- balancing groups (BG, バランシンググループ): id and kind, `demand` or `generation`;
- resources (リソース): one per site, with the kind of point its adjustment is measured at
  (`M` receiving point 受電点, `m` device point 機器点), a free resource type, its demand BG,
  its generation BG ("" if none), whether the site has a generation contract (発電量調整供給契約,
  i.e. it may reverse-flow 逆潮流) and the loss factor between m and M in ppm;
- list patterns (リスト・パターン), groups (群) inside them, and group membership;
- BG plans (計画値) per date and slot, DR events (発動) per group, date and slot range;
- per-slot values as dense int64 Wh arrays shaped (days, resources, 48): the receiving-point
  net flow (+ export / 逆潮流, − import), the device-point value (+ delivered into the site:
  generation or discharge, − consumed), and optional device-point plans (基準値計画).

Slots are 0..47 in arrays and 1..48 in files (slot 1 = 00:00-00:30 JST, docs/glossary.md#slot).
Loading never rejects a data set for bad references: those become `load_problems`, which
host_tools.tso.validate reports together with every other broken rule.
"""
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from host_tools.tso import partitions
from host_tools.tso.errors import LoadError, Problem

SLOTS = 48
SLOT_COLUMNS = tuple("s%02d" % i for i in range(1, SLOTS + 1))
POINT_RECEIVING = "M"
POINT_DEVICE = "m"
BG_DEMAND = "demand"
BG_GENERATION = "generation"
BASELINE_METHODS = ("plan", "high4of5", "prev_day")

_STR = pa.string()
_INT = pa.int64()
_DATE = pa.date32()

# table name -> ordered (column, arrow type, required)
SCHEMAS = {
    "balancing_groups": (("bg_id", _STR, True), ("kind", _STR, True)),
    "resources": (
        ("resource_id", _STR, True), ("point", _STR, True), ("resource_type", _STR, True),
        ("demand_bg", _STR, True), ("generation_bg", _STR, True),
        ("gen_contract", _INT, True), ("loss_ppm", _INT, True)),
    "list_patterns": (("list_pattern_id", _STR, True), ("kind", _STR, False)),
    "groups": (("group_id", _STR, True), ("list_pattern_id", _STR, True),
               ("baseline_method", _STR, True)),
    "members": (("group_id", _STR, True), ("resource_id", _STR, True)),
    "bg_plans": (("bg_id", _STR, True), ("date", _DATE, True), ("slot", _INT, True),
                 ("plan_wh", _INT, True)),
    "events": (("group_id", _STR, True), ("date", _DATE, True), ("start_slot", _INT, True),
               ("end_slot", _INT, True)),
}
WIDE = partitions.WIDE
WIDE_SCHEMA = (("resource_id", _STR, True), ("date", _DATE, True)) + tuple(
    (c, _INT, True) for c in SLOT_COLUMNS)
PARTITION_SCHEMA = (WIDE_SCHEMA[0],) + WIDE_SCHEMA[2:]  # date (and demand BG) in the path
OPTIONAL = ("device", "device_plans", "events", "list_patterns")
# Every file a written data set may hold (tables, market data, a completion's record): what
# a writer replacing an output directory owns (host_tools/atomic_output.atomic_dir).
TABLE_FILES = tuple(n + ext for n in tuple(SCHEMAS) + WIDE + ("market", "completion", "estimated")
                    for ext in (".parquet", ".csv"))


class Table:
    """Equal-length numpy columns by name; `len(table)` rows."""

    def __init__(self, **columns):
        self.columns = {}
        n = None
        for name, values in columns.items():
            arr = np.asarray(values)
            if n is not None and len(arr) != n:
                raise ValueError("column %s has %d rows, expected %d" % (name, len(arr), n))
            n = len(arr)
            self.columns[name] = arr
        self.n = n or 0

    def __getitem__(self, name):
        return self.columns[name]

    def __len__(self):
        return self.n

    def take(self, idx):
        return Table(**{k: v[idx] for k, v in self.columns.items()})


class TsoData:
    """One data set. Build with `load(dir)` or `TsoData.build(...)` from in-memory tables.

    Read-only once built: BG codes and group membership are derived once and cached.
    Attributes: bgs, resources, list_patterns, groups, members, bg_plans, events (Tables);
    days (datetime64[D]); receiving, device, device_plans (int64 days x resources x 48)
    each with a `<name>_present` bool (days x resources); load_problems.
    """

    def __init__(self):
        self.load_problems = []

    # -- construction -------------------------------------------------------------------
    @classmethod
    def build(cls, balancing_groups, resources, groups, members, bg_plans, days,
              receiving, device=None, device_plans=None, events=None, list_patterns=None,
              receiving_present=None, device_present=None, device_plans_present=None):
        """Tables as `Table`s (or dicts of columns); slot arrays as (days, resources, 48)."""
        self = cls()
        as_table = lambda t: t if isinstance(t, Table) else Table(**t)
        self.bgs = as_table(balancing_groups)
        self.resources = as_table(resources)
        self.groups = as_table(groups)
        self.members = as_table(members)
        self.bg_plans = as_table(bg_plans)
        self.events = as_table(events) if events is not None else _empty("events")
        if list_patterns is None:
            list_patterns = {"list_pattern_id": np.unique(self.groups["list_pattern_id"]),
                             "kind": np.full(len(np.unique(self.groups["list_pattern_id"])), "")}
        self.list_patterns = as_table(list_patterns)
        self.days = np.asarray(days, dtype="datetime64[D]")
        nd, nr = len(self.days), len(self.resources)
        shape = (nd, nr, SLOTS)

        def dense(values, present):
            if values is None:
                return np.zeros(shape, np.int64), np.zeros((nd, nr), bool)
            values = np.asarray(values, np.int64)
            if values.shape != shape:
                raise ValueError("slot array shape %r, expected %r" % (values.shape, shape))
            if present is None:
                present = np.ones((nd, nr), bool)
            return values, np.asarray(present, bool)

        self.receiving, self.receiving_present = dense(receiving, receiving_present)
        self.device, self.device_present = dense(device, device_present)
        self.device_plans, self.device_plans_present = dense(device_plans, device_plans_present)
        self._index()
        return self

    def _index(self):
        self.resource_index = {rid: i for i, rid in enumerate(self.resources["resource_id"])}
        self.bg_index = {b: i for i, b in enumerate(self.bgs["bg_id"])}
        self.group_index = {g: i for i, g in enumerate(self.groups["group_id"])}
        self.day_index = {d: i for i, d in enumerate(self.days.tolist())}

    # -- derived columns ----------------------------------------------------------------
    def bg_codes(self, column):
        """Resource BG column as indices into self.bgs; -1 for "" and -2 for unknown."""
        cache = self.__dict__.setdefault("_bg_codes", {})
        if column not in cache:
            uniq, inv = np.unique(self.resources[column].astype(str), return_inverse=True)
            codes = np.array([-1 if b == "" else self.bg_index.get(b, -2) for b in uniq],
                             np.int64)
            cache[column] = codes[inv.reshape(-1)] if len(uniq) else np.zeros(0, np.int64)
        return cache[column]

    def member_codes(self):
        """(group index, resource index) per members row; -1 where the id is unknown."""
        cache = self.__dict__.setdefault("_member_codes", {})
        if "codes" not in cache:
            def codes(values, ids):
                out = pc.index_in(pa.array(np.asarray(values).astype(str), _STR),
                                  value_set=pa.array(np.asarray(ids).astype(str), _STR))
                return np.asarray(out.fill_null(-1).to_numpy(), np.int64)
            cache["codes"] = (codes(self.members["group_id"], self.groups["group_id"]),
                              codes(self.members["resource_id"], self.resources["resource_id"]))
        return cache["codes"]

    def group_rows(self):
        """{group_id: int64 array of resource indices} from members (known ids only)."""
        cache = self.__dict__.setdefault("_member_codes", {})
        if "rows" not in cache:
            g, r = self.member_codes()
            ok = (g >= 0) & (r >= 0)
            g, r = g[ok], r[ok]
            order = np.argsort(g, kind="stable")
            g, r = g[order], r[order]
            cuts = np.flatnonzero(np.diff(g)) + 1
            gids = self.groups["group_id"]
            cache["rows"] = {gids[chunk_g[0]]: chunk_r for chunk_g, chunk_r in
                             zip(np.split(g, cuts), np.split(r, cuts)) if len(chunk_g)}
        return cache["rows"]

    def is_device_point(self):
        return self.resources["point"] == POINT_DEVICE

    def plan_days(self):
        """Dates (datetime64[D]) that carry BG plans: the days to be corrected."""
        return np.unique(self.bg_plans["date"].astype("datetime64[D]"))

    # -- saving -------------------------------------------------------------------------
    def save(self, directory, fmt="parquet", partitioned=False):
        """Write every table as DIR/<name>.<fmt> (fmt 'parquet' or 'csv'); with
        `partitioned`, the per-slot values go to DIR/<table>/date=…/demand_bg=…/ instead
        (host_tools.tso.partitions, Parquet only)."""
        os.makedirs(directory, exist_ok=True)
        self.save_tables(directory, fmt)
        dem = self.resources["demand_bg"].astype(str)
        for name in WIDE:
            values = getattr(self, name)
            present = getattr(self, name + "_present")
            if name != "receiving" and not present.any():
                continue
            sink = partitions.WideSink(directory, name, fmt, partitioned,
                                       int32=np.abs(values).max(initial=0) < 2**31)
            ids = self.resources["resource_id"]
            for d in range(len(self.days)):
                rows = np.flatnonzero(present[d])
                for bg in (np.unique(dem[rows]) if partitioned else [None]):
                    sel = rows[dem[rows] == bg] if partitioned else rows
                    sink.write(self.days[d], bg, ids[sel], values[d, sel])
            sink.close()

    def save_tables(self, directory, fmt="parquet"):
        """The tables other than per-slot values (resources, groups, plans, …)."""
        for name, attr in (("balancing_groups", "bgs"), ("resources", "resources"),
                           ("list_patterns", "list_patterns"), ("groups", "groups"),
                           ("members", "members"), ("bg_plans", "bg_plans"),
                           ("events", "events")):
            table = getattr(self, attr)
            cols = {}
            for col, typ, _ in SCHEMAS[name]:
                values = table[col]
                if typ == _DATE:
                    values = values.astype("datetime64[D]")
                cols[col] = pa.array(values, type=typ)
            _write(pa.table(cols), directory, name, fmt)


def _empty(name):
    cols = {}
    for col, typ, _ in SCHEMAS[name]:
        dtype = "datetime64[D]" if typ == _DATE else (np.int64 if typ == _INT else object)
        cols[col] = np.empty(0, dtype)
    return Table(**cols)


def _write(table, directory, name, fmt):
    if fmt == "parquet":
        pq.write_table(table, os.path.join(directory, name + ".parquet"))
    elif fmt == "csv":
        pacsv.write_csv(table, os.path.join(directory, name + ".csv"))
    else:
        raise ValueError("format must be parquet or csv, not %r" % (fmt,))


def find_table(directory, name):
    for ext in (".parquet", ".csv"):
        path = os.path.join(directory, name + ext)
        if os.path.exists(path):
            return path
    return None


def read_arrow(path, schema):
    """One table file -> arrow Table of the schema's columns, cast and null-checked.

    Integer columns keep their width on disk (slot columns may be int32) and are widened
    in numpy. Any damage becomes a LoadError naming the file.
    """
    try:
        return _read_arrow(path, schema)
    except LoadError:
        raise
    except (pa.ArrowException, OSError, UnicodeError, ValueError, TypeError) as exc:
        raise LoadError("%s: %s: %s" % (path, type(exc).__name__, exc)) from None


_MAX_NAMED = 10  # offending cells named in one error; the count says how many in all


def _row_label(table, i):
    """'R042@2026-05-07 (row 43)' for a wide-table row, 'row 43' otherwise (1-based data row;
    in a CSV file that is line 44, after the header)."""
    where = "row %d" % (i + 1)
    names = table.column_names
    if "resource_id" in names and "date" in names:
        rid = table.column("resource_id")[i].as_py()
        date = table.column("date")[i].as_py()
        return "%s@%s (%s)" % (rid, date, where)
    if "date" in names and "slot" in names:
        date, slot = table.column("date")[i].as_py(), table.column("slot")[i].as_py()
        if "bg_id" in names:  # bg_plans, named as validation names them
            return "%s@%s#%s (%s)" % (table.column("bg_id")[i].as_py(), date, slot, where)
        return "%s/%s (%s)" % (date, slot, where)  # market data
    for key in ("bg_id", "group_id", "resource_id"):
        if key in names:
            return "%s %s (%s)" % (key, table.column(key)[i].as_py(), where)
    return where


def int_cells_error(path, table, col):
    """LoadError naming the rows of `col` that are empty, NaN or not an integer."""
    arr = table.column(col)
    text = arr.cast(_STR) if not pa.types.is_string(arr.type) else arr
    values = text.to_pylist()
    bad = []
    for i, v in enumerate(values):
        if v is None or v.strip() == "":
            bad.append((i, "empty"))
            continue
        try:
            f = float(v)
        except ValueError:
            bad.append((i, repr(v)))
            continue
        if f != f or f in (float("inf"), float("-inf")) or f != int(f):
            bad.append((i, v))
    if not bad:
        return None
    named = ", ".join("%s: %s" % (_row_label(table, i), what) for i, what in bad[:_MAX_NAMED])
    more = " and %d more" % (len(bad) - _MAX_NAMED) if len(bad) > _MAX_NAMED else ""
    return LoadError("%s: column %s: %d value(s) not an integer (empty, NaN or text): %s%s"
                     % (path, col, len(bad), named, more))


def csv_int_cells(path, types):
    """Re-read a CSV file as text and raise a LoadError naming its bad integer cells."""
    raw = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={c: _STR for c in types}, strings_can_be_null=True, null_values=[""]))
    for col, typ in types.items():
        if typ == _INT and col in raw.column_names:
            err = int_cells_error(path, raw, col)
            if err is not None:
                raise err


def _read_arrow(path, schema):
    types = {col: typ for col, typ, _ in schema}
    if path.endswith(".csv"):
        try:
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types=types, strings_can_be_null=False))
        except pa.ArrowInvalid:
            csv_int_cells(path, types)
            raise
        if any(table.column(c).null_count for c, t in types.items()
               if t == _INT and c in table.column_names):
            csv_int_cells(path, types)  # empty or NaN-like cells read as null
    else:
        table = pq.read_table(path)
    missing = [c for c, _, req in schema if req and c not in table.column_names]
    if missing:
        raise LoadError("%s: missing column(s) %s" % (path, ", ".join(missing)))
    cols = {}
    for col, typ, _ in schema:
        if col not in table.column_names:
            cols[col] = pa.array(np.full(table.num_rows, ""), _STR)
            continue
        arr = table.column(col)
        if typ == _INT and pa.types.is_integer(arr.type):
            typ = arr.type  # slot columns may be int32 on disk: widen in numpy, not arrow
        try:
            arr = arr.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            err = int_cells_error(path, table, col) if typ != _STR and typ != _DATE else None
            raise (err or LoadError("%s: column %s: %s" % (path, col, exc))) from None
        if arr.null_count:
            if typ == _STR:
                arr = arr.fill_null("")
            else:
                err = int_cells_error(path, table, col) if typ != _DATE else None
                raise err or LoadError("%s: column %s has %d empty value(s)"
                                       % (path, col, arr.null_count))
        cols[col] = arr
    return pa.table(cols)


def to_numpy(table):
    """arrow Table -> dict of numpy columns (strings as object arrays)."""
    cols = {}
    for col in table.column_names:
        arr = table.column(col)
        np_arr = arr.to_numpy()
        if pa.types.is_string(arr.type):
            np_arr = np_arr.astype(object)
        cols[col] = np_arr
    return cols


def _read(path, schema):
    """One table file -> dict of numpy columns; any damage becomes a LoadError."""
    return to_numpy(read_arrow(path, schema))


def read_tables(directory):
    """The tables other than per-slot values, as {name: dict of numpy columns or None}."""
    if not os.path.isdir(directory):
        raise LoadError("no such data directory: %s" % directory)
    tables = {}
    for name, schema in SCHEMAS.items():
        path = find_table(directory, name)
        if path is None:
            if name in OPTIONAL:
                tables[name] = None
                continue
            raise LoadError("%s: missing table %s (.parquet or .csv)" % (directory, name))
        tables[name] = _read(path, schema)
    return tables


def read_partition(files, date, schema=None):
    """The wide rows of one partition (all its files) as numpy columns with `date` added."""
    parts = [read_arrow(f, schema or PARTITION_SCHEMA) for f in files]
    cols = to_numpy(pa.concat_tables(parts)) if parts else None
    if cols is not None:
        cols["date"] = np.full(len(cols["resource_id"]), date, "datetime64[D]")
    return cols


def concat_columns(chunks):
    if not chunks:
        return None
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _read_wide(directory, name, resources):
    """One per-slot table, flat file or partitions -> (numpy columns or None, problems)."""
    if partitions.is_partitioned(directory):
        res_ids = pa.array(resources["resource_id"].astype(str), _STR)
        res_dem = pa.array(resources["demand_bg"].astype(str), _STR)
        chunks, wrong = [], []
        for (date, bg), files in sorted(partitions.list_partitions(directory, name).items()):
            cols = read_partition(files, date)
            mask, offenders = partitions.misplaced(cols["resource_id"], date, bg,
                                                   res_ids, res_dem)
            wrong += offenders
            chunks.append({k: v[~mask] for k, v in cols.items()} if mask.any() else cols)
        problems = [partitions.misplaced_problem(name, wrong)] if wrong else []
        if not chunks and name not in OPTIONAL:
            raise LoadError("%s: no partitions under %s/ (date=…/demand_bg=…/*.parquet)"
                            % (directory, name))
        return concat_columns(chunks), problems
    path = find_table(directory, name)
    if path is None:
        if name in OPTIONAL:
            return None, []
        raise LoadError("%s: missing table %s (.parquet or .csv)" % (directory, name))
    return _read(path, WIDE_SCHEMA), []


def load(directory):
    """Read every table of DIR (docs/tso-data.md): single files, per-slot values flat or
    partitioned by date and demand BG."""
    tables = read_tables(directory)
    wide, problems = {}, []
    for name in WIDE:
        wide[name], probs = _read_wide(directory, name, tables["resources"])
        problems += probs
    days = np.unique(wide["receiving"]["date"]).astype("datetime64[D]")
    return assemble(tables, days, wide, problems)


def assemble(tables, days, wide=None, problems=()):
    """A TsoData from read tables, its calendar and per-slot columns.

    wide None: the tables only, without value arrays (a driver that leaves the values to
    partition workers); otherwise {name: numpy columns or None}.
    """
    data = TsoData()
    data.load_problems = list(problems)
    data.bgs = Table(**tables["balancing_groups"])
    data.resources = Table(**tables["resources"])
    data.groups = Table(**tables["groups"])
    data.members = Table(**tables["members"])
    data.bg_plans = Table(**tables["bg_plans"])
    data.events = Table(**tables["events"]) if tables["events"] else _empty("events")
    if tables["list_patterns"]:
        data.list_patterns = Table(**tables["list_patterns"])
    else:
        ids = np.unique(data.groups["list_pattern_id"].astype(str)).astype(object)
        data.list_patterns = Table(list_pattern_id=ids, kind=np.full(len(ids), "", object))
    data.days = np.asarray(days, "datetime64[D]")
    data._index()
    if wide is not None:
        for name in WIDE:
            _densify(data, name, wide[name])
    return data


def _densify(data, name, cols):
    """Scatter wide rows into (days, resources, 48); unknown or repeated rows -> problems."""
    nd, nr = len(data.days), len(data.resources)
    values = np.zeros((nd, nr, SLOTS), np.int64)
    present = np.zeros((nd, nr), bool)
    setattr(data, name, values)
    setattr(data, name + "_present", present)
    if cols is None:
        return
    ids = data.resources["resource_id"].astype(str)
    rows = cols["resource_id"]
    r_idx = pc.index_in(pa.array(rows, _STR), value_set=pa.array(ids, _STR)).to_numpy(
        zero_copy_only=False)
    known = ~np.isnan(r_idx) if r_idx.dtype.kind == "f" else np.ones(len(rows), bool)
    r_idx = np.nan_to_num(r_idx, nan=0).astype(np.int64) if r_idx.dtype.kind == "f" \
        else r_idx.astype(np.int64)
    dates = cols["date"].astype("datetime64[D]")
    d_pos = np.searchsorted(data.days, dates)
    d_pos_c = np.minimum(d_pos, max(nd - 1, 0))
    known_day = (data.days[d_pos_c] == dates) if nd else np.zeros(len(rows), bool)
    if not known.all():
        data.load_problems.append(Problem(
            "unknown_resource", "%s rows name resources not in resources" % name,
            sorted(set(np.asarray(rows)[~known].tolist()))))
    if not known_day.all():
        data.load_problems.append(unknown_dates_problem(name, dates[~known_day]))
    ok = known & known_day
    r_ok, d_ok = r_idx[ok], d_pos_c[ok]
    flat = d_ok * nr + r_ok
    uniq, counts = np.unique(flat, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        data.load_problems.append(Problem(
            "duplicate_row", "%s has more than one row for (resource, date)" % name,
            ["%s@%s" % (ids[f % nr], data.days[f // nr]) for f in dup]))
    block = np.empty((SLOTS, len(ok)), np.int64)  # column copies are contiguous this way
    for s, c in enumerate(SLOT_COLUMNS):
        block[s] = cols[c]
    if not ok.all():
        block = block[:, ok]
    values.reshape(nd * nr, SLOTS)[flat] = block.T
    present[d_ok, r_ok] = True


def unknown_dates_problem(name, dates):
    return Problem("unknown_date", "%s rows carry dates with no receiving-point data" % name,
                   sorted(set(str(d) for d in dates)))
