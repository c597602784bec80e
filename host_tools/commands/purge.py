"""`smeter purge`: delete values older than the retention period (データ保存期間), loudly."""
import argparse
import os
import sys
import time

from host_tools import cli_args
from host_tools.exit_codes import OK, USAGE

HELP = """\
Delete everything in the collector store older than the retention period: slot values,
preliminary/confirmed value sets and register readings by slot date (JST), raw frames and
rejections by arrival time. The default period is 3 years (seed 000: the TSO system keeps
data for 3 years; docs/glossary.md#retention-period). Nothing is ever purged except by
running this command; it always prints the cutoff date and the row count per table, and
--dry-run only counts."""


def register(subparsers):
    p = subparsers.add_parser("purge", help="delete values older than the retention period",
                              description=HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", required=True, metavar="FILE", help="collector SQLite store")
    p.add_argument("--older-than", default="3y", metavar="AGE",
                   help="retention period: Ny years, Nm months or Nd days (default 3y)")
    p.add_argument("--dry-run", action="store_true", help="count only, delete nothing")
    p.add_argument("--now", metavar="TIME", type=cli_args.unix_time,
                   help="reference time, ISO 8601 with offset or unix seconds (default: now)")
    p.set_defaults(func=run)


def run(args):
    import sqlite3
    from host_tools.collector import store as cstore
    from host_tools.tso import values
    try:
        age = values.parse_age(args.older_than)
        now = time.time() if args.now is None else args.now
        if not os.path.exists(args.db):
            raise ValueError("no such database: %s" % args.db)
        st = cstore.Store(args.db)
    except (ValueError, sqlite3.DatabaseError) as exc:
        print("smeter purge: %s%s" % ("" if str(exc).startswith(args.db) or "database:" in str(exc)
                                      else args.db + ": ", exc), file=sys.stderr)
        return USAGE
    try:
        cut, counts = values.purge(st, now, age, dry_run=args.dry_run)
    finally:
        st.close()
    verb = "would delete" if args.dry_run else "deleted"
    print("retention %s: %s everything before %s (JST)" % (args.older_than, verb, cut))
    for table, n in counts.items():
        print("  %-15s %10d row(s)" % (table, n))
    print("  %-15s %10d row(s)" % ("total", sum(counts.values())))
    return OK
