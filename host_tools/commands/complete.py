"""`smeter complete`: missing-data completion (欠測補完), preliminary and confirmed values."""
import argparse
import datetime
import json
import os
import shutil
import time

import numpy as np

from host_tools import atomic_output, cli_args, cli_log
from host_tools.exit_codes import OK, USAGE

HELP = """\
Missing-data completion (欠測補完) and value sets, in one of two modes.

--db FILE (the collector's SQLite store): every ended slot gets a preliminary value (速報値)
the first time it is measured or can be estimated, and a confirmed value (確報値) once it is
older than the backfill window; an estimated confirmed value is replaced when the real value
arrives by backfill (or a bracketed estimate becomes possible). Run it every 30 minutes, e.g.
from cron, so preliminaries are out within 60 minutes of slot end. Cumulative register
readings (--reads) make a gap's total exact; only its split over the slots is estimated.
Prints a per-day timeliness report (CSV, or with --json one JSON object with the counts and
the report) on stdout: on time, late, estimated, unfilled; progress and counts on stderr.

--data DIR --out DIR2 (a TSO data set): missing (day, resource) rows of the receiving and
device values are completed from DIR/day_totals.* if present (bracketed) or from the
profile, and the completed data set is written to DIR2 with completion.parquet naming every
estimated row and its method. Methods and formats: docs/completion.md."""


