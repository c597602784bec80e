"""Imbalance correction for adjustment delivered at device points (seed 000 論点①,
docs/glossary.md#correction-patterns).

Per slot and per balancing group (BG), in the BG's own direction (consumption for a demand
BG, generation for a generation BG):

    imbalance = actual + correction - plan

The correction takes the delivered adjustment back out of the BG's actual, so the BG is
left with the imbalance it would have had without the dispatch. docs/imbalance-correction.md
defines the signs and works the seed's example through all three patterns.

Delivered adjustment of a resource in a dispatched slot, at the sending end (送端):
    delta = meter_se - baseline_se
where the meter is the device point (m, generation end 発端, converted with the loss
factor: se = ge * (1 - loss_ppm/1e6)) or the receiving point (M, already sending end).
Resources are aggregated per (demand BG, generation BG) pair; each pair's delta is split
into a demand share and a generation share by pattern:

1. BG level, no per-device apportioning: the pair is treated as one site: its net flow
   N (export - import, all its sites) and its delta are split by `split` below.
2. Per device point: each site's delta is split by its own receiving-point flow, then summed.
3. Only sites that can never reverse-flow (no generation contract) are admitted; the whole
   delta goes to the demand BG.

`split(N, delta)`: the site moved from the counterfactual flow N0 = N - delta to N; the part
of that move on the import side of zero is the demand share, the part on the export side
the generation share (shares carry the sign of delta and add up to it exactly). A site
without a generation BG gives everything to its demand BG.

Arithmetic is exact: integer micro-Wh (Wh * 1e6, loss factors in ppm) in int64, rounded to
Wh once at the end by largest remainder (host_tools.tso.rounding), so the rounded shares of
a slot add up to the rounded total delivered adjustment.
"""
import numpy as np

from host_tools.tso import baseline as bl
from host_tools.tso.config import plan_basis as basis_of
from host_tools.tso.errors import Problem, TsoError, raise_if
from host_tools.tso.model import SLOTS
from host_tools.tso.rounding import largest_remainder

MICRO = 1000000
PATTERNS = (1, 2, 3)


class PatternError(TsoError):
    kind = "tso_pattern"


# -- the kernel: arrays in, micro-Wh shares out -------------------------------------------
class Inputs:
    """One day, columnar. Row r is a resource; pairs index into (pair_dem, pair_gen).

    receiving: int64 (n, 48) Wh net at M (+ export); meter: int64 (n, 48) Wh at the metering
    point (device value for m, = receiving for M); baseline: int64 (n, 48) Wh;
    base_ge: bool (n, 48) baseline at generation end; loss_ppm: int64 (n,); is_device: bool (n,);
    events: bool (n, 48) dispatched slots; pair: int64 (n,); pair_has_gen: bool (pairs,).
    """

    __slots__ = ("receiving", "meter", "baseline", "base_ge", "loss_ppm", "is_device",
                 "events", "pair", "pair_has_gen")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw[k])


def delivered_micro(inp, cols=None):
    """Delivered adjustment at the sending end, micro-Wh, 0 outside events.

    cols selects slot columns (index array); the default is every slot.
    """
    take = (lambda a: a) if cols is None else (lambda a: np.take(a, cols, axis=1))
    loss = inp.loss_ppm
    f = np.where(inp.is_device, MICRO - loss, MICRO)[:, None]
    fb = np.where(inp.is_device[:, None] & take(inp.base_ge), (MICRO - loss)[:, None], MICRO)
    delta = take(inp.meter) * f
    delta -= take(inp.baseline) * fb
    delta[~take(inp.events)] = 0
    return delta


def split(net, delta):
    """(demand share, generation share) of delta for a flow that ended at `net` (int arrays)."""
    n0 = net - delta
    lo = np.minimum(n0, net)
    hi = np.maximum(n0, net, out=n0)
    np.maximum(hi, 0, out=hi)
    export_part = hi
    export_part -= np.maximum(lo, 0)
    import_part = np.abs(delta) - export_part
    sign = np.sign(delta)
    import_part *= sign
    export_part *= sign
    return import_part, export_part


