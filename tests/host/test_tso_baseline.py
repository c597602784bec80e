"""Baselines on small hand-computed data: ERAB High 4 of 5 (with same-day adjustment) and
the previous-day method."""
import numpy as np

from host_tools.tso import baseline as bl
from host_tools.tso import config

# Mon 2026-03-30 .. Wed 2026-04-08; target = the last day (index 9)
DAYS = np.datetime64("2026-03-30") + np.arange(10)
TARGET = 9
WINDOW = (36, 38)  # 18:00-19:00
CFG = config.load_rules()["baseline"]["high4of5"]
NO_ADJ = dict(CFG, adjust_start_hours_before=0, adjust_end_hours_before=0)


def flat(consumption_by_date, n_days=10):
    """One resource; every slot of a day = -consumption (consumption positive)."""
    s = np.zeros((n_days, 1, 48), np.int64)
    for date, c in consumption_by_date.items():
        s[np.nonzero(DAYS == np.datetime64(date))[0][0], 0, :] = -c
    return s


def test_like_days_skip_weekend_and_dr_days():
    excluded = DAYS == np.datetime64("2026-04-02")  # DR on Thursday
    got = [str(DAYS[j]) for j in bl.like_days(DAYS, TARGET, excluded, CFG)]
    assert got == ["2026-04-07", "2026-04-06", "2026-04-03", "2026-04-01", "2026-03-31"]


def test_high4of5_drops_low_day_and_averages_the_rest():
    # Tue7 100, Mon6 120, Fri3 20, Wed1 110, Tue31 90: mean 88, 25 % = 22, so Fri3 (20)
    # is dropped; the four left average (100+120+110+90)/4 = 105.
    s = flat({"2026-04-07": 100, "2026-04-06": 120, "2026-04-03": 20, "2026-04-01": 110,
              "2026-03-31": 90, "2026-04-02": 500})
    excluded = DAYS == np.datetime64("2026-04-02")
    base, probs = bl.high4of5(s, np.ones((10, 1), bool), DAYS, TARGET, WINDOW, excluded, NO_ADJ)
    assert probs == []
    assert base[0, 36] == base[0, 0] == -105


def test_high4of5_ties_go_to_the_more_recent_day():
    s = flat({"2026-04-07": 100, "2026-04-06": 80, "2026-04-03": 80, "2026-04-01": 80,
              "2026-03-31": 80, "2026-04-02": 80})
    s[:, 0, 0] = [0, -1000, -40, -999, -30, 0, 0, -20, -10, 0]  # outside the window
    excluded = np.zeros(10, bool)  # Thu2 (80) is now a like day: Tue7 Mon6 Fri3 Thu2 Wed1
    base, _ = bl.high4of5(s, np.ones((10, 1), bool), DAYS, TARGET, WINDOW, excluded, NO_ADJ)
    # window: 100 and four 80s; keep Tue7, Mon6, Fri3, Thu2 (most recent of the ties)
    assert base[0, 0] == bl.round_div(-10 - 20 - 30 - 999, 4) == -265  # -264.75
    assert base[0, 36] == (-100 - 80 * 3) // 4 == -85


def test_same_day_adjustment_window_four_to_one_hours_before():
    s = flat({"2026-04-07": 100, "2026-04-06": 120, "2026-04-03": 20, "2026-04-01": 110,
              "2026-03-31": 90})
    excluded = DAYS == np.datetime64("2026-04-02")
    # event starts at slot index 36 (18:00): adjustment slots 28..33 (14:00-17:00)
    s[TARGET, 0, 28:34] = [-110, -110, -110, -110, -110, -113]
    s[TARGET, 0, 34:36] = -999  # the last hour before the event is not used
    base, _ = bl.high4of5(s, np.ones((10, 1), bool), DAYS, TARGET, WINDOW, excluded, CFG)
    # unadjusted -105; mean difference (5 * -5 - 8) / 6 = -5.5; -110.5 rounds half up
    assert base[0, 36] == base[0, 37] == -110


