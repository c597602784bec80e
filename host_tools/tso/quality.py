"""Which inputs of an imbalance correction are estimates (推定, docs/integrator.md "Attribution bound").

A correction is only as exact as the values behind it. Two records in a data set say which
per-slot values are estimates rather than measured (docs/tso-data.md "Estimated values"):

  completion  written by `smeter complete --data`: whole (resource, date, series) rows it
              filled (method `bracketed` or `profile`);
  estimated   optional, long: (resource_id, date, series, slot) of single values that are
              estimates, e.g. the device flagged them `estimated` (the collector's
              `slot_quality` view) or the TSO completed them by hand.

An estimated input counts for every BG whose figures it enters: the resource's demand BG and,
if it has one, its generation BG (and their pair). The counts come out beside the corrected
values (`estimated_inputs`), so exact results and results resting on estimates are told apart.
Only these small tables are read here, so both engines (memory, Dask) share it.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from host_tools.tso.errors import LoadError
from host_tools.tso.model import SLOTS, find_table

SERIES = ("receiving", "device")


def _read(path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    t = pq.read_table(path) if path.endswith(".parquet") else pacsv.read_csv(path)
    return {k: t.column(k) for k in t.column_names}


def marks(directory, data):
    """bool (days, resources, 48): True where a receiving or device value of the data set in
    `directory` is an estimate. LoadError for a record that names an unknown series, slot,
    resource or day (a record of another data set)."""
    nd, nr = len(data.days), len(data.resources)
    out = np.zeros((nd, nr, SLOTS), bool)
    ids = data.resources["resource_id"].astype(str)
    for name, has_slot in (("completion", False), ("estimated", True)):
        path = find_table(directory, name)
        if path is None:
            continue
        cols = _read(path)
        need = ("resource_id", "date", "series") + (("slot",) if has_slot else ())
        missing = [c for c in need if c not in cols]
        if missing:
            raise LoadError("%s: no column %s" % (path, ", ".join(missing)))
        n = len(cols["resource_id"])
        if not n:
            continue
        series = np.asarray(cols["series"].to_pylist(), object)
        bad = sorted(set(series.tolist()) - set(SERIES))
        if bad:
            raise LoadError("%s: unknown series %s (receiving, device)" % (path, ", ".join(map(str, bad))))
        r = pc.index_in(cols["resource_id"].cast(pa.string()),
                        value_set=pa.array(ids.tolist(), pa.string()))
        if r.null_count:
            raise LoadError("%s: rows name resources not in resources" % path)
        r = r.to_numpy(zero_copy_only=False)
        dates = np.asarray(cols["date"].cast("date32").to_numpy(zero_copy_only=False),
                           "datetime64[D]")
        d = np.searchsorted(data.days, dates)
        if (d >= nd).any() or (data.days[np.minimum(d, nd - 1)] != dates).any():
            raise LoadError("%s: rows name dates outside the data set" % path)
        r = r.astype(np.int64)
        if has_slot:
            s = np.asarray(cols["slot"].to_numpy(zero_copy_only=False), np.int64)
            if ((s < 1) | (s > SLOTS)).any():
                raise LoadError("%s: slot must be 1..48" % path)
            out[d, r, s - 1] = True
        else:
            out[d, r, :] = True
    return out


def bg_counts(data, est):
    """int (days, BGs, 48): estimated inputs per BG and slot (demand BG + generation BG)."""
    nb = len(data.bgs)
    dem = data.bg_codes("demand_bg")
    gen = data.bg_codes("generation_bg")
    out = np.zeros((est.shape[0], nb, SLOTS), np.int64)
    e = est.astype(np.int64)
    for codes in (dem, gen):
        ok = codes >= 0
        np.add.at(out, (slice(None), codes[ok]), e[:, ok])
    return out


def pair_counts(data, est):
    """{(demand BG index, generation BG index or -1): int (days, 48)} of estimated inputs."""
    from host_tools.tso.correction import pairs_of
    pair, pdem, pgen = pairs_of(data)
    acc = np.zeros((est.shape[0], len(pdem), SLOTS), np.int64)
    np.add.at(acc, (slice(None), pair), est.astype(np.int64))
    return {(int(a), int(b)): acc[:, i] for i, (a, b) in enumerate(zip(pdem, pgen))}