def _pair_order(pair, n_pairs):
    order = np.argsort(pair, kind="stable")
    starts = np.searchsorted(pair[order], np.arange(n_pairs))
    return order, starts


def _by_pair(values, pair, n_pairs, order=None, starts=None):
    """Exact int64 sums of rows per pair: (n, k) -> (pairs, k)."""
    if order is None:
        order, starts = _pair_order(pair, n_pairs)
    out = np.zeros((n_pairs,) + values.shape[1:], np.int64)
    nonempty = starts < np.append(starts[1:], len(pair))
    if len(pair):
        out[nonempty] = np.add.reduceat(values[order], starts[nonempty], axis=0)
    return out


def shares_micro(inp, pattern):
    """Demand and generation shares per pair and slot, micro-Wh: ((pairs,48), (pairs,48)).

    Only slots with a dispatch are computed: every other slot contributes exactly zero.
    """
    if pattern not in PATTERNS:
        raise PatternError("pattern must be 1, 2 or 3, not %r" % (pattern,))
    n_pairs = len(inp.pair_has_gen)
    width = inp.events.shape[1]
    dem_out = np.zeros((n_pairs, width), np.int64)
    gen_out = np.zeros((n_pairs, width), np.int64)
    cols = np.nonzero(inp.events.any(axis=0))[0]
    if not len(cols):
        return dem_out, gen_out
    delta = delivered_micro(inp, cols)
    pair = inp.pair
    if pattern == 2:
        dem, gen = split(np.take(inp.receiving, cols, axis=1) * MICRO, delta)
        no_gen = ~inp.pair_has_gen[pair]
        dem[no_gen] = delta[no_gen]
        gen[no_gen] = 0
        order, starts = _pair_order(pair, n_pairs)
        dem_out[:, cols] = _by_pair(dem, pair, n_pairs, order, starts)
        gen_out[:, cols] = _by_pair(gen, pair, n_pairs, order, starts)
        return dem_out, gen_out
    d_pair = _by_pair(delta, pair, n_pairs)
    if pattern == 1:
        net = _by_pair(np.take(inp.receiving, cols, axis=1), pair, n_pairs) * MICRO
        dem, gen = split(net, d_pair.copy())
        has = inp.pair_has_gen
        dem[~has] = d_pair[~has]
        gen[~has] = 0
        dem_out[:, cols] = dem
        gen_out[:, cols] = gen
    else:
        dem_out[:, cols] = d_pair
    return dem_out, gen_out


def shares_micro_loop(inp, pattern):
    """The same as shares_micro, one resource and one slot at a time in plain Python ints.

    The oracle for the vectorised kernel (tests and benchmark), written straight from the
    definitions in the module docstring.
    """
    n_pairs = len(inp.pair_has_gen)
    dem = [[0] * SLOTS for _ in range(n_pairs)]
    gen = [[0] * SLOTS for _ in range(n_pairs)]
    net = [[0] * SLOTS for _ in range(n_pairs)]

    def split1(n, d):
        n0 = n - d
        lo, hi = min(n0, n), max(n0, n)
        exp = max(hi, 0) - max(lo, 0)
        imp = hi - lo - exp
        s = (d > 0) - (d < 0)
        return s * imp, s * exp

    for r in range(len(inp.pair)):
        p = int(inp.pair[r])
        device = bool(inp.is_device[r])
        loss = int(inp.loss_ppm[r])
        f = MICRO - loss if device else MICRO
        has_gen = bool(inp.pair_has_gen[p])
        for s in range(SLOTS):
            rec = int(inp.receiving[r, s])
            net[p][s] += rec
            if not inp.events[r, s]:
                continue
            fb = MICRO - loss if device and inp.base_ge[r, s] else MICRO
            d = int(inp.meter[r, s]) * f - int(inp.baseline[r, s]) * fb
            if pattern == 2 and has_gen:
                a, b = split1(rec * MICRO, d)
            else:  # pattern 1 splits the pair total below; pattern 3 and no generation BG
                a, b = d, 0
            dem[p][s] += a
            gen[p][s] += b
    if pattern == 1:
        for p in range(n_pairs):
            if not inp.pair_has_gen[p]:
                continue
            for s in range(SLOTS):
                total = dem[p][s]
                dem[p][s], gen[p][s] = split1(net[p][s] * MICRO, total)
    return np.array(dem, np.int64).reshape(n_pairs, SLOTS), \
        np.array(gen, np.int64).reshape(n_pairs, SLOTS)