def test_high_2_of_3_on_holidays_and_configured_holidays():
    days = np.datetime64("2026-03-21") + np.arange(15)  # Sat 21 .. Sat Apr 4
    s = np.zeros((15, 1, 48), np.int64)
    cons = {"2026-03-28": 50, "2026-03-29": 70, "2026-03-22": 60, "2026-03-21": 10}
    for d, c in cons.items():
        s[np.nonzero(days == np.datetime64(d))[0][0], 0, :] = -c
    target = 14
    base, _ = bl.high4of5(s, np.ones((15, 1), bool), days, target, WINDOW,
                          np.zeros(15, bool), NO_ADJ)
    # three like days Sun29 70, Sat28 50, Sun22 60 -> keep 70 and 60
    assert base[0, 36] == -65
    hol = dict(NO_ADJ, holidays=["2026-03-20"])  # 春分の日 (Fri), counts as holiday
    assert bl.is_holiday(np.array(["2026-03-20"], "datetime64[D]"), hol["holidays"])[0]
    assert not bl.is_holiday(np.array(["2026-03-20"], "datetime64[D]"))[0]


def test_not_enough_history_and_missing_values_are_problems():
    s = flat({})
    base, probs = bl.high4of5(s[:3], np.ones((3, 1), bool), DAYS[:3], 2, WINDOW,
                              np.zeros(3, bool), CFG)
    assert probs and probs[0].kind == "baseline_history"
    present = np.ones((10, 1), bool)
    present[7, 0] = False  # Tue7 missing
    _, probs = bl.high4of5(s, present, DAYS, TARGET, WINDOW, np.zeros(10, bool), CFG,
                           names=np.array(["R1"]))
    assert probs[0].offenders == ["R1"]


def test_lookback_limit():
    days = np.array(["2026-01-01", "2026-01-02", "2026-01-05", "2026-01-06", "2026-01-07",
                     "2026-04-08"], "datetime64[D]")
    assert bl.like_days(days, 5, np.zeros(6, bool), CFG) == []
    # 2026-01-01 is New Year's Day (元日): a holiday, so four weekdays are left
    assert len(bl.like_days(days, 5, np.zeros(6, bool), dict(CFG, lookback_days=100))) == 4
    no_cal = dict(CFG, lookback_days=100, holiday_calendar=None)
    assert len(bl.like_days(days, 5, np.zeros(6, bool), no_cal)) == 5


# National holidays as published by the Cabinet Office (内閣府「国民の祝日について」,
# https://www8.cao.go.jp/chosei/shukujitsu/gaiyou.html, list for 令和7年/令和8年), typed in
# by hand from that list: the expected dates do not come from the package under test.
CAO_2025 = ["2025-01-01", "2025-01-13", "2025-02-11", "2025-02-23", "2025-02-24",
            "2025-03-20", "2025-04-29", "2025-05-03", "2025-05-04", "2025-05-05",
            "2025-05-06", "2025-07-21", "2025-08-11", "2025-09-15", "2025-09-23",
            "2025-10-13", "2025-11-03", "2025-11-23", "2025-11-24"]
CAO_2026 = ["2026-01-01", "2026-01-12", "2026-02-11", "2026-02-23", "2026-03-20",
            "2026-04-29", "2026-05-03", "2026-05-04", "2026-05-05", "2026-05-06",
            "2026-07-20", "2026-08-11", "2026-09-21", "2026-09-22", "2026-09-23",
            "2026-10-12", "2026-11-03", "2026-11-23"]


def test_the_calendar_matches_the_cabinet_office_list():
    for year, listed in ((2025, CAO_2025), (2026, CAO_2026)):
        days = np.arange(np.datetime64("%d-01-01" % year), np.datetime64("%d-01-01" % (year + 1)))
        hol = set(str(d) for d in bl.holidays_for(CFG, days))
        assert hol == set(listed), (year, sorted(hol ^ set(listed)))
    # substitute holidays (振替休日): 2025-02-24, 2025-05-06, 2025-11-24, 2026-05-06;
    # a 国民の休日 between two holidays: 2026-09-22
    sub = np.array(["2025-02-24", "2025-05-06", "2025-11-24", "2026-05-06", "2026-09-22"],
                   "datetime64[D]")
    assert bl.is_holiday(sub, bl.holidays_for(CFG, sub)).all()