def register(subparsers):
    p = subparsers.add_parser("complete", help="missing-data completion; preliminary and "
                              "confirmed values", description=HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", metavar="FILE", help="collector SQLite store (smeter collect)")
    src.add_argument("--data", metavar="DIR", help="TSO data set (docs/tso-data.md)")
    p.add_argument("--out", metavar="PATH",
                   help="--db: write both value sets to FILE (.csv or .parquet); "
                        "--data: directory for the completed data set (required)")
    p.add_argument("--now", metavar="TIME", type=cli_args.unix_time,
                   help="the time to act at: ISO 8601 with offset, or unix seconds "
                        "(default: the system clock)")
    p.add_argument("--since", metavar="DATE",
                   help="first JST date to complete (default: the first date in the store)")
    p.add_argument("--backfill", default="72h", metavar="AGE",
                   help="backfill window before values are confirmed, e.g. 72h, 3d "
                        "(default 72h; no figure in the seeds, see docs/completion.md)")
    p.add_argument("--deadline", default=60, type=cli_args.positive_int, metavar="MIN",
                   help="preliminary deadline after slot end in minutes (default 60: seed 000, "
                   "docs/glossary.md)")
    p.add_argument("--reads", metavar="CSV",
                   help="import register readings first: device_id,read_at,import_total_wh,"
                        "export_total_wh (read_at ISO 8601 on a 30-minute boundary)")
    p.add_argument("--report", metavar="CSV", type=cli_args.output_file,
                   help="write the timeliness report as CSV")
    p.add_argument("--profile-days", type=cli_args.positive_int, default=7, metavar="N",
                   help="days of history for profile estimates (default 7)")
    p.add_argument("--json", action="store_true",
                   help="--db: print the counts and the timeliness report as one JSON object "
                        "on stdout instead of CSV")
    p.set_defaults(func=run)


_log = cli_log.info  # progress and "wrote" lines on stderr, silenced by -q
_err = cli_log.error  # always printed


def _parse_time(text):
    try:
        return float(text)
    except ValueError:
        pass
    t = datetime.datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise ValueError("time %r needs a UTC offset, e.g. +09:00" % text)
    return t.timestamp()


def _parse_window(text):
    text = text.strip().lower()
    if len(text) < 2 or not text[:-1].isdigit() or text[-1] not in "hd":
        raise ValueError("window must look like 72h or 3d, not %r" % text)
    return int(text[:-1]) * (3600 if text[-1] == "h" else 86400)


def _read_reads(path):
    import csv
    from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for n, r in enumerate(csv.DictReader(f), start=2):
            try:
                t = _parse_time(r["read_at"])
                off = int(t) - EDGE_EPOCH_UNIX
                if t != int(t) or off % SLOT_SECONDS:
                    raise ValueError("read_at is not on a 30-minute boundary")
                rows.append((int(r["device_id"]), off // SLOT_SECONDS,
                             int(r["import_total_wh"]), int(r["export_total_wh"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError("%s line %d: %s" % (path, n, exc)) from None
    return rows


def run(args):
    try:
        if args.out:  # before any work: an unwritable --out must not cost the run
            (atomic_output.check_dir if args.data else atomic_output.check_file)(args.out)
        if args.data:
            return _run_data(args)
        return _run_db(args)
    except (OSError, ValueError, atomic_output.OutputError) as exc:
        _err("smeter complete: %s" % exc)
        return USAGE


def _run_db(args):
    import sqlite3
    from host_tools.collector import store as cstore
    from host_tools.collector.timeliness import date_day
    from host_tools.tso import values
    if args.out and not (args.out.endswith(".csv") or args.out.endswith(".parquet")):
        raise ValueError("%s: output must end in .csv or .parquet" % args.out)
    if not os.path.exists(args.db):
        raise ValueError("no such database: %s" % args.db)
    now = args.now if args.now is not None else time.time()
    backfill = _parse_window(args.backfill)
    since = None
    if args.since:
        since = date_day(datetime.date.fromisoformat(args.since)) * 48
    try:
        st = cstore.Store(args.db)
    except sqlite3.DatabaseError as exc:
        raise ValueError("%s: %s" % (args.db, exc)) from None
    try:
        if args.reads:
            reads = _read_reads(args.reads)
            values.add_reads(st, reads, source=os.path.basename(args.reads))
            _log("imported %d register reading(s) from %s" % (len(reads), args.reads))
        t0 = time.perf_counter()
        got = values.update(st, now, since_slot=since, backfill_s=backfill,
                            profile_days=args.profile_days, deadline_s=args.deadline * 60)
        _log("completed %d device(s) in %.2f s" % (got["devices"], time.perf_counter() - t0))
        _log("preliminary values issued: %d, confirmed: %d, confirmed revised: %d, slots "
             "without any value: %d, estimates held back (slot ended < 30 min ago): %d"
             % (got["preliminary"], got["confirmed"], got["revised"], got["unfilled"],
                got["waiting"]))
        for dev, a, b, direction, text in got["problems"]:
            _log("register readings of device %d, slots %d..%d (%s): %s"
                 % (dev, a, b, direction, text))
        # the same window as the summary: its unfilled column sums to the summary's count
        rep = values.timeliness(st, now, deadline_s=args.deadline * 60,
                                day_from=got["since_slot"] // 48)
        if args.json:
            print(json.dumps({
                "counts": {k: got[k] for k in ("devices", "preliminary", "confirmed", "revised",
                                               "unfilled", "waiting")},
                "register_problems": [dict(zip(("device_id", "first_slot", "last_slot",
                                                "direction", "problem"), p))
                                      for p in got["problems"]],
                "timeliness": [r._asdict() for r in rep]}, indent=1))
        else:
            print(values.format_timeliness(rep), end="")
        if args.report:
            atomic_output.write_text(args.report, values.format_timeliness(rep))
            _log("wrote %s" % args.report)
        if args.out:
            _write_sets(st, args.out)
            _log("wrote %s" % args.out)
    finally:
        st.close()
    return OK


def _write_sets(st, path):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from host_tools.collector.timeliness import day_date
    from host_tools.tso import values
    cols = {k: [] for k in ("set", "device_id", "date", "slot_of_day", "slot", "import_wh",
                            "export_wh", "method", "estimated", "made_unix", "revision")}
    for kind, name in ((values.PRELIMINARY, "preliminary"), (values.CONFIRMED, "confirmed")):
        for r in values.value_set(st, kind):
            cols["set"].append(name)
            cols["device_id"].append(r.device_id)
            cols["date"].append(day_date(r.slot // 48))
            cols["slot_of_day"].append(r.slot % 48 + 1)
            for k in ("slot", "import_wh", "export_wh", "method", "estimated", "made_unix",
                      "revision"):
                cols[k].append(getattr(r, k))
    cols["device_id"] = pa.array(cols["device_id"], pa.uint64())
    table = pa.table(cols)
    with atomic_output.atomic_path(path) as tmp:
        if path.endswith(".parquet"):
            pq.write_table(table, tmp)
        else:
            pacsv.write_csv(table, tmp)


def _run_data(args):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from host_tools.tso import completion as comp, model
    from host_tools.tso.errors import LoadError
    if not args.out:
        raise ValueError("--data needs --out DIR for the completed data set")
    try:
        data = model.load(args.data)
    except LoadError as exc:
        raise ValueError(str(exc)) from None
    totals = _day_totals(data, args.data)
    rows = {k: [] for k in ("resource_id", "date", "series", "method")}
    t0 = time.perf_counter()
    for series in ("receiving", "device"):
        present = getattr(data, series + "_present").copy()
        if series == "device" and not present.any():
            continue
        # device values exist only for device-point (m) resources: others are not missing
        applies = data.is_device_point() if series == "device" else np.ones(len(present[0]),
                                                                             bool)
        c = comp.complete_rows(getattr(data, series), present | ~applies[None, :],
                               totals.get(series), args.profile_days,
                               out=getattr(data, series))
        c.present &= applies[None, :]
        est = c.present & ~present
        d, r = np.nonzero(est)
        rows["resource_id"].append(data.resources["resource_id"][r].astype(str))
        rows["date"].append(data.days[d])
        rows["series"].append(np.full(len(d), series))
        rows["method"].append(c.method[d, r].astype(str))
        unfilled = int((~c.present & applies[None, :]).sum())
        _log("%s: %d row(s) measured, %d bracketed, %d from the profile, %d unfilled" % (
            series, int(present.sum()), int((c.method[est] == comp.METHOD_BRACKETED).sum()),
            int((c.method[est] == comp.METHOD_PROFILE).sum()), unfilled))
        setattr(data, series, c.values)
        setattr(data, series + "_present", c.present)
    _log("completed in %.2f s" % (time.perf_counter() - t0))
    table = {k: (np.concatenate(v) if v else np.empty(0, object)) for k, v in rows.items()}
    # the whole data set appears at once: never a completed receiving table beside an old
    # completion.parquet from another run
    with atomic_output.atomic_dir(args.out, owned=model.TABLE_FILES) as tmp:
        data.save(tmp)
        for name in ("market.parquet", "market.csv", "estimated.parquet", "estimated.csv"):
            if os.path.exists(os.path.join(args.data, name)):
                shutil.copy(os.path.join(args.data, name), os.path.join(tmp, name))
        pq.write_table(pa.table({"resource_id": pa.array(table["resource_id"], pa.string()),
                                 "date": pa.array(table["date"].astype("datetime64[D]"),
                                                  pa.date32()),
                                 "series": pa.array(table["series"], pa.string()),
                                 "method": pa.array(table["method"], pa.string())}),
                       os.path.join(tmp, "completion.parquet"))
    _log("wrote %s (completion.parquet lists %d estimated row(s))"
         % (args.out, len(table["method"])))
    return OK


def _day_totals(data, directory):
    """DIR/day_totals.{parquet,csv}: resource_id, date, series, total_wh -> {series: (tot,
    known)} as (days, resources) arrays."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    path = None
    for ext in (".parquet", ".csv"):
        if os.path.exists(os.path.join(directory, "day_totals" + ext)):
            path = os.path.join(directory, "day_totals" + ext)
    if path is None:
        return {}
    try:
        if path.endswith(".csv"):
            t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={
                "resource_id": pa.string(), "date": pa.date32(), "series": pa.string(),
                "total_wh": pa.int64()}))
        else:
            t = pq.read_table(path)
        cols = {c: t.column(c).to_numpy(zero_copy_only=False)
                for c in ("resource_id", "date", "series", "total_wh")}
    except (pa.ArrowException, KeyError) as exc:
        raise ValueError("%s: %s" % (path, exc)) from None
    out = {}
    nd, nr = len(data.days), len(data.resources)
    for series in ("receiving", "device"):
        tot = np.zeros((nd, nr), np.int64)
        known = np.zeros((nd, nr), bool)
        for rid, date, s, total in zip(cols["resource_id"], cols["date"], cols["series"],
                                       cols["total_wh"]):
            if s != series:
                continue
            r = data.resource_index.get(str(rid))
            d = data.day_index.get(np.datetime64(date, "D").tolist())
            if r is None or d is None:
                raise ValueError("%s: unknown resource or date %s %s" % (path, rid, date))
            tot[d, r] = int(total)
            known[d, r] = True
        if known.any():
            out[series] = (tot, known)
    bad = set(cols["series"].tolist()) - {"receiving", "device"}
    if bad:
        raise ValueError("%s: series must be receiving or device, not %s" % (path, sorted(bad)))
    return out
