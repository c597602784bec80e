"""Preliminary (速報値) and confirmed (確報値) value sets over the collector's SQLite store,
their timeliness, and retention (データ保存期間).

Tables of the collector database (store.py holds them under its schema version;
docs/completion.md has the schema), read and written through the store's API:
- `register_reads`: cumulative register totals (device, slot boundary), e.g. from a remote
  manual read (遠隔手動); they bracket gaps for completion;
- `value_sets`: one row per (device, slot, kind) with kind 1 = preliminary, 2 = confirmed,
  the value, its method (measured / bracketed / profile), an estimated flag, when it was made
  and its revision.

`update(store, now_unix)` is meant to run every 30 minutes: every slot that has ended gets a
preliminary value as soon as the collector has it, or `estimate_after_s` after its end if it
can be estimated (it is never changed afterwards: it is what was published); once a slot is `backfill_s` old it gets a confirmed
value; a confirmed value that is estimated is replaced (revision + 1) when a better one
becomes available: a measured value arriving by backfill, or a bracketed one replacing a
profile estimate.
"""
import collections
import datetime

import numpy as np

from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS, SLOTS_PER_DAY
from edge.flags import ESTIMATED
from host_tools.collector import timeliness as g_timeliness
from host_tools.collector.store import s64
from host_tools.tso import completion as comp

# Seed 000 論点② (TSO system scope, read 2026-11; docs/glossary.md#seed-documents):
# preliminary 30-minute value within 60 minutes of the slot's end, and 3 years of data
# retention.
PRELIMINARY_DEADLINE_S = g_timeliness.PRELIMINARY_DEADLINE_S
RETENTION_YEARS = 3
# Backfill window before values are confirmed: no figure in the seeds; 72 h is this
# implementation's default (devices resend from their store-and-forward queue after an
# outage of up to days). Configure with `smeter complete --backfill`.
BACKFILL_S = 72 * 3600
# A missing value is estimated for the preliminary set only this long after its slot's end,
# so a value still in flight is not pre-empted; with runs every 30 minutes the estimate is
# still out within the 60-minute deadline. Implementation choice.
ESTIMATE_AFTER_S = 1800

PRELIMINARY = 1
CONFIRMED = 2
_RANK = {comp.METHOD_PROFILE: 1, comp.METHOD_BRACKETED: 2, comp.METHOD_MEASURED: 3}

def last_ended_slot(now_unix):
    """Highest slot whose end is <= now_unix."""
    return (int(now_unix) - EDGE_EPOCH_UNIX) // SLOT_SECONDS - 1


def add_reads(store, rows, source="manual"):
    """rows: (device_id, slot, import_total_wh, export_total_wh); a reading at the start of
    `slot` (a slot boundary). Replaces an earlier reading of the same boundary."""
    store.add_register_reads(rows, source)