def test_golden_week_like_days_for_thursday_2026_05_07():
    days = np.datetime64("2026-04-15") + np.arange(23)  # .. Thu 2026-05-07
    target = len(days) - 1
    assert str(days[target]) == "2026-05-07"
    got = [str(days[j]) for j in bl.like_days(days, target, np.zeros(len(days), bool), CFG)]
    # Wed 6 (振替休日), Tue 5, Mon 4, Sun 3, Sat 2 and Wed 4/29 (昭和の日) are not weekdays
    assert got == ["2026-05-01", "2026-04-30", "2026-04-28", "2026-04-27", "2026-04-24"]
    # and a holiday target takes holiday-type like days: Wed 5/6 -> 5/5, 5/4, 5/3
    got = [str(days[j]) for j in bl.like_days(days, target - 1, np.zeros(len(days), bool), CFG)]
    assert got == ["2026-05-05", "2026-05-04", "2026-05-03"]


def test_configured_extra_days_add_to_the_calendar():
    days = np.array(["2026-12-29", "2026-12-30", "2026-12-31"], "datetime64[D]")
    assert not bl.is_holiday(days, bl.holidays_for(CFG, days)).any()
    tso = dict(CFG, holidays=["2026-12-30", "2026-12-31"])  # a TSO's year-end days
    assert bl.is_holiday(days, bl.holidays_for(tso, days)).tolist() == [False, True, True]


def test_prev_day():
    s = np.arange(3 * 2 * 48, dtype=np.int64).reshape(3, 2, 48)
    base, probs = bl.prev_day(s, np.ones((3, 2), bool), DAYS[:3], 2)
    assert probs == [] and (base == s[1]).all()
    gap = np.array(["2026-04-01", "2026-04-03"], "datetime64[D]")
    _, probs = bl.prev_day(s[:2], np.ones((2, 2), bool), gap, 1)
    assert probs[0].kind == "baseline_history"


def test_round_div_is_half_up_for_both_signs():
    assert bl.round_div(np.array([5, -5, 6, -6, 7, -7]), 4).tolist() == [1, -1, 2, -1, 2, -2]


def test_correction_inputs_use_the_same_baselines_as_the_full_history():
    # prepare_day gathers only the days and slots each method reads; the result must equal
    # the baseline computed on the whole history.
    from host_tools.tso import correction, generate
    rules = config.load_rules()
    data = generate.generate(500, days=8, seed=9)
    day = len(data.days) - 1
    inp, _, _ = correction.prepare_day(data, day, rules, 2)
    rows_of = data.group_rows()
    checked = set()
    for gid, method, start, end in zip(data.events["group_id"], (
            data.groups["baseline_method"][data.group_index[g]] for g in data.events["group_id"]),
            data.events["start_slot"], data.events["end_slot"]):
        rows = rows_of[gid]
        src = "device" if data.is_device_point()[rows[0]] else "receiving"
        series = getattr(data, src)[:, rows]
        present = getattr(data, src + "_present")[:, rows]
        a, b = start - 1, end
        if method == "high4of5":
            excluded = correction.dr_days(data)[:, rows]  # each resource's own DR days
            full, probs = bl.high4of5(series, present, data.days, day, (a, b), excluded,
                                      rules["baseline"]["high4of5"])
        elif method == "prev_day":
            full, probs = bl.prev_day(series, present, data.days, day)
        else:
            full, probs = data.device_plans[day, rows], []
        assert probs == []
        assert (inp.baseline[rows, a:b] == full[:, a:b]).all()
        checked.add(method)
    assert checked == {"high4of5", "prev_day", "plan"}