def round_shares(dem_u, gen_u):
    """Micro-Wh shares -> Wh, conserving each slot's total (largest remainder)."""
    stacked = np.concatenate([dem_u, gen_u], axis=0)
    wh = largest_remainder(stacked, MICRO)
    n = len(dem_u)
    return wh[:n], wh[n:]


# -- assembling one day from the data model ------------------------------------------------
class DayResult:
    """Corrected day. Pair arrays are (pairs, 48); BG arrays (bgs, 48), all int64 Wh.

    pair_dem/pair_gen: BG indices (-1: no generation BG); dem_share/gen_share: how the
    pair's delivered adjustment was assigned; plan/actual/correction/imbalance per BG.
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)


def pairs_of(data):
    """(pair index per resource, pair_dem, pair_gen) from the resources' BG columns."""
    dem = data.bg_codes("demand_bg")
    gen = data.bg_codes("generation_bg")
    key = dem * (len(data.bgs) + 2) + (gen + 1)
    uniq, pair = np.unique(key, return_inverse=True)
    return pair.astype(np.int64), uniq // (len(data.bgs) + 2), uniq % (len(data.bgs) + 2) - 1


def dr_days(data):
    """bool (days, resources): the resource was dispatched that day, by any group."""
    cache = data.__dict__.setdefault("_dr_days", {})
    if "mask" not in cache:
        ev = data.events
        mask = np.zeros((len(data.days), len(data.resources)), bool)
        members = data.group_rows()
        for gid, date in zip(ev["group_id"], ev["date"].astype("datetime64[D]")):
            d = data.day_index.get(date.tolist())
            rows = members.get(gid)
            if d is not None and rows is not None:
                mask[d, rows] = True
        cache["mask"] = mask
    return cache["mask"]


def check_pattern(data, pattern):
    """Pattern 3 admits only sites without a generation contract: all others are named."""
    res = data.resources
    if pattern == 3:
        bad = res["resource_id"][res["gen_contract"] != 0]
        if len(bad):
            raise PatternError(
                "pattern 3 admits only sites that can never reverse-flow (no generation "
                "contract); %d resource(s) have one: %s" % (len(bad), ", ".join(bad.tolist())),
                [Problem("pattern3_reverse_flow", "resources with a generation contract",
                         bad.tolist())])


