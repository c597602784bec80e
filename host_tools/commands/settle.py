"""`smeter settle`: imbalance prices and charges per BG and slot, negawatt fees per resource."""
import argparse
import os

import numpy as np

from host_tools import atomic_output, cli_args, cli_log
from host_tools.exit_codes import INCOMPLETE, OK, USAGE

HELP = """\
Settle a corrected data set: imbalance price per 30-minute slot (インバランス料金単価) and
the charge of every balancing group per slot and per day.

    price  = max(normal price, scarcity price(wide-area reserve margin 広域予備率)), capped at C
    charge = shortfall Wh x price / 1000   (sen = yen x 100, rounded half up per slot)

A demand BG's shortfall is its corrected imbalance, a generation BG's the negated one:
positive charges are paid to the TSO (shortfall), negative ones received (surplus).
C, D and the curve are chosen by the slot's date from hw/tso/prices.json (each number with
its source). Market data (normal price, reserve margin, spot price per slot) is read from
DIR/market.parquet or DIR/market.csv; --gen-market writes a synthetic one first.
With --negawatt TARIFF the negawatt adjustment fee (ネガワット調整金 = retail reference price
- wheeling charge) is computed per resource. Formats and formulas: docs/settlement.md."""


def register(subparsers):
    p = subparsers.add_parser("settle", help="imbalance prices and charges per BG and slot",
                              description=HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="DIR",
                   help="data set directory (docs/tso-data.md), e.g. from smeter gen-tso-data")
    p.add_argument("--pattern", type=int, choices=(1, 2, 3), default=2,
                   help="correction pattern used before settling (default 2)")
    p.add_argument("--out", metavar="FILE", type=cli_args.output_file,
                   help="write the table (.csv or .parquet): per date, BG and slot, "
                        "slot 0 = day total")
    p.add_argument("--market", metavar="FILE",
                   help="market data file (default DIR/market.parquet or DIR/market.csv)")
    p.add_argument("--gen-market", action="store_true",
                   help="write a synthetic DIR/market.parquet (seeded) if no market file "
                        "exists, covering the data days and the 7 days before")
    p.add_argument("--seed", type=int, default=0, help="seed for --gen-market (default 0)")
    p.add_argument("--prices", metavar="FILE", help="JSON overriding hw/tso/prices.json")
    p.add_argument("--config", metavar="FILE", help="JSON overriding hw/tso/rules.json")
    p.add_argument("--negawatt", metavar="TARIFF", nargs="?", const="default",
                   help="also compute negawatt fees per resource with this tariff of "
                        "prices.json (no value: its default_tariff)")
    p.add_argument("--negawatt-out", metavar="FILE", type=cli_args.output_file,
                   help="write per resource and day: negawatt Wh, unit price, fee (sen)")
    p.add_argument("--json", action="store_true",
                   help="print the per-day prices and per-BG charges as one JSON object "
                        "instead of a table")
    p.set_defaults(func=run)


_log = cli_log.info  # progress and "wrote" lines on stderr, silenced by -q
_err = cli_log.error  # always printed


def _write(cols, path):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    table = pa.table({k: (v if isinstance(v, pa.Array) else pa.array(v)) for k, v in cols.items()})
    with atomic_output.atomic_path(path) as tmp:
        if path.endswith(".parquet"):
            pq.write_table(table, tmp)
        else:
            pacsv.write_csv(table, tmp)