def test_a_low_day_is_replaced_by_the_next_older_like_day():
    # Like days Tue7 100, Mon6 120, Fri3 20, Wed1 110, Tue31 90 (Thu2 is a DR day): mean 88,
    # 25 % = 22, so Fri3 is dropped and the next older weekday, Mon30 (130), taken instead.
    # High 4 of Tue7 Mon6 Wed1 Tue31 Mon30 = (130 + 120 + 110 + 100) / 4 = 115.
    s = flat({"2026-04-07": 100, "2026-04-06": 120, "2026-04-03": 20, "2026-04-01": 110,
              "2026-03-31": 90, "2026-03-30": 130, "2026-04-02": 500})
    excluded = DAYS == np.datetime64("2026-04-02")
    base, probs = bl.high4of5(s, np.ones((10, 1), bool), DAYS, TARGET, WINDOW, excluded, NO_ADJ)
    assert probs == [] and base[0, 36] == -115


def test_dr_days_are_per_resource_when_the_mask_is_per_resource():
    # two resources with the same history; only the first was dispatched on Mon6 (by some
    # other group): its like days skip Mon6 and reach back to Mon30
    one = flat({"2026-04-07": 100, "2026-04-06": 10, "2026-04-03": 100, "2026-04-02": 100,
                "2026-04-01": 100, "2026-03-31": 100, "2026-03-30": 40})
    s = np.concatenate([one, one], axis=1)
    excluded = np.zeros((10, 2), bool)
    excluded[DAYS == np.datetime64("2026-04-06"), 0] = True
    base, probs = bl.high4of5(s, np.ones((10, 2), bool), DAYS, TARGET, WINDOW, excluded, NO_ADJ)
    assert probs == []
    # resource 0: 7, 3, 2, 1, 31 (all 100) -> 100; resource 1: 7, 6(10), 3, 2, 1 -> mean 82,
    # 25 % = 20.5, so 6 is low and replaced by 31 -> 100 as well; the days differ, not the sum
    assert base[:, 36].tolist() == [-100, -100]
    excluded[DAYS == np.datetime64("2026-04-07"), 1] = True  # resource 1 also out on Tue7
    base, _ = bl.high4of5(s, np.ones((10, 2), bool), DAYS, TARGET, WINDOW, excluded, NO_ADJ)
    assert base[:, 36].tolist() == [-100, -100]
    # with only Mon30 (40) left beside the 100s, resource 1 keeps four 100s
    excluded[:, 1] = DAYS >= np.datetime64("2026-04-01")
    base, probs = bl.high4of5(s, np.ones((10, 2), bool), DAYS, TARGET, WINDOW, excluded, NO_ADJ)
    assert [str(p.kind) for p in probs] == ["baseline_history"] and probs[0].offenders == [1]


def _two_groups_one_resource():
    """Resource R is in group A (list pattern 1) and group B (list pattern 2); S only in A.
    B dispatched R on Mon 2026-04-06 (R used 10 Wh/slot that day); A is dispatched on Wed 8."""
    from host_tools.tso.model import TsoData
    days = DAYS
    nd = len(days)
    recv = np.zeros((nd, 2, 48), np.int64)
    for j, d in enumerate(days):
        wd = (d.astype(np.int64) + 3) % 7
        recv[j, :, :] = -100 if wd < 5 else -50
    recv[days == np.datetime64("2026-04-06"), :, :] = -10  # both low that day
    data = TsoData.build(
        balancing_groups={"bg_id": np.array(["D"], object), "kind": np.array(["demand"], object)},
        resources={"resource_id": np.array(["R", "S"], object), "point": np.array(["M", "M"], object),
                   "resource_type": np.array(["demand"] * 2, object),
                   "demand_bg": np.array(["D", "D"], object),
                   "generation_bg": np.array(["", ""], object),
                   "gen_contract": np.zeros(2, np.int64), "loss_ppm": np.zeros(2, np.int64)},
        groups={"group_id": np.array(["A", "B"], object),
                "list_pattern_id": np.array(["LP1", "LP2"], object),
                "baseline_method": np.array(["high4of5", "high4of5"], object)},
        members={"group_id": np.array(["A", "A", "B"], object),
                 "resource_id": np.array(["R", "S", "R"], object)},
        bg_plans={"bg_id": np.array(["D"] * 48, object),
                  "date": np.full(48, np.datetime64("2026-04-08")),
                  "slot": np.arange(1, 49), "plan_wh": np.full(48, 200)},
        days=days, receiving=recv,
        events={"group_id": np.array(["B", "A"], object),
                "date": np.array(["2026-04-06", "2026-04-08"], "datetime64[D]"),
                "start_slot": np.array([37, 37]), "end_slot": np.array([38, 38])})
    return data


