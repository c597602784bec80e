"""`smeter correct`: imbalance correction for device-point adjustment (patterns 1/2/3)."""
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from host_tools import atomic_output, cli_args, cli_log
from host_tools.tso import correction, quality
from host_tools.exit_codes import ENVIRONMENT, INCOMPLETE, OK, USAGE

HELP = """\
Correct each balancing group's imbalance for adjustment delivered at device points
(機器点) and receiving points (受電点), per 30-minute slot:

    imbalance = actual + correction - plan   (in the BG's own direction)

Patterns (seed 000 論点①, docs/glossary.md#correction-patterns): 1 = BG level, the pair
(demand BG, generation BG) treated as one site; 2 = per device point, each site's delivered
adjustment split by its own receiving-point flow; 3 = only sites without a generation
contract (never reverse-flow), others are rejected by name. Every day that has BG plans is
corrected; the data set is validated first and every broken group-management rule is listed
with all offenders.
Formats: docs/tso-data.md; the patterns: docs/imbalance-correction.md."""


def register(subparsers):
    p = subparsers.add_parser(
        "correct", help="imbalance correction per slot and BG (patterns 1/2/3)",
        description=HELP, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="DIR",
                   help="data set directory (tables as .parquet or .csv, see docs/tso-data.md)")
    p.add_argument("--pattern", required=True, type=int, choices=(1, 2, 3),
                   help="correction pattern of seed 000 (docs/glossary.md#correction-patterns)")
    p.add_argument("--out", metavar="FILE", type=cli_args.output_file,
                   help="write per-slot, per-BG plan/actual/correction/imbalance; "
                        ".csv or .parquet by extension")
    p.add_argument("--pairs-out", metavar="FILE", type=cli_args.output_file,
                   help="also write per-slot, per-(demand BG, generation BG) delivered "
                        "adjustment and its demand/generation shares")
    p.add_argument("--plan-basis", choices=("sending", "generation"),
                   help="basis of device-point plans: sending end (送端) or generation end "
                        "(発端); default per pattern from the rules file")
    p.add_argument("--config", metavar="FILE",
                   help="JSON overriding hw/tso/rules.json (limits, plan basis, baseline)")
    p.add_argument("--json", action="store_true",
                   help="print the per-day, per-BG totals as one JSON object instead of a table")
    p.add_argument("--engine", choices=("memory", "dask"), default="memory",
                   help="memory (default): the whole data set as arrays in this process; "
                        "dask: one task per (date, demand BG) partition on Dask workers, "
                        "same result to the Wh (needs the partitioned layout)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --engine dask: a running Dask scheduler, e.g. "
                        "tcp://10.0.0.5:8786; default: start a local cluster")
    p.add_argument("--workers", type=cli_args.positive_int, default=2, metavar="N",
                   help="with --engine dask and no --scheduler: local worker processes "
                        "(default 2)")
    p.add_argument("--worker-memory", default="2GB", metavar="SIZE",
                   help="with --engine dask and no --scheduler: memory limit per local "
                        "worker (default 2GB; Dask restarts a worker that exceeds it)")
    p.set_defaults(func=run)


_log = cli_log.info  # progress and "wrote" lines on stderr, silenced by -q
_err = cli_log.error  # always printed


def _write(cols, path):
    table = pa.table({k: pa.array(v) for k, v in cols.items()})
    with atomic_output.atomic_path(path) as tmp:
        if path.endswith(".parquet"):
            pq.write_table(table, tmp)
        else:
            pacsv.write_csv(table, tmp)


def _check_ext(path):
    if path and not (path.endswith(".csv") or path.endswith(".parquet")):
        raise ValueError("%s: output must end in .csv or .parquet" % path)


