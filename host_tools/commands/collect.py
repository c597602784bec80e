"""`smeter collect`: the head-end collector (docs/commands/collect.md, docs/collector.md)."""
import argparse
import asyncio
import os
import sqlite3
import sys
import time

from host_tools import cli_args, cli_log
from host_tools.exit_codes import ENVIRONMENT, OK, USAGE


DESCRIPTION = """\
Receive authenticated device frames over UDP, verify them (HMAC, key validity, replay
window, slot window), store the 30-minute values with quality flags and arrival time in
SQLite (WAL) together with the raw frames, and acknowledge every stored or retransmitted
frame. Rejected datagrams are counted per reason and logged with their raw bytes.
SIGINT/SIGTERM: store what arrived, print a final stats line, exit 0. SIGHUP (or any
change of the keys file) reloads the keys.

With --timeliness the command instead prints the delivery-delay report (CSV) of an
existing database and exits: per device and JST day, the share of slots stored within the
preliminary-value deadline (速報値, 60 minutes after slot end), late or missing.
"""


def register(subparsers):
    p = subparsers.add_parser(
        "collect",
        help="head-end collector: verify device frames over UDP and store them in SQLite",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--db", required=True, metavar="FILE", help="SQLite database (created if absent)")
    p.add_argument("--listen", metavar="HOST:PORT", type=cli_args.hostport, help="UDP address to listen on (port 0: any "
                   "free port; the bound address is printed on stderr as 'collect: listening on')")
    p.add_argument("--keys", metavar="FILE", help="device keys file (docs/keys-format.md)")
    p.add_argument("--pubkeys", metavar="FILE",
                   help="public seal keys (smeter-pubkeys/1, docs/seals.md): each daily seal is "
                   "checked against the stored values; without it seals are stored unchecked")
    p.add_argument("--window", type=cli_args.positive_int, default=1024, metavar="N",
                   help="anti-replay window: sequence numbers remembered per device (default 1024)")
    p.add_argument("--stats-interval", type=cli_args.positive_float, default=60.0, metavar="S",
                   help="seconds between stats lines on stderr (default 60)")
    p.add_argument("--future-tolerance", type=cli_args.nonnegative_int, default=300, metavar="S",
                   help="accept slots ending at most S seconds after the collector's clock (default 300)")
    p.add_argument("--backfill-days", type=cli_args.nonnegative_float, default=35.0, metavar="D",
                   help="store slots that ended at most D days ago (default 35)")
    p.add_argument("--max-raw", type=cli_args.nonnegative_int, default=512, metavar="BYTES",
                   help="raw bytes kept per rejection row (default 512)")
    p.add_argument("--workers", default="1", metavar="N",
                   help="worker processes verifying and storing in parallel, frames routed by "
                   "device id; 'auto' = one per CPU (default 1)")
    p.add_argument("--recv-buffer", type=cli_args.positive_int, default=32 << 20, metavar="BYTES",
                   help="UDP receive buffer to ask for (default 32 MiB); Linux caps it at "
                   "net.core.rmem_max unless run as root (SO_RCVBUFFORCE)")
    p.add_argument("--clock", metavar="FILE",
                   help="read time from a simulated clock file (host_tools/emulator/simclock.py) "
                   "instead of the wall clock")
    p.add_argument("--timeliness", action="store_true",
                   help="print the delivery-delay report of --db as CSV and exit")
    p.add_argument("--device", type=int, metavar="ID", help="--timeliness: one device only")
    p.add_argument("--json", action="store_true",
                   help="--timeliness: print the report as a JSON array of objects instead of CSV")
    p.add_argument("--deadline", type=cli_args.positive_int, default=None, metavar="S",
                   help="--timeliness: deadline after slot end in seconds (default 3600: seed 000, "
                   "docs/glossary.md)")
    p.set_defaults(func=run)


def _clock(path):
    if path is None:
        return time.time
    from edge.timebase import EDGE_EPOCH_UNIX
    from host_tools.emulator.simclock import SimClock

    clock = SimClock.open(path)
    return lambda: clock.now_ms() / 1000.0 + EDGE_EPOCH_UNIX


def _report(args, now):
    from host_tools.collector import store as store_mod
    from host_tools.collector import timeliness

    if not os.path.exists(args.db):
        print("smeter collect: no database %s" % args.db, file=sys.stderr)
        return USAGE
    try:
        st = store_mod.Store(args.db, readonly=True)
        try:
            kw = {}
            if args.deadline is not None:
                kw["deadline_s"] = args.deadline
            rows = timeliness.report(st, now(), device_id=args.device, **kw)
        finally:
            st.close()
    except sqlite3.Error as e:
        print("smeter collect: %s: not a collector database (%s)" % (args.db, e), file=sys.stderr)
        return USAGE
    if args.json:
        import json

        text = timeliness.format_csv(rows).splitlines()
        head = text[0].split(",")
        sys.stdout.write(json.dumps([dict(zip(head, r)) for r in rows], indent=1) + "\n")
    else:
        sys.stdout.write(timeliness.format_csv(rows))
    return OK


def run(args):
    from host_tools.collector import ingest, keys, server, store
    from host_tools.seal import pubkeys

    try:
        now = _clock(args.clock)
    except (OSError, ValueError) as e:
        print("smeter collect: clock file: %s" % e, file=sys.stderr)
        return USAGE
    if args.timeliness:
        return _report(args, now)
    if not args.listen or not args.keys:
        print("smeter collect: --listen and --keys are required (or use --timeliness)",
              file=sys.stderr)
        return USAGE
    host, port = args.listen
    try:
        keyfile = keys.KeyFile(args.keys)
        registry = pubkeys.load(args.pubkeys) if args.pubkeys else None
    except (ValueError, OSError, keys.KeyFileError, pubkeys.RegistryError) as e:
        print("smeter collect: %s" % e, file=sys.stderr)
        return USAGE
    try:
        workers = server.worker_count(args.workers)
    except ValueError as e:
        print("smeter collect: %s" % e, file=sys.stderr)
        return USAGE
    policy = ingest.Policy(window=args.window, future_tolerance_s=args.future_tolerance,
                           backfill_s=int(args.backfill_days * 86400), max_raw=args.max_raw)
    log = lambda m: cli_log.info("collect: " + m)  # noqa: E731  (-q silences it)

    def make_ingest(st=None):
        st = st or store.Store(args.db)
        st.start_checkpointer()  # WAL checkpoints on another core, off the commit path
        return ingest.Ingest(st, lambda: keyfile.keyring, policy, now=now, log=log,
                             pubkeys=lambda: registry)

    try:  # schema, migration and WAL mode before any worker forks
        st = store.Store(args.db)
    except sqlite3.Error as e:
        print("smeter collect: cannot open %s: %s" % (args.db, e), file=sys.stderr)
        return USAGE
    if st.migrated_from is not None:
        log("migrated the store from schema %d to %d" % (st.migrated_from, store.SCHEMA_VERSION))
    if workers > 1:
        st.close()
        ing = make_ingest
        st = None
    else:
        ing = make_ingest(st)
    try:
        srv = server.CollectorServer(ing, host, port, keyfile=keyfile,
                                     stats_interval=args.stats_interval, workers=workers,
                                     recv_buffer=args.recv_buffer)
    except OSError as e:
        print("smeter collect: cannot listen on %s:%d: %s" % (host, port, e.strerror or e),
              file=sys.stderr)
        if st is not None:
            st.close()
        return ENVIRONMENT

    def ready(addr):
        print("collect: listening on %s:%d (%d keys, db %s, %d worker%s, fast path in %s, "
              "receive buffer %d bytes)"
              % (addr[0], addr[1], len(keyfile.keyring), args.db, workers,
                 "" if workers == 1 else "s", "C" if ingest._fastpath is not None
                 else "Python (_fastpath not built)", srv.recv_buffer), file=sys.stderr,
              flush=True)

    try:
        asyncio.run(srv.serve(ready))
    finally:
        if st is not None:
            st.close()
    return ENVIRONMENT if srv.failed else OK  # a worker process died