def test_by_default_a_resource_s_dr_days_under_any_group_are_excluded():
    from host_tools.tso import correction
    data = _two_groups_one_resource()
    rules = config.load_rules(overrides={"baseline": {"high4of5": {
        "adjust_start_hours_before": 0, "adjust_end_hours_before": 0}}})
    dr = correction.dr_days(data)
    assert dr[:, 0].nonzero()[0].tolist() == [7, 9] and dr[:, 1].nonzero()[0].tolist() == [9]
    inp, _, _ = correction.prepare_day(data, 9, rules, 1)
    # R skips Mon6 (its DR day under group B): 7, 3, 2, 1, 31 -> 100 per slot. S was not
    # dispatched on Mon6: 7, 6, 3, 2, 1, where Mon6 (10) is below 25 % of the mean 82 and is
    # replaced by Mon30 -> 100 as well.
    assert inp.baseline[:, 36].tolist() == [-100, -100]
    # With the low-day rule off and all five like days kept, the chosen days show:
    h = rules["baseline"]["high4of5"]
    h["low_day_ratio_pct"] = 0
    h["keep_days"] = 5
    inp_r, _, _ = correction.prepare_day(data, 9, rules, 1)
    h["dr_days_scope"] = "group"  # the old reading: only group A's own event days
    inp_g, _, _ = correction.prepare_day(data, 9, rules, 1)
    assert inp_r.baseline[0, 36] == -100  # R: 7, 3, 2, 1, 31
    assert inp_g.baseline[0, 36] == -82  # R: 7, 6, 3, 2, 1 (its DR day Mon6 = 10 counted)
    assert inp_r.baseline[1, 36] == inp_g.baseline[1, 36] == -82  # S: Mon6 is no DR day of S


def test_correction_gathers_recent_days_first_and_matches_the_full_history():
    # a month of data with low days and DR days of other groups: prepare_day reads the most
    # recent candidate days first and older ones only when a resource needs them; the
    # baselines must equal High 4 of 5 over the whole history
    from host_tools.tso import correction, generate
    from host_tools.tso.model import Table
    rules = config.load_rules()
    data = generate.generate(400, days=31, seed=4)
    day = len(data.days) - 1
    rng = np.random.default_rng(4)
    for arr in (data.receiving, data.device):
        d = rng.integers(0, day, 600)
        r = rng.integers(0, arr.shape[1], 600)
        arr[d, r, :] //= 50  # low days for the 25 % rule
    ev = data.events
    extra = {k: np.asarray(ev[k]) for k in ev.columns}
    gids = np.asarray(data.groups["group_id"])
    for k, g in enumerate(gids):  # earlier DR days, one per group, on different days
        for col, v in (("group_id", g), ("date", data.days[day - 3 - 2 * k]),
                       ("start_slot", 30), ("end_slot", 34)):
            extra[col] = np.append(extra[col], np.asarray([v]).astype(extra[col].dtype))
    data.events = Table(**extra)
    data.__dict__.pop("_dr_days", None)
    inp, _, _ = correction.prepare_day(data, day, rules, 2)
    rows_of = data.group_rows()
    checked = 0
    today = data.events["date"].astype("datetime64[D]") == data.days[day]
    for gid, start, end in zip(data.events["group_id"][today], data.events["start_slot"][today],
                               data.events["end_slot"][today]):
        if data.groups["baseline_method"][data.group_index[gid]] != "high4of5":
            continue
        rows = rows_of[gid]
        src = "device" if data.is_device_point()[rows[0]] else "receiving"
        full, probs = bl.high4of5(getattr(data, src)[:, rows],
                                  getattr(data, src + "_present")[:, rows], data.days, day,
                                  (start - 1, end), correction.dr_days(data)[:, rows],
                                  rules["baseline"]["high4of5"])
        assert probs == []
        assert (inp.baseline[rows, start - 1:end] == full[:, start - 1:end]).all()
        checked += len(rows)
    assert checked > 0
