"""`smeter gen-tso-data`: synthetic TSO data sets readable by `smeter correct`."""
import argparse
import os
import sys
import time

HELP = """\
Write a synthetic, reproducible TSO data set: resources (PV inverters, batteries and EV
chargers at device points 機器点, demand sites at receiving points 受電点), balancing
groups, list patterns of at most 100,000 resources, groups, receiving-point and
device-point values for every 30-minute slot of every day, events and BG plans on the
last day. `smeter correct --data DIR` reads it. Formats: docs/tso-data.md."""


def register(subparsers):
    p = subparsers.add_parser("gen-tso-data", help="write a synthetic TSO data set",
                              description=HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resources", type=int, required=True, metavar="N",
                   help="number of resources (sites), e.g. 100000")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--days", type=int, default=8,
                   help="days of values, the last one dispatched (default 8: five "
                        "weekdays of history for High 4 of 5)")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet",
                   help="table format (default parquet)")
    p.set_defaults(func=run)


def run(args):
    from host_tools.tso.generate import generate
    if args.resources < 1 or args.days < 2:
        print("smeter gen-tso-data: need --resources >= 1 and --days >= 2", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    data = generate(args.resources, days=args.days, seed=args.seed)
    t1 = time.perf_counter()
    print("generated %d resources x %d days x 48 slots in %.2f s"
          % (args.resources, args.days, t1 - t0), file=sys.stderr, flush=True)
    data.save(args.out, args.format)
    # Market data (normal price, reserve margin, spot) beside it, so `smeter settle --data DIR`
    # runs on the same directory; synthetic, from the same seed.
    from host_tools.tso.market_data import generate_market
    from host_tools.tso.pricing import save_market

    save_market(generate_market(data.plan_days(), seed=args.seed),
                os.path.join(args.out, "market." + args.format))
    print("wrote %s (%s, with synthetic market data) in %.2f s"
          % (args.out, args.format, time.perf_counter() - t1), file=sys.stderr)
    return 0
