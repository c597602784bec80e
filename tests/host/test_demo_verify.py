"""The demo's verification arithmetic, fault spec and chart, on synthetic truth files and
collector databases (fast; the real-process runs are in test_e2e_uplink.py)."""
import json
import os
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_tools.collector.store import Store
from host_tools.demo import summary as summ
from host_tools.demo.faults import PRESETS, DemoFaultError, FaultPlan

FIRST = 113424  # 2026-06-21 00:00 JST
WH = 3600000  # mJ


def _reg(units):
    return {"export": {"raw": units % 2 ** 32, "units": units, "exp": 0, "wh": str(units), "meter": 1}}


def _truth(path, energies_mj, start_units=2 ** 32 - 3000):
    """Truth rows for consecutive slots with exact export energies (mJ); registers floor."""
    rows = [{"type": "header", "device": "inverter", "map": "sunspec_inverter_103",
             "profile": "const:w=-1000", "seed": 1}]
    total = 0
    for i, mj in enumerate(energies_mj):
        a = start_units + total // WH
        total += mj
        b = start_units + total // WH
        rows.append({"type": "slot", "start_s": (FIRST + i) * 1800, "import_mj": 0, "export_mj": mj,
                     "regs_start": _reg(a), "regs_end": _reg(b)})
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def _db(path, values, device_id=7):
    """values: {slot_index: (export_wh, flags, delay_s)}"""
    s = Store(path)
    s.begin()
    s.insert_values([(device_id, FIRST + i, 0, wh, fl, 0, i, 0, d * 1000) for i, (wh, fl, d) in values.items()])
    s.commit()
    s.close()


def _run(tmp_path, energies_wh, stored, **kw):
    t, d = str(tmp_path / "t.jsonl"), str(tmp_path / "c.db")
    _truth(t, [int(e * WH) for e in energies_wh], **kw)
    _db(d, stored)
    return summ.device_summary("inverter", 7, t, d, FIRST, len(energies_wh))


def test_exact_day_through_a_rollover_is_neither_lost_nor_duplicated(tmp_path):
    e = [0, 1200.4, 2500.5, 2499.1, 800]  # the register wraps 2**32 in slot 2
    stored = {0: (0, 0, 60), 1: (1200, 0, 60), 2: (2501, 0, 60), 3: (2499, 0, 4000), 4: (800, 0, 60)}
    s = _run(tmp_path, e, stored)
    assert s["register_delta_wh"] == s["stored_wh"] == 7000
    assert s["wh_lost"] == 0 and s["wh_duplicated"] == 0
    assert s["slots_stored"] == 5 and s["slots_missing"] == 0
    assert s["slots_late"] == 1 and s["max_delivery_minutes"] == pytest.approx(66.7)
    assert s["max_slot_error_wh"] == pytest.approx(0.5)


def test_boundary_skew_moves_energy_between_slots_but_not_the_sum(tmp_path):
    s = _run(tmp_path, [1000, 1000, 1000], {0: (1080, 0, 1), 1: (920, 0, 1), 2: (1000, 0, 1)})
    assert s["wh_lost"] == 0 and s["wh_duplicated"] == 0
    assert s["max_slot_error_wh"] == 80


def test_a_slot_that_never_arrived_is_lost_and_missing(tmp_path):
    s = _run(tmp_path, [1000, 1500, 1000], {0: (1000, 0, 1), 2: (1000, 0, 1)})
    assert s["slots_missing"] == 1 and s["slots_stored"] == 2
    assert s["wh_lost"] == 1500
    assert [r["stored"] for r in s["slots"]] == [True, False, True]


def test_energy_short_in_a_slot_flagged_missing_is_flagged_not_lost(tmp_path):
    s = _run(tmp_path, [1000, 1500, 1000], {0: (1000, 0, 1), 1: (900, 2 | 1, 1), 2: (1000, 0, 1)})
    assert s["wh_lost"] == 0 and s["slots_flagged_missing"] == 1


def test_energy_short_in_an_unflagged_slot_is_lost(tmp_path):
    s = _run(tmp_path, [1000, 1500, 1000], {0: (1000, 0, 1), 1: (900, 0, 1), 2: (1000, 0, 1)})
    assert s["wh_lost"] == 600 and s["wh_duplicated"] == 0


def test_more_stored_than_the_device_delivered_is_duplicated(tmp_path):
    s = _run(tmp_path, [1000, 1000], {0: (1000, 0, 1), 1: (1999, 0, 1)})
    assert s["wh_duplicated"] == 999 and s["wh_lost"] == 0


def test_a_slot_conflict_counts_as_duplicated(tmp_path):
    t, d = str(tmp_path / "t.jsonl"), str(tmp_path / "c.db")
    _truth(t, [1000 * WH])
    _db(d, {0: (1000, 0, 1)})
    s = summ.device_summary("inverter", 7, t, d, FIRST, 1, conflicts=["stored 0/1000, new 0/1200"])
    assert s["slot_conflicts"] == 1 and s["wh_duplicated"] == 1200


