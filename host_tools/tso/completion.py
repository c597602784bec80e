"""Missing-data completion (欠測補完) of 30-minute values, vectorised with numpy.

Two methods, chosen per gap (docs/completion.md):

- `bracketed`: cumulative readings before and after the gap (the meter's register totals at
  two slot boundaries, or a day total) fix the gap's total exactly:
      gap total = (reading after - reading before) - sum of the values delivered in between
  Only its split across the missing slots is estimated: proportional to the profile shape,
  floored, and the units still missing handed one each to the largest remainders (ties:
  earlier slot first), so the split adds up exactly to the total. A profile of all zeros
  splits evenly.
- `profile`: no bracketing readings: each missing slot is the mean of the same slot over the
  previous `profile_days` days that have a value, rounded half up (toward +inf).

Slots with neither stay unfilled. Every completed value carries its method; a measured value
that arrives later (backfill) replaces it (host_tools.tso.values).
"""
import numpy as np

METHOD_MEASURED = "measured"
METHOD_BRACKETED = "bracketed"
METHOD_PROFILE = "profile"
METHOD_NONE = ""
PROFILE_DAYS = 7  # implementation choice (docs/completion.md), not a regulation

_LIMIT = 1 << 62


def split_total(total, weights, seg):
    """Split each segment's total over its slots in proportion to weights.

    total: int64 (m,) >= 0; weights: int64 (k,) >= 0; seg: int64 (k,) segment of each slot,
    0..m-1, any order. Returns int64 (k,) with per-segment sums == total exactly.
    """
    total = np.asarray(total, np.int64)
    w = np.asarray(weights, np.int64).copy()
    seg = np.asarray(seg, np.int64)
    m, k = len(total), len(seg)
    if k == 0:
        return np.zeros(0, np.int64)
    if (total < 0).any() or (w < 0).any():
        raise ValueError("split_total needs non-negative totals and weights")
    wsum = np.bincount(seg, weights=w, minlength=m)  # float64: exact below 2**53
    zero = wsum[seg] == 0
    w[zero] = 1
    wsum = np.zeros(m, np.int64)
    np.add.at(wsum, seg, w)
    if int(total.max(initial=0)) * int(w.max(initial=0)) >= _LIMIT:
        raise ValueError("total x weight exceeds the int64 range")
    num = total[seg] * w
    den = wsum[seg]
    floor = num // den
    rem = num - floor * den
    got = np.zeros(m, np.int64)
    np.add.at(got, seg, floor)
    short = total - got
    # rank within each segment by remainder (desc), then position (asc); compare rem/den
    # across one segment only, where den is common
    order = np.lexsort((np.arange(k), -rem, seg))
    seg_sorted = seg[order]
    starts = np.searchsorted(seg_sorted, np.arange(m))
    rank = np.empty(k, np.int64)
    rank[order] = np.arange(k) - starts[seg_sorted]
    return floor + (rank < short[seg])


