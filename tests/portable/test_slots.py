"""JST slot numbering and calendar conversion (edge/slots.py)."""
from edge import slots
from edge.flags import CLOCK_STEP, PARTIAL, names, parse


def test_epoch_day_is_2020_01_01_slot_1():
    assert slots.slot_of(0) == 0
    assert slots.slot_of_day(0) == 1
    assert slots.ymd(0) == (2020, 1, 1)
    assert slots.slot_iso(0) == "2020-01-01T00:00:00+09:00"


def test_slot_edges():
    assert slots.slot_of(1799) == 0
    assert slots.slot_of(1800) == 1
    assert slots.slot_of_day(47) == 48
    assert slots.slot_of_day(48) == 1
    assert slots.slot_start(48) == 86400
    assert slots.slot_iso(47) == "2020-01-01T23:30:00+09:00"
    assert slots.slot_iso(48) == "2020-01-02T00:00:00+09:00"


def test_known_dates_and_leap_days():
    # 2026-04-01 JST: 2020..2025 = 6 years with 2 leap years (2020, 2024) + Jan..Mar 2026.
    day = 6 * 365 + 2 + 31 + 28 + 31
    assert slots.ymd(day) == (2026, 4, 1)
    assert slots.day_from_ymd(2026, 4, 1) == day
    assert slots.ymd(slots.day_from_ymd(2024, 2, 29)) == (2024, 2, 29)
    assert slots.day_from_ymd(2024, 3, 1) - slots.day_from_ymd(2024, 2, 28) == 2
    assert slots.day_from_ymd(2100, 3, 1) - slots.day_from_ymd(2100, 2, 28) == 1
    assert slots.slot_iso(slots.slot_from_day(day, 2)) == "2026-04-01T00:30:00+09:00"


def test_round_trip_many_days():
    for day in range(-800, 40000, 37):
        y, m, d = slots.ymd(day)
        assert slots.day_from_ymd(y, m, d) == day
        assert 1 <= m <= 12 and 1 <= d <= 31


def test_flag_names_round_trip():
    assert names(0) == ""
    assert names(PARTIAL | CLOCK_STEP) == "partial|clock_step"
    assert parse("partial|clock_step") == PARTIAL | CLOCK_STEP
    for bits in range(64):
        assert parse(names(bits)) == bits
    assert parse("bogus") == -1 and parse("partial|bogus") == -1