def pair_columns(data, results, pair_est, day_ix):
    """Per-slot, per-pair rows; pair_est: quality.pair_counts(), the estimated inputs."""
    from host_tools.tso.model import SLOTS
    bg = data.bgs["bg_id"].astype(str)
    cols = {k: [] for k in ("date", "slot", "demand_bg", "generation_bg", "delivered_wh",
                            "demand_share_wh", "generation_share_wh", "estimated_inputs")}
    zero = np.zeros(SLOTS, np.int64)
    for r in results:
        di = day_ix[np.datetime64(r.day, "D")]
        cols["estimated_inputs"].append(np.concatenate(
            [pair_est[(int(a), int(b))][di] if (int(a), int(b)) in pair_est else zero
             for a, b in zip(r.pair_dem, r.pair_gen)]) if len(r.pair_dem) else np.empty(0, np.int64))
        n = len(r.pair_dem)
        cols["date"].append(np.full(n * SLOTS, r.day))
        cols["slot"].append(np.tile(np.arange(1, SLOTS + 1), n))
        cols["demand_bg"].append(np.repeat(bg[r.pair_dem], SLOTS))
        gen = np.where(r.pair_gen >= 0, bg[np.maximum(r.pair_gen, 0)], "")
        cols["generation_bg"].append(np.repeat(gen, SLOTS))
        cols["delivered_wh"].append(r.delivered.reshape(-1))
        cols["demand_share_wh"].append(r.dem_share.reshape(-1))
        cols["generation_share_wh"].append(r.gen_share.reshape(-1))
    return {k: np.concatenate(v) for k, v in cols.items()}


def _correct_dask(args, rules):
    """(data, results) from the Dask engine; the cluster lives only for this call."""
    from distributed.scheduler import KilledWorker

    from host_tools.tso import dask_engine
    t0 = time.perf_counter()
    try:
        client, cluster = dask_engine.connect(args.scheduler, args.workers, args.worker_memory)
    except OSError as exc:  # unreachable scheduler, no free port
        raise ClusterError("cannot reach or start a Dask cluster (%s): %s"
                           % (args.scheduler or "local", exc)) from None
    try:
        workers = len(client.scheduler_info()["workers"])
        _log("dask: %s, %d worker(s), up in %.2f s" % (
            args.scheduler or "local cluster", workers, time.perf_counter() - t0))
        timings = {}
        try:
            data, results = dask_engine.correct(args.data, rules, args.pattern, client,
                                                args.plan_basis, _log, timings)
        except KilledWorker as exc:  # a task took down its workers more often than allowed
            raise ClusterError("Dask gave up on a task: %s" % exc) from None
        peaks = dask_engine.worker_peaks(client)
        _log("dask: static tables %.2f s, validation %.2f s, correction %.2f s, rounding "
             "%.3f s; worker peak memory %s" % (
                 timings["static_s"], timings["validate_s"], timings["correct_s"],
                 timings["round_s"], ", ".join("%.0f MB" % (v / 1e6)
                                               for v in sorted(peaks.values()))))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return data, results


class ClusterError(Exception):
    """The Dask cluster, not the data, failed."""


def run(args):
    from host_tools.tso import config
    from host_tools.tso.config import ConfigError
    from host_tools.tso.errors import LoadError, TsoError
    if args.engine == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            _err("smeter correct: --engine dask needs the dask[distributed] package "
                 "(pip install -e '.[dask]')")
            return ENVIRONMENT
    try:
        _check_ext(args.out)
        _check_ext(args.pairs_out)
        rules = config.load_rules(args.config)
        if args.engine == "dask":
            data, results = _correct_dask(args, rules)
        else:
            data, results = _correct_memory(args, rules)
        est = quality.marks(args.data, data)
    except ConfigError as exc:
        _err("smeter correct: %s" % exc)
        return USAGE
    except LoadError as exc:
        _err("smeter correct: %s" % exc)
        return USAGE
    except TsoError as exc:
        _err("smeter correct: %s" % exc.kind)
        for p in exc.problems or [exc]:
            _err("  " + str(p))
        return USAGE
    except ClusterError as exc:
        _err("smeter correct: %s" % exc)
        return ENVIRONMENT
    except (OSError, ValueError) as exc:
        _err("smeter correct: %s" % exc)
        return USAGE
    return _report(args, rules, data, results, est)