def _yen(sen):
    return "%s%d.%02d" % ("-" if sen < 0 else "", abs(sen) // 100, abs(sen) % 100)


def run(args):
    import time
    from host_tools.tso import config, correction, model, pricing, settlement, validate
    from host_tools.tso.config import ConfigError
    from host_tools.tso.errors import LoadError, TsoError
    from host_tools.tso.market_data import generate_market
    for path in (args.out, args.negawatt_out):
        if path and not (path.endswith(".csv") or path.endswith(".parquet")):
            _err("smeter settle: %s: output must end in .csv or .parquet" % path)
            return USAGE
    try:
        rules = config.load_rules(args.config)
        prices_cfg = pricing.load_prices(args.prices)
        t0 = time.perf_counter()
        data = model.load(args.data)
        validate.validate(data, rules)
        market_path = args.market or pricing.find_market(args.data)
        if market_path is None and args.gen_market:
            market_path = os.path.join(args.data, "market.parquet")
            pricing.save_market(generate_market(data.plan_days(), seed=args.seed), market_path)
            _log("wrote synthetic market data %s (seed %d)" % (market_path, args.seed))
        if market_path is None:
            _err("smeter settle: no market data: put market.parquet or market.csv in %s "
                 "(docs/settlement.md), pass --market FILE, or use --gen-market" % args.data)
            return USAGE
        market = pricing.load_market(market_path, prices_cfg.get("market_ranges"))
        results = correction.correct(data, rules, args.pattern)
        if not results:
            _err("smeter settle: no day carries BG plans; nothing to settle")
            return INCOMPLETE
        prices = pricing.imbalance_prices(market, [r.day for r in results], prices_cfg)
        fee = None
        if args.negawatt:
            tariff = (prices_cfg["negawatt"]["default_tariff"] if args.negawatt == "default"
                      else args.negawatt)
            if tariff not in prices_cfg["negawatt"]["tariffs"]:
                _err("smeter settle: unknown negawatt tariff %r (have: %s)" % (
                    tariff, ", ".join(sorted(prices_cfg["negawatt"]["tariffs"]))))
                return USAGE
            fee = lambda day: pricing.negawatt_fee(prices_cfg, tariff, day)  # noqa: E731
        settled = settlement.settle(data, results, prices, rules, args.pattern, fee)
        _log("settled %d day(s) of %d resources in %.2f s" % (
            len(settled), len(data.resources), time.perf_counter() - t0))
    except ConfigError as exc:
        _err("smeter settle: %s" % exc)
        return USAGE
    except LoadError as exc:
        _err("smeter settle: %s" % exc)
        return USAGE
    except TsoError as exc:
        _err("smeter settle: %s" % exc.kind)
        for p in exc.problems or [exc]:
            _err("  " + str(p))
        return USAGE
    except (OSError, ValueError, KeyError) as exc:
        _err("smeter settle: %s: %s" % (type(exc).__name__, exc))
        return USAGE
    bg = data.bgs["bg_id"].astype(str)
    kind = data.bgs["kind"].astype(str)
    if args.json:
        print(json_report(args.pattern, bg, kind, settled, prices, fee is not None))
    else:
        _print_table(args.pattern, bg, kind, settled, prices, fee is not None)
    try:
        if args.out:
            _write(settlement.table_columns(data, settled), args.out)
            _log("wrote %s" % args.out)
        if args.negawatt_out and fee is not None:
            rid = data.resources["resource_id"].astype(str)
            cols = {k: [] for k in ("date", "resource_id", "negawatt_wh", "unit_sen_per_kwh",
                                    "fee_sen")}
            for ds in settled:
                cols["date"].append(np.full(len(rid), ds.day))
                cols["resource_id"].append(rid)
                cols["negawatt_wh"].append(ds.negawatt_wh.sum(axis=1))
                cols["unit_sen_per_kwh"].append(np.full(len(rid), ds.negawatt_unit_sen))
                cols["fee_sen"].append(ds.negawatt_fee_sen)
            _write({k: np.concatenate(v) for k, v in cols.items()}, args.negawatt_out)
            _log("wrote %s" % args.negawatt_out)
    except OSError as exc:  # checked before the work; the disk filled up or the dir went away
        _err("smeter settle: %s" % exc)
        return USAGE
    return OK


def _print_table(pattern, bg, kind, settled, prices, negawatt):
    print("pattern %d; charge > 0: BG pays the TSO (shortfall), < 0: BG receives (surplus)"
          % pattern)
    for j, ds in enumerate(settled):
        hi = int(np.argmax(prices.price[j]))
        print("%s  price %s..%s yen/kWh (max at slot %d, margin %.2f %%, adder %s), cap %s%s"
              % (ds.day, _yen(prices.price[j].min()), _yen(prices.price[j].max()), hi + 1,
                 prices.margin_bp[j, hi] / 100.0, _yen(prices.adder[j, hi]),
                 _yen(prices.cap[j].max()), " (lowered by the spot-price rule)"
                 if prices.lowered[j] else ""))
        print("  %-10s %-10s %16s %18s" % ("bg", "kind", "shortfall_wh", "charge_yen"))
        for i in range(len(bg)):
            print("  %-10s %-10s %16d %18s" % (bg[i], kind[i], ds.day_shortfall_wh[i],
                                                _yen(int(ds.day_charge_sen[i]))))
        print("  %-21s %16d %18s" % ("total", ds.day_shortfall_wh.sum(),
                                     _yen(int(ds.day_charge_sen.sum()))))
        if negawatt:
            paid = ds.negawatt_fee_sen > 0
            print("  negawatt: %d resource(s), %d Wh, unit %s yen/kWh, fees %s yen" % (
                int(paid.sum()), int(ds.negawatt_wh.sum()), _yen(ds.negawatt_unit_sen),
                _yen(int(ds.negawatt_fee_sen.sum()))))


def json_report(pattern, bg, kind, settled, prices, negawatt):
    """The printed table as JSON: amounts in sen (integers, exact) and yen (strings)."""
    import json

    days = []
    for j, ds in enumerate(settled):
        hi = int(np.argmax(prices.price[j]))
        day = {"date": str(ds.day), "price_min_sen": int(prices.price[j].min()),
               "price_max_sen": int(prices.price[j].max()), "price_max_slot": hi + 1,
               "margin_pct_at_max": prices.margin_bp[j, hi] / 100.0,
               "adder_sen_at_max": int(prices.adder[j, hi]), "cap_sen": int(prices.cap[j].max()),
               "cap_lowered_by_spot_rule": bool(prices.lowered[j]),
               "bgs": [{"bg": bg[i], "kind": kind[i], "shortfall_wh": int(ds.day_shortfall_wh[i]),
                        "charge_sen": int(ds.day_charge_sen[i]),
                        "charge_yen": _yen(int(ds.day_charge_sen[i]))} for i in range(len(bg))],
               "total": {"shortfall_wh": int(ds.day_shortfall_wh.sum()),
                         "charge_sen": int(ds.day_charge_sen.sum()),
                         "charge_yen": _yen(int(ds.day_charge_sen.sum()))}}
        if negawatt:
            day["negawatt"] = {"resources_paid": int((ds.negawatt_fee_sen > 0).sum()),
                               "wh": int(ds.negawatt_wh.sum()),
                               "unit_sen_per_kwh": int(ds.negawatt_unit_sen),
                               "fees_sen": int(ds.negawatt_fee_sen.sum())}
        days.append(day)
    return json.dumps({"pattern": pattern, "sign": "charge > 0: BG pays the TSO (shortfall), "
                       "< 0: BG receives (surplus)", "days": days}, indent=1)
