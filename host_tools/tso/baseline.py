"""Baselines (基準値): what a dispatched resource would have done without the dispatch.

Three methods, chosen per group (groups.baseline_method):
- `plan`: the device-point plan the aggregator submitted (基準値計画), in the pattern's plan
  basis (sending end 送端 or generation end 発端);
- `high4of5`: the ERAB guideline standard "High 4 of 5 with same-day adjustment"
  (当日調整あり), parameters in hw/tso/rules.json (baseline.high4of5);
- `prev_day`: the same slot on the previous calendar day.

All work on integer Wh and return integer Wh, rounded half up (toward +inf) once, from the
exact rational mean: baseline = floor((2*S + c) / (2*c)) for a sum S over c values.
Values are signed as in the data model (+ delivered into the site / exported, - consumed);
High 4 of 5 ranks days by consumption, i.e. by the negated value summed over the window.
"""
import numpy as np

from host_tools.tso.errors import Problem

DAY = np.timedelta64(1, "D")


def round_div(total, count):
    """Exact integer total/count rounded half up; count > 0 (arrays broadcast)."""
    return (2 * np.asarray(total, np.int64) + count) // (2 * np.asarray(count, np.int64))


def is_holiday(dates, holidays=()):
    """Saturdays, Sundays and the given holidays (祝日) count as holiday-type days."""
    dates = np.asarray(dates, "datetime64[D]")
    weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday: Monday = 0
    hol = np.isin(dates, np.asarray(list(holidays), "datetime64[D]"))
    return (weekday >= 5) | hol


_CALENDARS = {}


def holidays_for(cfg, dates):
    """Public holidays (国民の祝日, 振替休日, 国民の休日) of the years `dates` span, from the
    maintained calendar package `holidays` (country `holiday_calendar`, "JP"; null for none),
    plus the configured extra days `holidays` (e.g. a TSO's own non-business days)."""
    dates = np.asarray(dates, "datetime64[D]")
    extra = [np.datetime64(d, "D") for d in cfg.get("holidays", ())]
    country = cfg.get("holiday_calendar")
    if not country or not len(dates):
        return extra
    years = tuple(range(int(str(dates.min())[:4]), int(str(dates.max())[:4]) + 1))
    key = (country, years)
    if key not in _CALENDARS:
        import holidays  # pinned in pyproject; imported here so edge-free tools stay light
        _CALENDARS[key] = [np.datetime64(d, "D") for d in
                           holidays.country_holidays(country, years=years)]
    return _CALENDARS[key] + extra


def like_days(days, target, excluded, cfg, limit=True):
    """Indices of the like days for `target` (index into days), most recent first.

    Same day type as the target (weekday vs Saturday/Sunday/public holiday, see
    holidays_for), strictly before it, within `lookback_days`, not an excluded (DR) day; at
    most `like_days` (or `holiday_like_days`) of them, or every such day when not `limit`
    (the candidates High 4 of 5 walks back through when it replaces low days).
    """
    holiday = is_holiday(days, holidays_for(cfg, days))
    want = cfg["holiday_like_days"] if holiday[target] else cfg["like_days"]
    out = []
    for j in range(target - 1, -1, -1):
        if days[target] - days[j] > cfg["lookback_days"] * DAY:
            break
        if holiday[j] == holiday[target] and not excluded[j]:
            out.append(j)
            if limit and len(out) == want:
                break
    return out