class Estimate:
    """Current best values for devices x [s0, s1]: import, export (int64), method (str),
    problems [(device_id, from slot, to slot, direction, text)]."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def estimate(store, s0, s1, devices=None, profile_days=comp.PROFILE_DAYS):
    """Measured, bracketed or profile values for every device and slot s0..s1 (inclusive).

    Reads the window [s0, s1] per device, and for the missing slots only the same slot on the
    previous `profile_days` days; register readings bracket a gap when both lie in
    [s0, s1 + 1]."""
    devices = sorted(store.devices() if devices is None else devices)
    n, width = len(devices), s1 - s0 + 1
    shape = (n, width)
    imp = np.zeros(shape, np.int64)
    exp = np.zeros(shape, np.int64)
    present = np.zeros(shape, bool)
    dev_est = np.zeros(shape, bool)  # measured, but the device flagged it `estimated`
    keys = np.array([s64(d) for d in devices], np.int64)
    order = np.argsort(keys)
    skeys = keys[order]

    def rows_of(ids):
        pos = np.minimum(np.searchsorted(skeys, ids), max(n - 1, 0))
        return order[pos], skeys[pos] == ids

    if n:
        rows = store.values_of(keys, s0, s1, ESTIMATED)
        if rows:
            a = np.array(rows, np.int64)  # device ids as stored (two's complement)
            dev, ok = rows_of(a[:, 0])
            cols = a[:, 1] - s0
            imp[dev[ok], cols[ok]] = a[ok, 2]
            exp[dev[ok], cols[ok]] = a[ok, 3]
            present[dev[ok], cols[ok]] = True
            dev_est[dev[ok], cols[ok]] = a[ok, 4] != 0
    # profile: the same slot on earlier days, fetched for the missing slots only
    mr, mc = np.nonzero(~present)
    psum = np.zeros((len(mr), 2), np.int64)
    pcnt = np.zeros(len(mr), np.int64)
    if len(mr):
        ks = np.arange(1, profile_days + 1)
        want_slot = (s0 + mc)[:, None] - SLOTS_PER_DAY * ks[None, :]
        want = np.stack([np.repeat(keys[mr], len(ks)), want_slot.reshape(-1),
                         np.repeat(np.arange(len(mr)), len(ks))], axis=1)
        got = store.values_at(want.tolist())
        if got:
            g = np.array(got, np.int64)
            np.add.at(psum, g[:, 0], g[:, 1:])
            np.add.at(pcnt, g[:, 0], 1)
    c = np.maximum(pcnt, 1)[:, None]
    pmean = (2 * psum + c) // (2 * c)
    reads = [[] for _ in devices]
    rr = store.register_reads(s0, s1 + 1)
    if rr and n:
        ra = np.array(rr, np.int64)
        dev, ok = rows_of(ra[:, 0])
        for r, ok_, x in zip(dev.tolist(), ok.tolist(), rr):
            if ok_:
                reads[r].append((x[1] - s0, x[2], x[3]))
    method = np.full(shape, comp.METHOD_NONE, object)
    method[present] = comp.METHOD_MEASURED
    problems = []
    out = []
    has = np.zeros(shape, bool)
    has[mr, mc] = pcnt > 0
    for k, arr in ((1, imp), (2, exp)):
        prof = np.zeros(shape, np.int64)
        prof[mr, mc] = pmean[:, k - 1]
        br, mask, probs = comp.bracket_gaps(arr, present, [[(x[0], x[k]) for x in r]
                                                           for r in reads], prof)
        for row, a, b, text in probs:
            problems.append((devices[row], a + s0, b + s0, "import" if k == 1 else "export",
                             text))
        val = np.where(present, arr, 0)
        fill = ~present & has
        val[fill] = prof[fill]
        val[mask] = br[mask]
        out.append((val, mask, fill))
    (vi, mi, fi), (ve, me, fe) = out
    # both directions share one method per slot: bracketed needs both bracketed, else a
    # bracketed direction paired with a profile one counts as profile (the weaker claim)
    bracketed = mi & me
    profiled = ~present & ~bracketed & ((mi | fi) & (me | fe))
    method[bracketed] = comp.METHOD_BRACKETED
    method[profiled] = comp.METHOD_PROFILE
    return Estimate(devices=devices, s0=s0, s1=s1, import_wh=vi, export_wh=ve, method=method,
                    device_estimated=dev_est & present, problems=problems)


def unfilled_mask(est, last_due=None):
    """Slots of the window with no value and no estimate, up to `last_due` (the last slot
    whose preliminary deadline has passed), except the whole days before a device's first
    measured value in the window: a device that had not started yet is not missing. A device
    with no measured value in the window had values before it (it is in the store): every
    slot of it counts. The timeliness report (collector.timeliness.report) counts the same
    days per device, so its `unfilled` column sums to this."""
    none = est.method == comp.METHOD_NONE
    measured = est.method == comp.METHOD_MEASURED
    n, width = none.shape
    first = np.where(measured.any(axis=1), measured.argmax(axis=1), 0)
    lead_end = (est.s0 + first) // SLOTS_PER_DAY * SLOTS_PER_DAY - est.s0  # whole days
    cols = np.arange(width)[None, :]
    mask = none & (cols >= lead_end[:, None])
    if last_due is not None:
        mask &= cols <= last_due - est.s0
    return mask


def update(store, now_unix, since_slot=None, backfill_s=BACKFILL_S,
           profile_days=comp.PROFILE_DAYS, estimate_after_s=ESTIMATE_AFTER_S,
           deadline_s=PRELIMINARY_DEADLINE_S):
    """Issue preliminary and confirmed values due at now_unix; returns a summary dict
    (`since_slot`: the window's first slot; `unfilled`: due slots of it without any value)."""
    s1 = last_ended_slot(now_unix)
    if since_slot is None:
        # the backfill window and two days before it: every slot crosses into the confirmed
        # set inside this window when runs come every 30 minutes; never before the store's
        # first day (nothing was measured earlier: those slots are not missing)
        since_slot = (last_ended_slot(now_unix - backfill_s) // SLOTS_PER_DAY - 2) \
            * SLOTS_PER_DAY
        first = store.first_slot()
        if first is not None:
            since_slot = max(since_slot, first // SLOTS_PER_DAY * SLOTS_PER_DAY)
    if since_slot > s1:
        return {"devices": 0, "preliminary": 0, "confirmed": 0, "revised": 0,
                "unfilled": 0, "waiting": 0, "problems": [], "since_slot": since_slot}
    est = estimate(store, since_slot, s1, profile_days=profile_days)
    now = int(now_unix)
    ready = est.method != comp.METHOD_NONE
    wait_from = last_ended_slot(now - estimate_after_s) + 1 - est.s0
    if wait_from < ready.shape[1]:
        ready[:, max(wait_from, 0):] &= est.method[:, max(wait_from, 0):] == comp.METHOD_MEASURED
    keys = np.array([s64(d) for d in est.devices], np.int64)
    shape = ready.shape
    # what the sets already hold in the window, fetched once: insert only what is new
    has_pre = np.zeros(shape, bool)
    has_conf = np.zeros(shape, bool)
    conf_rank = np.zeros(shape, np.int64)
    if len(keys):
        held = store.value_set_kinds(keys, est.s0, est.s1)
        if held:
            order = np.argsort(keys)
            dev_ids = np.array([h[0] for h in held], np.int64)
            r = order[np.searchsorted(keys[order], dev_ids)]
            c = np.array([h[1] for h in held], np.int64) - est.s0
            kind = np.array([h[2] for h in held], np.int64)
            pre, conf = kind == PRELIMINARY, kind == CONFIRMED
            has_pre[r[pre], c[pre]] = True
            has_conf[r[conf], c[conf]] = True
            conf_rank[r[conf], c[conf]] = [_RANK.get(h[3], 0) for h, k in zip(held, conf) if k]
    rank = np.zeros(shape, np.int64)
    for m, k in _RANK.items():
        rank[est.method == m] = k
    confirm_to = last_ended_slot(now - backfill_s)
    confirmable = np.zeros(shape, bool)
    confirmable[:, :max(0, min(shape[1], confirm_to - est.s0 + 1))] = True
    new_pre = ready & ~has_pre
    new_conf = ready & confirmable & ~has_conf
    better = ready & confirmable & has_conf & (rank > conf_rank)

    def rows_for(mask):
        r, c = np.nonzero(mask)
        meth = est.method[r, c]
        return list(zip(keys[r].tolist(), (est.s0 + c).tolist(),
                        est.import_wh[r, c].tolist(), est.export_wh[r, c].tolist(),
                        meth.tolist(), ((meth != comp.METHOD_MEASURED)
                                        | est.device_estimated[r, c]).astype(int).tolist()))

    store.write_value_sets(now, {PRELIMINARY: rows_for(new_pre), CONFIRMED: rows_for(new_conf)},
                           rows_for(better), CONFIRMED)
    return {"devices": len(est.devices), "preliminary": int(new_pre.sum()),
            "confirmed": int(new_conf.sum()), "revised": int(better.sum()),
            "unfilled": int(unfilled_mask(
                est, g_timeliness._last_due_slot(now_unix, deadline_s)).sum()),
            "since_slot": est.s0,
            "waiting": int((~ready & (est.method != comp.METHOD_NONE)).sum()),
            "problems": est.problems}


SetValue = collections.namedtuple(
    "SetValue", "device_id slot kind import_wh export_wh method estimated made_unix revision")


def value_set(store, kind, device_id=None, slot_from=None, slot_to=None):
    """Rows of one value set (PRELIMINARY or CONFIRMED), ascending (device, slot)."""
    return [SetValue._make(r) for r in store.value_set(kind, device_id, slot_from, slot_to)]


# -- timeliness ------------------------------------------------------------------------------
DayReport = collections.namedtuple(
    "DayReport", "date due on_time late estimated unfilled preliminary_on_time "
    "on_time_share late_share estimated_share preliminary_on_time_share")


def timeliness(store, now_unix, deadline_s=PRELIMINARY_DEADLINE_S, day_from=None):
    """Per JST day over all devices, of the due slots (deadline passed): values that reached
    the collector on time / late (collector.timeliness), slots never delivered that carry an
    estimated value / no value at all (on_time + late + estimated + unfilled = due), and how
    many preliminary values were issued within the deadline of their slot's end. Days from
    `day_from` (default: each device's first day) through the last day with a due slot."""
    per_day = collections.OrderedDict()
    for r in g_timeliness.report(store, now_unix, deadline_s=deadline_s, day_from=day_from):
        acc = per_day.setdefault(r.date, [0, 0, 0])
        acc[0] += r.due
        acc[1] += r.on_time
        acc[2] += r.late
    last_due = g_timeliness._last_due_slot(now_unix, deadline_s)
    by_day = {}
    lo = day_from * SLOTS_PER_DAY if day_from is not None else -(2**62)
    for day, n_est, n_ok in store.set_delivery_by_day(PRELIMINARY, deadline_s, last_due, lo,
                                                       SLOTS_PER_DAY):
        by_day[g_timeliness.day_date(day).isoformat()] = (n_est or 0, n_ok or 0)
    out = []
    for date, (due, on_time, late) in per_day.items():
        n_est, n_ok = by_day.get(date, (0, 0))
        sh = (lambda x: x / due if due else None)
        out.append(DayReport(date, due, on_time, late, n_est, due - on_time - late - n_est,
                             n_ok, sh(on_time), sh(late), sh(n_est), sh(n_ok)))
    return out


def format_timeliness(rows):
    lines = ["date,due,on_time,late,estimated,unfilled,preliminary_on_time,on_time_share,"
             "late_share,estimated_share,preliminary_on_time_share"]
    for r in rows:
        lines.append(",".join("" if v is None else ("%.4f" % v if isinstance(v, float)
                                                    else str(v)) for v in r))
    return "\n".join(lines) + "\n"


# -- retention ---------------------------------------------------------------------------------
def parse_age(text):
    """'3y', '36m' or '1095d' -> (years, months, days)."""
    text = str(text).strip().lower()
    if len(text) < 2 or not text[:-1].isdigit() or text[-1] not in "ymd":
        raise ValueError("age must look like 3y, 36m or 1095d, not %r" % text)
    n = int(text[:-1])
    return {"y": (n, 0, 0), "m": (0, n, 0), "d": (0, 0, n)}[text[-1]]


def cutoff_day(now_unix, age):
    """Edge day number (JST) before which values are older than `age` at now_unix.

    Calendar arithmetic on the JST date: 3y on 2029-03-01 keeps 2026-03-01 onward; a
    29 February that does not exist in the target year becomes 28 February."""
    years, months, days = age
    today = g_timeliness.day_date((int(now_unix) - EDGE_EPOCH_UNIX) // 86400)
    m = today.month - 1 - months - 12 * years
    y, m = today.year + m // 12, m % 12 + 1
    d = today.day
    while True:
        try:
            cut = datetime.date(y, m, d)
            break
        except ValueError:
            d -= 1
    cut -= datetime.timedelta(days=days)
    return g_timeliness.date_day(cut)


def purge(store, now_unix, age=(RETENTION_YEARS, 0, 0), dry_run=False):
    """Delete everything older than `age` (slot values, value sets, register reads by slot;
    frames and rejections by arrival). Returns {table: rows} counted (dry run) or deleted,
    and the cutoff date."""
    day = cutoff_day(now_unix, age)
    counts = store.purge_before(day * SLOTS_PER_DAY, (EDGE_EPOCH_UNIX + day * 86400) * 1000,
                                dry_run)
    return g_timeliness.day_date(day).isoformat(), counts
