"""Delivery-delay report: did each 30-minute value reach the head-end in time for the
preliminary value (速報値)?

Delay of a slot = arrival time of its stored value - slot end, where slot end is the edge
epoch 2020-01-01T00:00+09:00 + (slot + 1) * 1800 s (edge/timebase.py). Days are JST days
(the edge epoch is a JST midnight, so day = slot // 48).
"""
import collections
import datetime

from edge.timebase import SLOTS_PER_DAY
from host_tools.collector.store import slot_end_unix

# The TSO's system produces a preliminary 30-minute value within 60 minutes of the slot's
# end (seed 000 論点② "TSO system provides": 速報値 within 60 minutes; as read 2026-11;
# docs/glossary.md#seed-documents).
# Configuration: pass deadline_s to override.
PRELIMINARY_DEADLINE_S = 3600

EDGE_DATE0 = datetime.date(2020, 1, 1)

DayTimeliness = collections.namedtuple(
    "DayTimeliness",
    "device_id date due on_time late missing pending on_time_share late_share "
    "missing_share max_delay_s",
)


def day_date(day):
    return EDGE_DATE0 + datetime.timedelta(days=day)


def date_day(date):
    return (date - EDGE_DATE0).days


def report(store, now_unix, device_id=None, day_from=None, day_to=None,
           deadline_s=PRELIMINARY_DEADLINE_S):
    """Per device and JST day: slots due, on time, late, missing, and the max delay.

    A slot is `due` once its deadline has passed at now_unix; due slots are on_time (stored
    within the deadline), late (stored after it) or missing; slots not yet due are
    `pending`. Shares are of `due` and sum to 1. Days default to the first day with data
    per device through the last day with a due slot, so a device that stopped reporting keeps
    showing up with its missing slots. max_delay_s is None on a day without values.
    """
    # Highest slot whose deadline has passed: slot_end + deadline <= now.
    last_due = _last_due_slot(now_unix, deadline_s)
    per_dev = collections.defaultdict(dict)
    for dev, day, on_time, max_delay, n_due in store.delivery_by_day(
            last_due, deadline_s * 1000, SLOTS_PER_DAY, device_id,
            None if day_from is None else day_from * SLOTS_PER_DAY,
            None if day_to is None else (day_to + 1) * SLOTS_PER_DAY):
        per_dev[dev][day] = (on_time, max_delay, n_due)
    if day_from is not None:
        # devices silent through the whole range still exist (they have values before it)
        for dev in [device_id] if device_id is not None else store.devices():
            per_dev.setdefault(dev, {})
    if device_id is not None and device_id not in per_dev:
        per_dev[device_id] = {}
    last_day = last_due // SLOTS_PER_DAY
    out = []
    for dev in sorted(per_dev):
        days = per_dev[dev]
        # from the device's first day with data (a device not started yet is not missing);
        # a device with no data in the range starts at day_from
        lo = min(days) if days else day_from
        if day_from is not None and lo is not None:
            lo = max(lo, day_from)
        hi = day_to if day_to is not None else (max(max(days), last_day) if days else last_day)
        if lo is None or hi is None:
            continue
        for day in range(lo, hi + 1):
            on_time, max_delay, n_due = days.get(day, (0, None, 0))
            due = max(0, min(SLOTS_PER_DAY, last_due - day * SLOTS_PER_DAY + 1))
            missing = due - n_due
            pending = SLOTS_PER_DAY - due
            late = n_due - on_time
            out.append(DayTimeliness(
                dev, day_date(day).isoformat(), due, on_time, late, missing, pending,
                on_time / due if due else None, late / due if due else None,
                missing / due if due else None,
                None if max_delay is None else max_delay / 1000.0,
            ))
    return out


def _last_due_slot(now_unix, deadline_s):
    # slot_end_unix(s) + deadline <= now  <=>  s <= (now - deadline - epoch) // 1800 - 1
    s = int((now_unix - deadline_s - slot_end_unix(-1)) // 1800) - 1
    return s


def format_csv(rows):
    lines = ["device_id,date,due,on_time,late,missing,pending,on_time_share,late_share,"
             "missing_share,max_delay_s"]
    for r in rows:
        lines.append(",".join("" if v is None else ("%.4f" % v if isinstance(v, float) else str(v))
                              for v in r))
    return "\n".join(lines) + "\n"
