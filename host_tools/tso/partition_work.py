"""The work on one (date, demand BG) partition, run wherever a scheduler puts it.

A partitioned data set (host_tools.tso.partitions) is validated and corrected partition by
partition with the same kernels as the in-memory engine: `validate_partition` runs
validate.check_values on one date of one demand BG, `correct_partition` runs
correction.prepare_day (baselines included) and correction.shares_micro on a window of
dates of one demand BG and returns the unrounded micro-Wh pair shares and the BG actuals.
The one step that crosses partitions, largest-remainder rounding of a slot over every
pair, is left to the caller (host_tools.tso.dask_engine).

Memory: a call holds the values of one demand BG over its window (the event date and the
look-back of High 4 of 5; device plans for the event date only) plus the static tables,
which are read once per process and filtered to the partition's resources in Arrow.
Nothing here imports Dask: the functions take paths and return small numpy arrays.
"""
import glob
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from host_tools.tso import correction, model, partitions, validate
from host_tools.tso.errors import LoadError, TsoError

_STATIC = {}


def _static(root):
    """The static tables of a data set, cached per process (re-read when a file changes)."""
    paths = {name: model.find_table(root, name) for name in model.SCHEMAS}
    stamp = tuple((p, os.stat(p).st_mtime_ns) for p in paths.values() if p)
    cached = _STATIC.get(root)
    if cached and cached[0] == stamp:
        return cached[1]
    tables = {}
    for name, schema in model.SCHEMAS.items():
        if paths[name] is None:
            if name not in model.OPTIONAL:
                raise LoadError("%s: missing table %s (.parquet or .csv)" % (root, name))
            tables[name] = None
            continue
        table = model.read_arrow(paths[name], schema)
        # resources and members scale with the data set: keep them in Arrow and convert
        # only the partition's rows; the others are small
        tables[name] = table.combine_chunks() if name in ("resources", "members") \
            else model.to_numpy(table)
    _STATIC.clear()
    _STATIC[root] = (stamp, tables)
    return tables


def _column(table, name):
    col = table[name]
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def window_data(root, dates, demand_bg, plan_date=None):
    """A TsoData of the resources of `demand_bg` over `dates` (datetime64[D], sorted).

    Rows of the partitions that belong to another demand BG are reported
    (`wrong_partition`) and dropped, as the in-memory loader does. Device plans are read
    for `plan_date` only when it is given (the plan baseline reads nothing else).
    """
    static = _static(root)
    res = static["resources"]
    sub_res = res.filter(pc.equal(res["demand_bg"], pa.scalar(str(demand_bg)))).combine_chunks()
    mem = static["members"]
    sub_mem = mem.filter(pc.is_in(mem["resource_id"], value_set=_column(sub_res, "resource_id")))
    tables = dict(static, resources=model.to_numpy(sub_res), members=model.to_numpy(sub_mem))
    wide, problems = {}, []
    for name in model.WIDE:
        read_dates = [plan_date] if name == "device_plans" and plan_date is not None else dates
        chunks, wrong = [], []
        for date in read_dates:
            where = partitions.partition_dir(root, name, date, demand_bg)
            files = sorted(glob.glob(os.path.join(where, "*.parquet")))
            if not files:
                continue
            cols = model.read_partition(files, date)
            ids = pa.array(cols["resource_id"].astype(str), pa.string())
            mine = pc.is_in(ids, value_set=_column(sub_res, "resource_id")).to_numpy(
                zero_copy_only=False)
            if not mine.all():  # rows of other resources: misplaced (or unknown)
                other, offenders = partitions.misplaced(
                    cols["resource_id"][~mine], date, demand_bg, _column(res, "resource_id"),
                    _column(res, "demand_bg"))
                wrong += offenders
                mask = np.zeros(len(mine), bool)
                mask[np.flatnonzero(~mine)[other]] = True
                cols = {k: v[~mask] for k, v in cols.items()}
            chunks.append(cols)
        wide[name] = model.concat_columns(chunks)
        if wrong:
            problems.append(partitions.misplaced_problem(name, wrong))
    return model.assemble(tables, dates, wide, problems)


def validate_partition(root, date, demand_bg, rules):
    """Problems of one date of one demand BG: its load problems and validate.check_values."""
    data = window_data(root, np.array([date], "datetime64[D]"), demand_bg)
    return list(data.load_problems) + validate.check_values(data, rules)


def correct_partition(root, date, demand_bg, window, rules, pattern, plan_basis=None):
    """Unrounded shares of one demand BG on `date`, baselines read from `window`.

    Returns a dict: pair_dem, pair_gen (BG indices of the data set), dem_u, gen_u
    (pairs, 48) micro-Wh, actual (bgs, 48) Wh this partition adds to each BG, and
    problems (a TsoError's problems instead of results).
    """
    window = np.asarray(window, "datetime64[D]")
    data = window_data(root, window, demand_bg, plan_date=date)
    day = int(np.searchsorted(window, date))
    try:
        inp, pair_dem, pair_gen = correction.prepare_day(data, day, rules, pattern, plan_basis)
    except TsoError as exc:
        return {"problems": exc.problems}
    dem_u, gen_u = correction.shares_micro(inp, pattern)
    return {"pair_dem": pair_dem, "pair_gen": pair_gen, "dem_u": dem_u, "gen_u": gen_u,
            "actual": correction.bg_actuals(data, day), "problems": []}
