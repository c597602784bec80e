"""Imbalance correction on a Dask `distributed` cluster, equal to the in-memory engine to the Wh.

The driver (this module) reads only the static tables (resources, groups, plans, …) and
the partition listing, and checks the table rules itself. Everything that reads per-slot
values runs on workers, one task per (date, demand BG) partition
(host_tools.tso.partition_work): value checks for every partition, then correction with
baselines for every (plan date, demand BG). The driver merges the problems, or stacks the
micro-Wh pair shares of a date in the in-memory engine's pair order and runs the same
largest-remainder rounding and BG sums (correction.round_shares, correction.day_result).

`connect()` starts a LocalCluster of worker processes or joins a running scheduler (a
`dask scheduler` on a cluster, Kubernetes or HPC deployments alike: docs/scaling.md).
A worker that dies mid-task is replaced and its task rerun by the scheduler; tasks are
pure functions of files, so a rerun gives the same result.
"""
import time
import uuid

import numpy as np

from host_tools.tso import correction, model, partition_work, partitions, validate
from host_tools.tso.errors import LoadError, Problem, ValidationError, raise_if


def connect(scheduler=None, workers=2, memory_limit="2GB"):
    """(client, cluster or None): a running scheduler's client, or a new LocalCluster."""
    from distributed import Client, LocalCluster
    if scheduler:
        return Client(scheduler, timeout="20s"), None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           memory_limit=memory_limit, dashboard_address=":0")
    return Client(cluster), cluster


def merge_problems(lists):
    """Problems of many partitions -> one Problem per (kind, text), offenders deduplicated."""
    merged = {}
    for problems in lists:
        for p in problems:
            seen = merged.setdefault((p.kind, p.text), {})
            for o in p.offenders:
                seen.setdefault(o, None)
    return [Problem(kind, text, list(offenders)) for (kind, text), offenders in merged.items()]


def _window(days, date, rules):
    """Calendar days a baseline of `date` may read: High 4 of 5's look-back and prev_day."""
    back = max(int(rules["baseline"]["high4of5"]["lookback_days"]), 1)
    return days[(days >= date - np.timedelta64(back, "D")) & (days <= date)]


def _run(client, fn, items, prefix, log, what):
    """Submit fn(*item) per item under readable keys; gather in item order with progress."""
    from distributed import as_completed
    run = uuid.uuid4().hex[:8]
    keys = ["%s-%s-%d" % (prefix, run, i) for i in range(len(items))]
    futures = [client.submit(fn, *item, key=k, pure=False) for k, item in zip(keys, items)]
    t0 = time.perf_counter()
    step = max(1, len(futures) // 10)
    for done, _ in enumerate(as_completed(futures), 1):
        if log and (done % step == 0 or done == len(futures)):
            log("  %s: %d/%d partitions (%.1f s)" % (what, done, len(futures),
                                                     time.perf_counter() - t0))
    return client.gather(futures)


def correct(root, rules, pattern, client, plan_basis=None, log=None, timings=None):
    """Validate and correct the partitioned data set at `root` -> (data, [DayResult]).

    `data` holds the static tables only (bgs, resources, …; no value arrays). Raises the
    same TsoError kinds as model.load + validate.validate + correction.correct.
    """
    if not partitions.is_partitioned(root):
        raise LoadError("%s: not a partitioned data set (no receiving/ directory); the Dask "
                        "engine reads DIR/<table>/date=…/demand_bg=…/ (smeter gen-tso-data "
                        "--layout partitioned)" % root)
    t0 = time.perf_counter()
    data = model.assemble(model.read_tables(root), partitions.calendar(root))
    days = data.days
    day_set = set(days.tolist())
    listing = {name: partitions.list_partitions(root, name) for name in model.WIDE}
    if not days.size:
        raise LoadError("%s: no receiving-point rows under receiving/" % root)
    problems = validate.check_tables(data, rules)
    for name in ("device", "device_plans"):
        off = [d for d, _ in listing[name] if d.tolist() not in day_set]
        if off:
            problems.append(model.unknown_dates_problem(name, off))
    used = sorted(set(data.resources["demand_bg"].astype(str).tolist()))
    parts = {(d, bg) for d in days for bg in used}
    for name in model.WIDE:
        parts |= {(d, bg) for d, bg in listing[name] if d.tolist() in day_set}
    parts = sorted(parts)
    t1 = time.perf_counter()
    if log:
        log("read static tables of %d resources, %d dates x %d demand BGs in %.2f s"
            % (len(data.resources), len(days), len(used), t1 - t0))
    found = _run(client, partition_work.validate_partition,
                 [(root, d, bg, rules) for d, bg in parts], "validate", log, "validated")
    raise_if(problems + merge_problems(found))
    correction.check_pattern(data, pattern)
    t2 = time.perf_counter()
    plan_days = [d for d in data.plan_days() if d.tolist() in day_set]
    items = [(root, d, bg, _window(days, d, rules), rules, pattern, plan_basis)
             for d in plan_days for bg in used]
    out = _run(client, partition_work.correct_partition, items, "correct", log, "corrected")
    t3 = time.perf_counter()
    results = []
    nb = len(data.bgs)
    for i, d in enumerate(plan_days):
        parts_of_day = out[i * len(used):(i + 1) * len(used)]
        raise_if(merge_problems(p["problems"] for p in parts_of_day), ValidationError)
        results.append(_assemble(data, d, parts_of_day, nb))
    if timings is not None:
        timings.update(static_s=t1 - t0, validate_s=t2 - t1, correct_s=t3 - t2,
                       round_s=time.perf_counter() - t3)
    return data, results


def _assemble(data, date, parts, nb):
    """One date: pair shares of every demand BG in pairs_of order, rounded, BG sums."""
    dem = np.concatenate([p["pair_dem"] for p in parts])
    gen = np.concatenate([p["pair_gen"] for p in parts])
    order = np.argsort(dem * (nb + 2) + gen + 1, kind="stable")
    dem_u = np.concatenate([p["dem_u"] for p in parts])[order]
    gen_u = np.concatenate([p["gen_u"] for p in parts])[order]
    dem_wh, gen_wh = correction.round_shares(dem_u, gen_u)
    actual = np.sum([p["actual"] for p in parts], axis=0, dtype=np.int64)
    day = data.day_index[date.tolist()]
    return correction.day_result(date, dem[order], gen[order], dem_wh, gen_wh, actual,
                                 correction.bg_plans(data, day))


def worker_peaks(client):
    """Peak resident memory of each worker process so far, bytes ({address: bytes})."""
    return client.run(_peak_rss)


def _peak_rss():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
