"""JST half-hour slots (30分コマ): numbering and calendar conversion.

The absolute slot number is edge_seconds // 1800 (edge/timebase.py: seconds since
2020-01-01T00:00+09:00). The edge epoch is a JST midnight and JST has no daylight saving,
so day = slot // 48 and slot of day = slot % 48 + 1 (00:00-00:30 JST is slot 1). The
absolute number fits a small int for centuries and is what travels on the wire; the
calendar form is only for people and reports.
"""
from edge.compat import const
from edge.timebase import SLOT_SECONDS, SLOTS_PER_DAY



_SLOT_S = const(1800)
_PER_DAY = const(48)
# Days from 1970-01-01 to the edge epoch's date, 2020-01-01.
_EPOCH_DAYS_1970 = const(18262)


def slot_of(edge_s):
    """Absolute slot number containing edge second edge_s."""
    return edge_s // _SLOT_S


def slot_start(slot):
    """Edge second at which absolute slot `slot` starts."""
    return slot * _SLOT_S


def slot_of_day(slot):
    """1..48 within its JST day."""
    return slot % _PER_DAY + 1


def day_of(slot):
    """JST day number since 2020-01-01 (day 0)."""
    return slot // _PER_DAY


def slot_from_day(day, slot_of_day_1):
    """Absolute slot number of slot 1..48 of JST day `day` (the caller checks the range)."""
    return day * _PER_DAY + slot_of_day_1 - 1


def ymd(day):
    """JST day number -> (year, month, day); proleptic Gregorian, integer only."""
    z = day + _EPOCH_DAYS_1970 + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    return y, m, d


def day_from_ymd(y, m, d):
    """(year, month, day) -> JST day number since 2020-01-01."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = m + 9 if m <= 2 else m - 3
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468 - _EPOCH_DAYS_1970


def slot_iso(slot):
    """Start of the slot as ISO 8601 with +09:00, e.g. '2026-04-01T00:30:00+09:00'."""
    y, m, d = ymd(slot // _PER_DAY)
    k = slot % _PER_DAY
    return "%04d-%02d-%02dT%02d:%02d:00+09:00" % (y, m, d, k // 2, (k % 2) * 30)


assert SLOT_SECONDS == _SLOT_S and SLOTS_PER_DAY == _PER_DAY