def high4of5(series, present, days, target, window, excluded, cfg, names=None, info=None):
    """ERAB "High 4 of 5" with same-day adjustment for resources × 48 slots.

    series: int64 (days, n, 48) values at the metering point; present: bool (days, n);
    target: day index; window: (start, end) slot indices of the event, end exclusive;
    excluded: bool per day, or per (day, resource): the DR days (DR実施日) of each resource.
    Returns (baseline (n, 48), problems).

    Steps, per resource: the candidates are the days of the target's type before it within
    `lookback_days`, not excluded for that resource, most recent first; the first
    `like_days` (holiday: `holiday_like_days`) of them are the like days. A candidate whose
    window consumption is below `low_day_ratio_pct` % of those like days' mean (only when
    that mean is positive) is dropped and the next older candidate taken instead, until
    `like_days` days are found or the candidates run out. Of those, keep the `keep_days`
    (holiday: `holiday_keep_days`) with the highest window consumption, ties to the more
    recent day; average them per slot; add the mean difference actual - baseline over the
    slots from `adjust_start_hours_before` to `adjust_end_hours_before` hours before the
    event start (on the event day; slots before 00:00 are not used; no cap). The result is
    rounded once, half up. `info`, a dict if given, gets "complete": bool (n,), True where
    the resource found all its like days among the days passed (older days cannot change its
    result).
    """
    n = series.shape[1]
    problems = []
    holiday = is_holiday(days[target:target + 1], holidays_for(cfg, days[target:target + 1]))[0]
    want = cfg["holiday_like_days"] if holiday else cfg["like_days"]
    keep = cfg["holiday_keep_days"] if holiday else cfg["keep_days"]
    excluded = np.asarray(excluded, bool)
    per_day = excluded if excluded.ndim == 1 else np.zeros(len(days), bool)
    cand = like_days(days, target, per_day, cfg, limit=False)
    valid = np.ones((len(cand), n), bool)
    if excluded.ndim == 2 and len(cand):
        valid &= ~excluded[cand]
    init = valid & (np.cumsum(valid, axis=0) <= want)  # (K, n): the like days
    k0 = init.sum(axis=0)
    short = k0 < keep
    if info is not None:
        info["complete"] = np.zeros(n, bool)
    if short.any():
        problems.append(Problem("baseline_history", "fewer than %d like days before %s for "
                                "High 4 of 5" % (keep, days[target]),
                                list(np.asarray(names)[short]) if names is not None
                                else np.nonzero(short)[0].tolist()))
        return np.zeros((n, series.shape[2]), np.int64), problems
    hist = series[cand]  # (K, n, 48), most recent first
    a, b = window
    cons = -hist[:, :, a:b].sum(axis=2)  # (K, n) window consumption
    total = (cons * init).sum(axis=0)
    low = valid & (total > 0)[None, :] & (cons * 100 * k0[None, :]
                                           < cfg["low_day_ratio_pct"] * total[None, :])
    ok = valid & ~low
    used = ok & (np.cumsum(ok, axis=0) <= want)  # low days replaced by older candidates
    if info is not None:
        info["complete"] = used.sum(axis=0) == want
    missing = (used & ~present[cand]).any(axis=0)
    if missing.any():
        problems.append(Problem("baseline_history", "resources missing like-day values "
                                "before %s" % days[target],
                                list(np.asarray(names)[missing]) if names is not None
                                else np.nonzero(missing)[0].tolist()))
    # rank: highest consumption first; stable on most-recent-first order breaks ties
    k = len(cand)
    key = np.where(used, -cons, np.iinfo(np.int64).max)
    order = np.argsort(key, axis=0, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(k)[:, None].repeat(n, axis=1), axis=0)
    chosen = (rank < keep) & used  # (K, n)
    count = chosen.sum(axis=0).astype(np.int64)  # >= 1: the top like day is never "low"
    sums = (hist * chosen[:, :, None]).sum(axis=0)  # (n, 48) exact int64
    lo = max(0, a - 2 * cfg["adjust_start_hours_before"])
    hi = max(0, a - 2 * cfg["adjust_end_hours_before"])
    m = hi - lo
    if m <= 0:
        return round_div(sums, count[:, None]), problems
    actual = series[target, :, lo:hi].sum(axis=1)  # (n,)
    base_adj = sums[:, lo:hi].sum(axis=1)  # (n,), in units of 1/count
    # adjusted = S/c + (c*A - S_adj)/(c*m) = (m*S + c*A - S_adj) / (c*m)
    num = m * sums + (count * actual - base_adj)[:, None]
    return round_div(num, (count * m)[:, None]), problems


def prev_day(series, present, days, target, names=None):
    """The same slot on the previous calendar day."""
    n = series.shape[1]
    if target == 0 or days[target] - days[target - 1] != DAY:
        return np.zeros((n, series.shape[2]), np.int64), [Problem(
            "baseline_history", "no values for the day before", [str(days[target])])]
    problems = []
    missing = ~present[target - 1]
    if missing.any():
        problems.append(Problem("baseline_history", "resources missing values on %s"
                                % days[target - 1],
                                list(np.asarray(names)[missing]) if names is not None
                                else np.nonzero(missing)[0].tolist()))
    return series[target - 1].copy(), problems