def prepare_day(data, day, rules, pattern, plan_basis=None):
    """Inputs for one day (index into data.days): meter values, baselines, event mask."""
    if pattern not in PATTERNS:
        raise PatternError("pattern must be 1, 2 or 3, not %r" % (pattern,))
    basis = plan_basis or basis_of(rules, pattern)
    res = data.resources
    n = len(res)
    names = res["resource_id"]
    is_device = data.is_device_point()
    check_pattern(data, pattern)
    meter = np.where(is_device[:, None], data.device[day], data.receiving[day])
    pair, pair_dem, pair_gen = pairs_of(data)
    baseline = np.zeros((n, SLOTS), np.int64)
    base_ge = np.zeros((n, SLOTS), bool)
    events = np.zeros((n, SLOTS), bool)
    problems = []
    ev = data.events
    ev_days = ev["date"].astype("datetime64[D]")
    members = data.group_rows()
    cfg = rules["baseline"]["high4of5"]
    for i in np.nonzero(ev_days == data.days[day])[0]:
        gid = ev["group_id"][i]
        rows = np.asarray(members.get(gid, []), np.int64)
        if not len(rows):
            continue
        a, b = int(ev["start_slot"][i]) - 1, int(ev["end_slot"][i])
        method = data.groups["baseline_method"][data.group_index[gid]]
        sub_names = names[rows]
        # groups hold one kind of point (validated), so one source serves all their rows
        src = "device" if is_device[rows[0]] else "receiving"
        values, present_all = getattr(data, src), getattr(data, src + "_present")
        if method == "plan":
            miss = ~data.device_plans_present[day, rows]
            if miss.any():
                problems.append(Problem("plan_missing", "device-point plans missing on %s for"
                                        % data.days[day], sub_names[miss].tolist()))
            base = data.device_plans[day, rows, a:b]
            ge = is_device[rows] & (basis == "generation")
        else:
            # gather only the days the method reads: the whole history would be copied
            # once per group otherwise
            if method == "prev_day":
                sel = [day - 1, day] if day > 0 else [day]
            else:
                # DR days (DR実施日): by default every day the resource was dispatched, by
                # whichever group (ERAB guideline); "group": only this group's event days
                scope = cfg.get("dr_days_scope", "resource")
                if scope not in ("resource", "group"):
                    raise ValueError("baseline.high4of5.dr_days_scope must be 'resource' or "
                                     "'group', not %r" % (scope,))
                if scope == "group":
                    dr = np.isin(data.days, ev_days[ev["group_id"] == gid])[:, None]
                    dr = np.broadcast_to(dr, (len(data.days), len(rows)))
                else:
                    dr = dr_days(data)[:, rows]
                cand = bl.like_days(data.days, day, dr.all(axis=1), cfg, limit=False)
            # and only the slots it reads: the event, and for High 4 of 5 the adjustment
            # window before it (slicing from its first slot leaves the result unchanged)
            c0 = a if method == "prev_day" else max(0, a - 2 * cfg["adjust_start_hours_before"])
            if method == "prev_day":
                sel = np.asarray(sel, np.int64)
                series = values[np.ix_(sel, rows, np.arange(c0, b))]
                present = present_all[np.ix_(sel, rows)]
                base, probs = bl.prev_day(series, present, data.days[sel], len(sel) - 1,
                                          sub_names)
            else:
                # the most recent candidates first: the rest only if some resource needed
                # older days (low days replaced, its own DR days); same result either way
                first = max(cfg["like_days"], cfg["holiday_like_days"]) + 2

                def h4(take, part):
                    sel = np.asarray(sorted(cand[:take]) + [day], np.int64)
                    info = {}
                    got = bl.high4of5(values[np.ix_(sel, rows[part], np.arange(c0, b))],
                                      present_all[np.ix_(sel, rows[part])], data.days[sel],
                                      len(sel) - 1, (a - c0, b - c0), dr[sel][:, part], cfg,
                                      sub_names[part], info)
                    return got, info["complete"]

                every = np.arange(len(rows))
                (base, probs), complete = h4(min(first, len(cand)), every)
                if first < len(cand) and (probs or not complete.all()):
                    redo = every if probs else every[~complete]
                    (part_base, probs), _ = h4(len(cand), redo)
                    base[redo] = part_base
            base = base[:, a - c0:]
            problems.extend(probs)
            ge = is_device[rows]
        baseline[rows, a:b] = base  # the event window only
        base_ge[rows, a:b] = ge[:, None]
        events[rows, a:b] = True
        miss = ~present_all[day, rows]
        if miss.any():
            problems.append(Problem("actual_missing", "dispatched resources without metered "
                                    "values on %s" % data.days[day], sub_names[miss].tolist()))
    raise_if(problems)
    inp = Inputs(receiving=data.receiving[day], meter=meter, baseline=baseline,
                 base_ge=base_ge, loss_ppm=res["loss_ppm"].astype(np.int64),
                 is_device=is_device, events=events, pair=pair,
                 pair_has_gen=pair_gen >= 0)
    return inp, pair_dem, pair_gen


def _sum_rows_by(values, codes, n_out):
    """Exact per-code row sums of non-negative int64 Wh (n, 48) -> (n_out, 48).

    float64 bincount is exact while every partial sum stays below 2**53 Wh, which the
    configured per-slot bound guarantees for any realistic resource count; above it the
    int64 path is taken.
    """
    if values.sum(dtype=np.float64) < 2.0 ** 53:
        width = values.shape[1]
        flat = (codes[:, None] * width + np.arange(width)).reshape(-1)
        out = np.bincount(flat, weights=values.reshape(-1), minlength=n_out * width)
        return out.reshape(n_out, width).astype(np.int64)
    return _by_pair(values, codes, n_out)


