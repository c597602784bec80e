"""`smeter gen-tso-data`: synthetic TSO data sets readable by `smeter correct`."""
import argparse
import os
import sys
import time

from host_tools import atomic_output, cli_args, cli_log
from host_tools.exit_codes import OK, USAGE

HELP = """\
Write a synthetic, reproducible TSO data set: resources (PV inverters, batteries and EV
chargers at device points 機器点, demand sites at receiving points 受電点), balancing
groups, list patterns of at most 100,000 resources, groups, receiving-point and
device-point values for every 30-minute slot of every day, events and BG plans on the
last day(s). `smeter correct --data DIR` reads it. Values are streamed to disk one demand
BG at a time, so 1,000,000 resources fit in bounded memory. --layout partitioned writes
them as DIR/<table>/date=YYYY-MM-DD/demand_bg=<BG>/ (what `smeter correct --engine dask`
reads). Progress goes to stderr; the data set appears in DIR only when complete
(docs/commands/conventions.md#outputs). Formats: docs/tso-data.md."""

MAX_RESOURCES = 10_000_000  # ~100 GB of values at 8 days: beyond any machine this runs on
MAX_DAYS = 366


def register(subparsers):
    p = subparsers.add_parser("gen-tso-data", help="write a synthetic TSO data set",
                              description=HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resources", type=cli_args.int_range(1, MAX_RESOURCES), required=True,
                   metavar="N", help="number of resources (sites), e.g. 100000 or 1000000")
    p.add_argument("--out", required=True, metavar="DIR", type=cli_args.output_dir,
                   help="output directory (created; its data-set files are replaced, "
                        "other files left alone)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--days", type=cli_args.int_range(2, MAX_DAYS), default=8,
                   help="days of values, the last one dispatched (default 8: five "
                        "weekdays of history for High 4 of 5)")
    p.add_argument("--event-days", type=int, default=1, metavar="N",
                   help="the last N days are dispatched and carry BG plans (default 1)")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet",
                   help="table format (default parquet)")
    p.add_argument("--layout", choices=("flat", "partitioned"), default="flat",
                   help="per-slot values in one file per table (flat, default) or "
                        "partitioned by date and demand BG (Parquet only; docs/scaling.md)")
    p.set_defaults(func=run)


def run(args):
    from host_tools.tso import model
    from host_tools.tso.generate import write
    from host_tools.tso.market_data import generate_market
    from host_tools.tso.pricing import save_market

    if not 1 <= args.event_days < args.days:
        print("smeter gen-tso-data: need 1 <= --event-days < --days", file=sys.stderr)
        return USAGE
    if args.layout == "partitioned" and args.format != "parquet":
        print("smeter gen-tso-data: --layout partitioned is Parquet only", file=sys.stderr)
        return USAGE
    t0 = time.perf_counter()

    def progress(done, total):
        if done == total or done % 10 == 0:
            cli_log.info("gen-tso-data: demand BG %d/%d written (%.1f s)"
                         % (done, total, time.perf_counter() - t0))
    try:
        cli_log.info("gen-tso-data: generating %d resources x %d days x 48 slots ..."
                     % (args.resources, args.days))
        with atomic_output.atomic_dir(args.out, owned=model.TABLE_FILES + model.WIDE) as tmp:
            data = write(args.resources, tmp, days=args.days, seed=args.seed, fmt=args.format,
                         partitioned=args.layout == "partitioned", event_days=args.event_days,
                         progress=progress)
            # Market data (normal price, reserve margin, spot) beside it, so `smeter settle
            # --data DIR` runs on the same directory; synthetic, from the same seed.
            save_market(generate_market(data.plan_days(), seed=args.seed),
                        os.path.join(tmp, "market." + args.format))
    except KeyboardInterrupt:
        print("smeter gen-tso-data: interrupted; nothing written to %s (its previous "
              "contents, if any, are unchanged)" % args.out, file=sys.stderr)
        raise
    except (OSError, atomic_output.OutputError) as exc:
        print("smeter gen-tso-data: %s" % exc, file=sys.stderr)
        return USAGE
    cli_log.info("generated and wrote %d resources x %d days x 48 slots to %s (%s, %s layout, "
                 "with synthetic market data) in %.2f s" % (
                     args.resources, args.days, args.out, args.format, args.layout,
                     time.perf_counter() - t0))
    return OK