def test_standard_preset_has_the_required_ingredients():
    f = FaultPlan("standard")
    assert any(d >= 6 * 3600 for _, d in f.outages)
    assert f.kills >= 5
    spec = f.emulator_spec(1)
    for item in ("timeout=0.02", "crc=0.02", "rollover=3000?"):
        assert item in spec.split(","), spec
    assert FaultPlan("none").emulator_spec(1) == "" and PRESETS["none"] == ""


def test_specs_compose_and_convert_to_the_module_emulator_clock():
    f = FaultPlan("standard,garbage=0.01,session_expiry=3h,outage=30m@20h,seed=9")
    assert f.outages == [(8 * 3600, 6 * 3600), (20 * 3600, 1800)]
    # 1440x and a 0.05 time scale: one simulated hour is 2.5 s real, 50 emulated s
    w = f.wisun_spec(lambda s: s / 1440.0 / 0.05, 1).split(",")
    assert "link_down=300s@400s" in w and "link_down=25s@1000s" in w
    assert "garbage=0.01" in w and "session_expiry=150s" in w


@pytest.mark.parametrize("bad", ["outage=6h", "outage=0s@1h", "kills=x", "kills=101", "crc=2",
                                 "exception=0.1:12", "rollover=0", "bogus=1", "timeout", "seed=-1",
                                 "session_expiry=0s", "outage=-1h@2h"])
def test_bad_fault_items_are_refused_with_a_typed_error(bad):
    with pytest.raises(DemoFaultError):
        FaultPlan(bad)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10 ** 6), st.integers(3, 96), st.integers(0, 12), st.integers(0, 3))
def test_kill_times_are_apart_and_outside_device_outages(seed, slots, kills, dev):
    f = FaultPlan("kills=%d,offline=20m@%ds" % (kills, (slots // 2) * 1800))
    run_s = slots * 1800
    ts = f.kill_times(run_s, seed, dev)
    assert ts == sorted(ts) and len(ts) <= kills
    for i, t in enumerate(ts):
        assert 1800 <= t < run_s - 1800
        assert all(not (a - 1800 <= t <= a + d + 1800) for a, d in f.offline)
        if i:
            assert t - ts[i - 1] >= 1800
    if slots >= 3 * kills + 8:  # enough room: every kill is placed
        assert len(ts) == kills
    assert f.kill_times(run_s, seed, dev) == ts  # seeded: the same plan every time


def test_kill_times_reach_every_part_of_a_slot():
    """Kills are not kept early in a slot: a restart anywhere must lose nothing."""
    offsets = [t % 1800 for seed in range(40) for t in FaultPlan("kills=5").kill_times(48 * 1800, seed)]
    assert min(offsets) < 300 and max(offsets) > 1500


def test_chart_and_text_from_a_summary(tmp_path):
    pytest.importorskip("matplotlib")
    from host_tools.demo.chart import write_png

    e = [0, 500, 1500, 900]
    s = _run(tmp_path, e, {0: (0, 0, 1), 1: (500, 0, 5000), 2: (1500, 0, 1)})
    s["link_outages_h"] = [[0.9, 1.9]]
    summary = {"devices": [s], "run": {"start": "2026-06-21T00:00:00+09:00", "hours": 2, "speed": 1440,
                                       "runtime": "micropython", "faults": "kills=1", "real_seconds": 1.0},
               "slots_stored": 3, "slots_missing": 1, "slots_late": 1, "wh_lost": s["wh_lost"],
               "wh_duplicated": 0, "frames_rejected": 0, "max_delivery_minutes": 83.3}
    dev = types.SimpleNamespace(killed=[("sigkill", 1900, 1910)])
    run = types.SimpleNamespace(run_s=4 * 1800, start_s=FIRST * 1800, seed=1, devices=[dev],
                                faults=FaultPlan("outage=1h@1h"))
    png = write_png(str(tmp_path / "out" / "demo.png"), summary, run)
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(png) > 20000
    text = summ.format_text(summary)
    assert "NOT STORED" in text and " late" in text and "wh_lost: 900" in text


def test_the_verdicts_reasons_name_each_failed_check():
    """A FAILED demo says why on stderr (a seal left incomplete once exited 1 with no
    reason beside the JSON)."""
    ok = {k: 0 for k in summ.VERDICT_KEYS}
    ok["drained"] = True
    assert summ.failures(ok) == []
    bad = dict(ok, seals_incomplete=1, wh_lost=12, drained=False)
    assert summ.failures(bad) == ["12 wh_lost", "1 seals_incomplete", "queues not drained"]
    assert summ.failures(dict(ok, drained=False)) == []  # drained late, nothing wrong
