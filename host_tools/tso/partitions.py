"""The partitioned layout of per-slot values: one Parquet directory per (date, demand BG).

    DIR/<table>/date=YYYY-MM-DD/demand_bg=<BG>/part-<n>.parquet     (table: receiving,
                                                                   device, device_plans)

Hive-style: the date and the demand BG (需要BG) live in the path, each file holds
`resource_id, s01 … s48` for the resources of that demand BG on that date. Date first
because every correction, settlement and retention step works on whole days; demand BG
second because every (demand BG, generation BG) pair lies inside one demand-BG partition,
so a day is corrected partition by partition (docs/scaling.md). BG ids are percent-encoded
in the path. Static tables (resources, groups, …) stay single files beside the directories.

`WideSink` writes wide rows in either layout (one file per table, or partitions), so a data
set can be streamed to disk block by block without holding it in memory.
"""
import glob
import os
import urllib.parse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from host_tools.tso.errors import Problem

WIDE = ("receiving", "device", "device_plans")
SLOT_COLUMNS = tuple("s%02d" % i for i in range(1, 49))


def is_partitioned(directory):
    """True when the receiving-point values are a partition directory, not one file."""
    return os.path.isdir(os.path.join(directory, "receiving"))


def partition_dir(directory, name, date, demand_bg):
    return os.path.join(directory, name, "date=%s" % date,
                        "demand_bg=%s" % urllib.parse.quote(str(demand_bg), safe=""))


def list_partitions(directory, name):
    """{(date as datetime64[D], demand BG): [files]} of one table; {} if it is absent."""
    out = {}
    pattern = os.path.join(directory, name, "date=*", "demand_bg=*", "*.parquet")
    for path in sorted(glob.glob(pattern)):
        bg_dir = os.path.dirname(path)
        date = os.path.basename(os.path.dirname(bg_dir))[len("date="):]
        bg = urllib.parse.unquote(os.path.basename(bg_dir)[len("demand_bg="):])
        try:
            day = np.datetime64(date, "D")
        except ValueError:
            from host_tools.tso.errors import LoadError
            raise LoadError("%s: partition date %r is not YYYY-MM-DD" % (path, date)) from None
        out.setdefault((day, bg), []).append(path)
    return out


def row_count(files):
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def calendar(directory):
    """Dates that carry receiving-point rows: the calendar of a partitioned data set."""
    parts = list_partitions(directory, "receiving")
    return np.unique(np.array([d for (d, _), files in parts.items() if row_count(files)],
                              "datetime64[D]"))


def misplaced(ids, date, demand_bg, res_ids, res_demand_bg):
    """Rows of a partition whose resource belongs to another demand BG.

    ids: arrow/numpy resource ids of the rows; res_ids, res_demand_bg: the resources table
    (arrow arrays). Returns (bool mask of misplaced rows, offender strings). Unknown ids are
    not misplaced (they are `unknown_resource`, reported by the loader).
    """
    ids = pa.array(np.asarray(ids).astype(str), pa.string())
    idx = pc.index_in(ids, value_set=res_ids)
    known = pc.is_valid(idx).to_numpy(zero_copy_only=False)
    mask = np.zeros(len(ids), bool)
    if not known.any():
        return mask, []
    their = pc.take(res_demand_bg, pc.drop_null(idx)).to_numpy(zero_copy_only=False)
    wrong = their.astype(str) != str(demand_bg)
    mask[np.flatnonzero(known)[wrong]] = True
    names = np.asarray(ids.to_numpy(zero_copy_only=False))[mask]
    return mask, ["%s@%s in demand_bg=%s (its demand BG: %s)" % (r, date, demand_bg, b)
                  for r, b in zip(names, their[wrong])]


def misplaced_problem(name, offenders):
    return Problem("wrong_partition", "%s rows in a demand-BG partition other than the "
                   "resource's demand BG (not used)" % name, offenders)


class WideSink:
    """Writes one wide table (resource_id, date, s01..s48) flat or partitioned, in blocks.

    flat: DIR/<name>.parquet|csv, rows appended block by block; partitioned: one file per
    (date, demand BG) and block. `int32` halves the files when every value fits (the caller
    knows the bound before the first block).
    """

    def __init__(self, directory, name, fmt="parquet", partitioned=False, int32=True):
        if fmt not in ("parquet", "csv"):
            raise ValueError("format must be parquet or csv, not %r" % (fmt,))
        if partitioned and fmt != "parquet":
            raise ValueError("the partitioned layout is Parquet only")
        self.directory, self.name, self.fmt = directory, name, fmt
        self.partitioned = partitioned
        self.slot_type = pa.int32() if int32 else pa.int64()
        self.writer = None
        self.parts = {}
        self.rows = 0

    def _table(self, ids, values, date=None):
        cols = {"resource_id": pa.array(np.asarray(ids).astype(str), pa.string())}
        if date is not None:
            cols["date"] = pa.array(np.full(len(ids), date, "datetime64[D]"), pa.date32())
        block = np.ascontiguousarray(np.asarray(values).T)
        for s, col in enumerate(SLOT_COLUMNS):
            cols[col] = pa.array(block[s], self.slot_type)
        return pa.table(cols)

    def write(self, date, demand_bg, ids, values):
        """Rows of one date: ids (k,), values (k, 48) Wh; demand_bg: the rows' demand BG."""
        if not len(ids):
            return
        self.rows += len(ids)
        if self.partitioned:
            where = partition_dir(self.directory, self.name, date, demand_bg)
            os.makedirs(where, exist_ok=True)
            n = self.parts.get(where, 0)
            self.parts[where] = n + 1
            pq.write_table(self._table(ids, values), os.path.join(where, "part-%d.parquet" % n))
            return
        table = self._table(ids, values, date)
        if self.writer is None:
            path = os.path.join(self.directory, self.name + "." + self.fmt)
            self.writer = (pq.ParquetWriter(path, table.schema) if self.fmt == "parquet"
                           else pacsv.CSVWriter(path, table.schema))
        self.writer.write_table(table)

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