def bg_actuals(data, day):
    """Per BG and slot: demand BGs sum imports, generation BGs sum exports (Wh)."""
    rec = data.receiving[day]
    out = np.zeros((len(data.bgs), SLOTS), np.int64)
    for col, values in (("demand_bg", np.maximum(-rec, 0)),
                        ("generation_bg", np.maximum(rec, 0))):
        codes = data.bg_codes(col)
        ok = codes >= 0
        if not ok.all():
            values, codes = values[ok], codes[ok]
        out += _sum_rows_by(values, codes, len(data.bgs))
    return out


def bg_plans(data, day):
    plans = data.bg_plans
    sel = plans["date"].astype("datetime64[D]") == data.days[day]
    out = np.zeros((len(data.bgs), SLOTS), np.int64)
    b = np.array([data.bg_index[x] for x in plans["bg_id"][sel]], np.int64)
    out[b, plans["slot"][sel] - 1] = plans["plan_wh"][sel]
    return out


def correct_day(data, day, rules, pattern, plan_basis=None, timings=None):
    """Correct one day (index into data.days) -> DayResult."""
    import time
    t0 = time.perf_counter()
    inp, pair_dem, pair_gen = prepare_day(data, day, rules, pattern, plan_basis)
    t1 = time.perf_counter()
    dem_u, gen_u = shares_micro(inp, pattern)
    dem_wh, gen_wh = round_shares(dem_u, gen_u)
    t2 = time.perf_counter()
    result = day_result(data.days[day], pair_dem, pair_gen, dem_wh, gen_wh,
                        bg_actuals(data, day), bg_plans(data, day))
    if timings is not None:
        timings["prepare_s"] = timings.get("prepare_s", 0) + t1 - t0
        timings["correct_s"] = timings.get("correct_s", 0) + t2 - t1
        timings["bg_s"] = timings.get("bg_s", 0) + time.perf_counter() - t2
    return result


def day_result(day, pair_dem, pair_gen, dem_wh, gen_wh, actual, plan):
    """A DayResult from the rounded pair shares and the BG actuals and plans (bgs, 48)."""
    nb = len(actual)
    correction = np.zeros((nb, SLOTS), np.int64)
    correction += _by_pair(dem_wh, pair_dem, nb)
    has = pair_gen >= 0
    correction -= _by_pair(gen_wh[has], pair_gen[has], nb)
    return DayResult(day=day, pair_dem=pair_dem, pair_gen=pair_gen,
                     dem_share=dem_wh, gen_share=gen_wh, delivered=dem_wh + gen_wh,
                     plan=plan, actual=actual, correction=correction,
                     imbalance=actual + correction - plan)


def correct(data, rules, pattern, plan_basis=None, timings=None):
    """Correct every day that carries BG plans -> list of DayResult."""
    return [correct_day(data, data.day_index[d.tolist()], rules, pattern, plan_basis, timings)
            for d in data.plan_days()]


def result_columns(data, results):
    """Long table (dict of numpy columns) of per-slot, per-BG values for writing."""
    nb = len(data.bgs)
    cols = {k: [] for k in ("date", "slot", "bg_id", "bg_kind", "plan_wh", "actual_wh",
                            "correction_wh", "imbalance_wh")}
    for res in results:
        cols["date"].append(np.full(nb * SLOTS, res.day))
        cols["slot"].append(np.tile(np.arange(1, SLOTS + 1), nb))
        cols["bg_id"].append(np.repeat(data.bgs["bg_id"].astype(str), SLOTS))
        cols["bg_kind"].append(np.repeat(data.bgs["kind"].astype(str), SLOTS))
        for k in ("plan", "actual", "correction", "imbalance"):
            cols[k + "_wh"].append(getattr(res, k).reshape(-1))
    return {k: (np.concatenate(v) if v else np.empty(0)) for k, v in cols.items()}