def _correct_memory(args, rules):
    from host_tools.tso import correction, model, validate
    t0 = time.perf_counter()
    data = model.load(args.data)
    t1 = time.perf_counter()
    _log("loaded %d resources, %d BGs, %d days from %s in %.2f s"
         % (len(data.resources), len(data.bgs), len(data.days), args.data, t1 - t0))
    validate.validate(data, rules)
    t2 = time.perf_counter()
    _log("validated in %.2f s" % (t2 - t1))
    timings = {}
    results = correction.correct(data, rules, args.pattern, args.plan_basis, timings)
    t3 = time.perf_counter()
    _log("corrected %d day(s), pattern %d: baselines/inputs %.3f s, correction %.3f s, "
         "BG sums %.3f s, total %.3f s" % (
             len(results), args.pattern, timings.get("prepare_s", 0),
             timings.get("correct_s", 0), timings.get("bg_s", 0), t3 - t2))
    return data, results


def _report(args, rules, data, results, est):
    from host_tools.tso import config
    if not results:
        _err("smeter correct: no day carries BG plans; nothing to correct")
        return INCOMPLETE
    bg = data.bgs["bg_id"].astype(str)
    kind = data.bgs["kind"].astype(str)
    day_ix = {d: i for i, d in enumerate(data.days)}
    counts = quality.bg_counts(data, est)  # (days, BGs, 48) estimated inputs
    per_day = [counts[day_ix[np.datetime64(r.day, "D")]] for r in results]
    basis = args.plan_basis or config.plan_basis(rules, args.pattern)
    if args.json:
        import json

        print(json.dumps({"pattern": args.pattern, "plan_basis": basis, "days": [{
            "date": str(r.day), "delivered_wh": int(r.delivered.sum()),
            "bgs": [{"bg": bg[i], "kind": kind[i], "plan_wh": int(r.plan[i].sum()),
                     "actual_wh": int(r.actual[i].sum()),
                     "correction_wh": int(r.correction[i].sum()),
                     "imbalance_wh": int(r.imbalance[i].sum()),
                     "sum_abs_uncorrected_wh": int(np.abs(r.actual[i] - r.plan[i]).sum()),
                     "sum_abs_imbalance_wh": int(np.abs(r.imbalance[i]).sum()),
                     "slots_with_estimated_inputs": int((c[i] > 0).sum())}
                    for i in range(len(bg))]} for r, c in zip(results, per_day)]}, indent=1))
    else:
        _print_table(args.pattern, basis, bg, kind, results, per_day)
    try:
        if args.out:
            cols = correction.result_columns(data, results)
            cols["estimated_inputs"] = (np.concatenate([c.reshape(-1) for c in per_day])
                                        if per_day else np.empty(0, np.int64))
            _write(cols, args.out)
            _log("wrote %s" % args.out)
        if args.pairs_out:
            _write(pair_columns(data, results, quality.pair_counts(data, est), day_ix),
                   args.pairs_out)
            _log("wrote %s" % args.pairs_out)
    except OSError as exc:  # checked before the work; the disk filled up or the dir went away
        _err("smeter correct: %s" % exc)
        return USAGE
    return OK


def _print_table(pattern, basis, bg, kind, results, per_day):
    print("pattern %d, plan basis %s" % (pattern, basis))
    for r, c in zip(results, per_day):
        print("%s  delivered adjustment %d Wh (sending end)" % (r.day, r.delivered.sum()))
        print("  %-10s %-10s %14s %14s %14s %14s %16s %16s" % (
            "bg", "kind", "plan_wh", "actual_wh", "correction_wh", "imbalance_wh",
            "sum|uncorrected|", "sum|imbalance|"))
        for i in range(len(bg)):
            print("  %-10s %-10s %14d %14d %14d %14d %16d %16d" % (
                bg[i], kind[i], r.plan[i].sum(), r.actual[i].sum(), r.correction[i].sum(),
                r.imbalance[i].sum(), np.abs(r.actual[i] - r.plan[i]).sum(),
                np.abs(r.imbalance[i]).sum()))
        if c.any():  # exact results and results resting on estimates told apart
            print("  slots resting on estimated inputs: %s" % ", ".join(
                "%s %d" % (bg[i], (c[i] > 0).sum()) for i in range(len(bg)) if c[i].any()))