def split_total_loop(total, weights, seg):
    """Plain-Python oracle of split_total."""
    out = [0] * len(seg)
    for j, t in enumerate(total):
        idx = [i for i in range(len(seg)) if seg[i] == j]
        if not idx:
            continue
        w = [int(weights[i]) for i in idx]
        if sum(w) == 0:
            w = [1] * len(idx)
        W = sum(w)
        fl = [int(t) * x // W for x in w]
        rem = [int(t) * x - f * W for x, f in zip(w, fl)]
        short = int(t) - sum(fl)
        ranked = sorted(range(len(idx)), key=lambda a: (-rem[a], a))
        for a in range(len(idx)):
            out[idx[a]] = fl[a]
        for a in ranked[:short]:
            out[idx[a]] += 1
    return out


def profile_mean(values, present, days=PROFILE_DAYS):
    """Mean of the same slot over the previous `days` rows-days that have a value.

    values: int64 (rows, D, 48); present: bool (rows, D, 48). Returns (mean int64, count)
    of the same shape; count 0 where no earlier value exists (mean 0 there).
    """
    values = np.asarray(values, np.int64)
    present = np.asarray(present, bool)
    total = np.zeros(values.shape, np.int64)
    count = np.zeros(values.shape, np.int64)
    v = np.where(present, values, 0)
    for k in range(1, days + 1):
        if k >= values.shape[1]:
            break
        total[:, k:] += v[:, :-k]
        count[:, k:] += present[:, :-k]
    mean = (2 * total + np.maximum(count, 1)) // (2 * np.maximum(count, 1))
    return np.where(count > 0, mean, 0), count


# -- the TSO data model: whole (day, resource) rows missing --------------------------------
class Completed:
    """values: int64 (days, n, 48) completed; present: bool (days, n) after completion;
    method: object (days, n) per filled row ('measured', 'bracketed', 'profile', '')."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def complete_rows(values, present, day_totals=None, days=PROFILE_DAYS, out=None):
    """Complete missing (day, resource) rows of one series (TsoData.device or .receiving).

    values: int64 (D, n, 48) signed Wh; present: bool (D, n); day_totals: optional
    (int64 (D, n) total Wh of the day, bool (D, n) known) from a cumulative reading. A
    missing row with a known total is split from it (bracketed; the split follows the
    profile's shape on the side of the total's sign), otherwise taken from the profile.
    Only missing rows are written: `out` (default a copy of values) may be `values` itself,
    which completes in place and saves copying the whole history.
    """
    values = np.asarray(values, np.int64)
    present = np.asarray(present, bool)
    out = values.copy() if out is None else out
    method = np.full(present.shape, METHOD_NONE, object)
    method[present] = METHOD_MEASURED
    # gather only what the missing rows read: (missing, days, 48), not the whole history
    md, mr = np.nonzero(~present)
    total = np.zeros((len(md), values.shape[2]), np.int64)
    count = np.zeros(len(md), np.int64)
    for k in range(1, days + 1):
        dd = md - k
        ok = dd >= 0
        if not ok.any():
            break
        sel = np.nonzero(ok)[0]
        sel = sel[present[dd[sel], mr[sel]]]
        total[sel] += values[dd[sel], mr[sel]]
        count[sel] += 1
    c = np.maximum(count, 1)[:, None]
    prof = (2 * total + c) // (2 * c)
    has = count > 0
    out[md[has], mr[has]] = prof[has]
    method[md[has], mr[has]] = METHOD_PROFILE
    if day_totals is not None:
        tot, known = day_totals
        kn = np.asarray(known, bool)[md, mr]
        if kn.any():
            t = np.asarray(tot, np.int64)[md[kn], mr[kn]]  # (m,)
            shape = np.where(has[kn, None], prof[kn], 0)
            sign = np.where(t < 0, -1, 1)
            w = np.maximum(shape * sign[:, None], 0)
            seg = np.repeat(np.arange(len(t)), values.shape[2])
            parts = split_total(np.abs(t), w.reshape(-1), seg).reshape(len(t), -1)
            out[md[kn], mr[kn]] = parts * sign[:, None]
            method[md[kn], mr[kn]] = METHOD_BRACKETED
    return Completed(values=out, present=method != METHOD_NONE, method=method)


def complete_rows_loop(values, present, day_totals=None, days=PROFILE_DAYS):
    """Per-resource Python loop doing what complete_rows does (oracle and benchmark)."""
    values = np.asarray(values, np.int64)
    nd, n, _ = values.shape
    out = values.copy()
    method = np.full((nd, n), METHOD_NONE, object)
    for r in range(n):
        for d in range(nd):
            if present[d, r]:
                method[d, r] = METHOD_MEASURED
                continue
            prev = [dd for dd in range(max(0, d - days), d) if present[dd, r]]
            prof = [0] * 48
            if prev:
                for s in range(48):
                    t = sum(int(values[dd, r, s]) for dd in prev)
                    prof[s] = (2 * t + len(prev)) // (2 * len(prev))
                out[d, r] = prof
                method[d, r] = METHOD_PROFILE
            if day_totals is not None and day_totals[1][d, r]:
                t = int(day_totals[0][d, r])
                sign = -1 if t < 0 else 1
                w = [max(x * sign, 0) for x in prof]
                out[d, r] = [sign * x for x in split_total_loop([abs(t)], w, [0] * 48)]
                method[d, r] = METHOD_BRACKETED
    return Completed(values=out, present=method != METHOD_NONE, method=method)


# -- the collector: single slots missing, register readings bracket gaps -------------------
def bracket_gaps(values, present, reads, profile):
    """Exact gap totals from register readings, split by profile.

    values, present, profile: (devices, S) int64/bool/int64 >= 0 for one direction;
    reads: list per device of [(slot index into the S window, cumulative Wh)], readings at
    the start of that slot, ascending. Returns (filled values (dev, S), bracketed mask,
    problems [(device row, from slot, to slot, text)]).
    """
    out = np.where(present, values, 0)
    mask = np.zeros(present.shape, bool)
    problems = []
    segs_t, segs_rows, segs_cols = [], [], []
    for row, rr in enumerate(reads):
        for (a, ra), (b, rb) in zip(rr, rr[1:]):
            a0, b0 = max(a, 0), min(b, present.shape[1])
            if b0 <= a0 or a < 0 or b > present.shape[1]:
                continue  # a window that does not hold the whole interval cannot bracket
            gap = np.nonzero(~present[row, a0:b0])[0] + a0
            total = (rb - ra) - int(out[row, a0:b0].sum())
            if total < 0:
                problems.append((row, a, b, "readings below the delivered values "
                                 "(register reset or bad reading): %d Wh" % total))
                continue
            if not len(gap):
                if total:
                    problems.append((row, a, b, "no gap but readings differ from the "
                                     "delivered values by %d Wh" % total))
                continue
            segs_t.append(total)
            segs_rows.append(np.full(len(gap), row))
            segs_cols.append(gap)
    if segs_t:
        rows = np.concatenate(segs_rows)
        cols = np.concatenate(segs_cols)
        seg = np.repeat(np.arange(len(segs_t)), [len(c) for c in segs_cols])
        out[rows, cols] = split_total(np.array(segs_t, np.int64),
                                      np.maximum(profile[rows, cols], 0), seg)
        mask[rows, cols] = True
    return out, mask, problems
