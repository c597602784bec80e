"""The device model: exact energy, slot truth rows, and registers built from the hw/ maps.

Registers are checked by decoding them with the edge agent's own map decoder (edge.regmap),
so the emulator and the agent read the same JSON map the same way.
"""
import json
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.reading import HAS_EXPORT, HAS_IMPORT, HAS_POWER, R_EXP_EXP, R_EXP_HI, R_EXP_LO, R_IMP_EXP, R_IMP_HI, \
    R_IMP_LO, R_POWER, R_POWER_EXP, new_reading
from edge.regmap import compile_map, decode
from host_tools.emulator.device import (
    DEFAULT_MAP,
    MJ_PER_WH,
    SLOT_MS,
    Device,
    DeviceError,
    TruthWriter,
    decimal_text,
    load_map,
    read_truth,
)
from host_tools.emulator.profiles import Profile, make_profile
from host_tools.emulator.simclock import parse_start

T0 = parse_start("2026-06-21")  # a JST midnight, in edge ms


class TableProfile(Profile):
    """Power from a table indexed by second (cycled): any shape hypothesis can think of."""

    name = "table"

    def __init__(self, watts):
        self.watts = list(watts)
        self.imports = any(w > 0 for w in self.watts)
        self.exports = any(w < 0 for w in self.watts)
        self.max_abs_w = max(abs(w) for w in self.watts)

    def power_w(self, t_s):
        return self.watts[t_s % len(self.watts)]


def _cum(watts, t_ms, sign):
    """Energy in one direction from edge time 0 to t_ms in closed form (whole seconds + a part)."""
    full, part = divmod(t_ms, 1000)
    n = len(watts)
    per_cycle = sum(max(0, sign * w) for w in watts)
    cycles, rest = divmod(full, n)
    e = cycles * per_cycle * 1000 + sum(max(0, sign * watts[s]) for s in range(rest)) * 1000
    return e + max(0, sign * watts[full % n]) * part


def reference_mj(watts, t0_ms, t1_ms):
    """(import mJ, export mJ) between t0_ms and t1_ms, computed independently of Device."""
    return (_cum(watts, t1_ms, 1) - _cum(watts, t0_ms, 1), _cum(watts, t1_ms, -1) - _cum(watts, t0_ms, -1))


def decoded(device):
    """(power W, import Wh, export Wh) as the edge agent decodes the device's registers."""
    rmap = compile_map(device.rmap)
    words = device.registers()
    r = new_reading()
    present = decode(rmap, words, rmap.start - device.image.start, r)
    power = Fraction(r[R_POWER]) * Fraction(10) ** r[R_POWER_EXP] if present & HAS_POWER else None
    imp = Fraction((r[R_IMP_HI] << 16) | r[R_IMP_LO]) * Fraction(10) ** r[R_IMP_EXP] if present & HAS_IMPORT else None
    exp = Fraction((r[R_EXP_HI] << 16) | r[R_EXP_LO]) * Fraction(10) ** r[R_EXP_EXP] if present & HAS_EXPORT else None
    return power, imp, exp


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-6000, 6000), min_size=1, max_size=50),
    st.lists(st.integers(1, 40_000), min_size=1, max_size=12),
    st.integers(0, 3_600_000),
)
def test_energy_is_exact_whatever_the_read_times(watts, steps, offset):
    start = T0 + offset
    d = Device("meter", load_map("sunspec_meter_203"), TableProfile(watts), start, initial_wh=0)
    t = start
    for dt in steps:
        t += dt
        d.advance(t)
        imp, exp = reference_mj(watts, start, t)
        assert (d.import_mj, d.export_mj) == (imp, exp)
        st_ = d.counter_states()
        assert st_["import"]["raw"] == imp // MJ_PER_WH and st_["export"]["raw"] == exp // MJ_PER_WH
        power, dimp, dexp = decoded(d)
        # SunSpec acc32 0 means "not accumulated": the agent sees no value until the first Wh
        assert (dimp or 0, dexp or 0) == (imp // MJ_PER_WH, exp // MJ_PER_WH)
        assert power == watts[(t // 1000) % len(watts)]
        d.advance(t - 5000)  # the clock went back: nothing changes, nothing counted twice
        assert (d.import_mj, d.export_mj) == (imp, exp)


def test_a_day_of_slots_sums_to_the_totals_and_registers_chain():
    d = Device("meter", load_map("sunspec_meter_203"), make_profile("v2h", 3), T0)
    for t in range(T0, T0 + 86_400_000 + 1, 7_777_777):
        d.advance(t)
    d.advance(T0 + 86_400_000)
    slots = [r for r in d.rows if r["type"] == "slot"]
    assert [r["slot"] for r in slots] == list(range(1, 49))
    assert all(r["full"] for r in slots)
    assert sum(r["import_mj"] for r in slots) == d.import_mj > 0
    assert sum(r["export_mj"] for r in slots) == d.export_mj > 0
    for a, b in zip(slots, slots[1:]):
        assert a["regs_end"] == b["regs_start"]
    cum = {"import": 0, "export": 0}
    for r in slots:  # each boundary's register == initial + floor(cumulative exact energy), exactly
        for q in cum:
            cum[q] += r[q + "_mj"]
            assert r["regs_end"][q]["units"] == 100_000 + cum[q] // MJ_PER_WH
    assert slots[-1]["regs_end"]["import"]["units"] == 100_000 + d.import_mj // MJ_PER_WH
    assert slots[0]["regs_start"]["import"]["units"] == 100_000  # a device in service


@pytest.mark.parametrize("kind", ["inverter", "charger", "meter"])
def test_default_maps_decode_to_the_truth(kind):
    profile = {"inverter": "pv", "charger": "ev", "meter": "v2h"}[kind]
    d = Device(kind, load_map(DEFAULT_MAP[kind]), make_profile(profile, 2), T0)
    checked = 0
    for hour in range(24):
        d.advance(T0 + hour * 3_600_000 + 1234)
        power, imp, exp = decoded(d)
        assert power == d.power_w
        if "import" in d.counters:
            assert imp == d.counter_states()["import"]["units"] == 100_000 + d.import_mj // MJ_PER_WH
        if "export" in d.counters:
            assert exp == d.counter_states()["export"]["units"] == 100_000 + d.export_mj // MJ_PER_WH
        checked += 1
    assert d.import_mj + d.export_mj > 0 and checked == 24


def test_sunspec_image_is_discoverable():
    d = Device("inverter", load_map("sunspec_inverter_103"), make_profile("pv"), T0)
    w = d.registers()
    assert d.image.start == 40000 and w[0:2] == [0x5375, 0x6E53]  # 'SunS'
    assert w[2:4] == [1, 66]  # common model
    assert bytes(b for x in w[4:12] for b in (x >> 8, x & 0xFF)).rstrip(b"\0") == b"smeter"
    assert w[70:72] == [103, 50]
    assert w[72 + 50 : 72 + 52] == [0xFFFF, 0]  # end model right after model 103


def test_rollover_wraps_the_32_bit_accumulator():
    d = Device("meter", load_map("sunspec_meter_203"), make_profile("const:w=3600"), T0, rollover=500)
    assert d.counter_states()["import"]["raw"] == 2**32 - 500
    d.advance(T0 + 400 * 1000)  # 3600 W for 400 s = 400 Wh
    assert d.counter_states()["import"]["raw"] == 2**32 - 100
    d.advance(T0 + 700 * 1000)
    s = d.counter_states()["import"]
    assert s["raw"] == 200 and s["units"] == 2**32 + 200
    assert decoded(d)[1] == 200  # the wire shows the wrapped value
    assert d.import_mj == 700 * MJ_PER_WH  # the truth never wraps


def test_meter_replacement_restarts_the_counter_and_keeps_every_wh():
    d = Device("meter", load_map("sunspec_meter_203"), make_profile("const:w=1800"), T0, initial_wh=0)
    d.schedule(T0 + 45 * 60_000, "replace")
    d.advance(T0 + 3_600_000)
    ev = [r for r in d.rows if r["type"] == "event"]
    assert len(ev) == 1 and ev[0]["kind"] == "replace" and ev[0]["t_ms"] == T0 + 45 * 60_000
    assert ev[0]["old"]["import"]["units"] == 1350 and ev[0]["old"]["import"]["meter"] == 1
    assert ev[0]["new"]["import"]["units"] == 0 and ev[0]["new"]["import"]["meter"] == 2
    assert d.counter_states()["import"]["units"] == 450
    slots = [r for r in d.rows if r["type"] == "slot"]
    assert sum(r["import_mj"] for r in slots) == 1800 * MJ_PER_WH  # the truth keeps every Wh
    # old meter's final value + new meter's energy == truth
    assert ev[0]["old"]["import"]["units"] + d.counter_states()["import"]["units"] == 1800


def test_scale_factor_change_rescales_the_register():
    d = Device("meter", load_map("sunspec_meter_203"), make_profile("const:w=-2000"), T0, initial_wh=0)
    d.schedule(T0 + 1_800_000, "sf", 1)
    d.advance(T0 + 3_600_000)
    s = d.counter_states()["export"]
    assert (s["raw"], s["exp"], s["wh"]) == (200, 1, "2000")
    assert decoded(d)[2] == 2000
    words = d.registers()
    assert words[40124 - 40000] == 1  # TotWh_SF on the wire
    d.schedule(T0 + 3_600_000 + 1000, "wsf", -1)
    d.advance(T0 + 3_601_000)
    assert decoded(d)[0] == -2000 and d.registers()[40092 - 40000] == 0xFFFF  # W_SF = -1


def test_float32_meter_energy_is_whole_wh():
    d = Device("charger", load_map("eastron_sdm630"), make_profile("const:w=4321"), T0)
    for minutes in (1, 17, 60, 600):
        d.advance(T0 + minutes * 60_000)
        power, imp, exp = decoded(d)
        assert power == 4321 and exp == 100_000
        assert imp == d.counter_states()["import"]["units"] == 100_000 + d.import_mj // MJ_PER_WH


@pytest.mark.parametrize(
    "kind,map_name,profile,kwargs,event",
    [
        ("inverter", "sunspec_inverter_103", "v2h", {}, None),  # inverter map cannot show import
        ("inverter", "sunspec_inverter_103", "ev", {}, None),
        ("charger", "eastron_sdm630", "ev", {"rollover": 10}, None),  # float32: no 32-bit accumulator
        ("charger", "eastron_sdm630", "ev", {}, ("sf", 1)),  # float32: no scale-factor register
        ("toaster", "sunspec_meter_203", "ev", {}, None),
    ],
)
def test_inconsistent_configurations_are_refused(kind, map_name, profile, kwargs, event):
    with pytest.raises(DeviceError):
        d = Device(kind, load_map(map_name), make_profile(profile), T0, **kwargs)
        if event:
            d.schedule(T0, *event)


def test_unknown_map_is_refused():
    with pytest.raises(DeviceError, match="known"):
        load_map("no_such_map")


@pytest.mark.parametrize("ext", ["jsonl", "csv"])
def test_truth_file_round_trip(tmp_path, ext):
    path = str(tmp_path / ("truth." + ext))
    d = Device("meter", load_map("sunspec_meter_203"), make_profile("const:w=1000"), T0, initial_wh=0)
    w = TruthWriter(path, {"device": "meter"})
    d.on_row.append(w.write)
    d.schedule(T0 + 600_000, "replace", 5)
    d.advance(T0 + 2 * SLOT_MS)
    w.write(d.partial_slot_row())
    w.close()
    rows = read_truth(path)
    types = [r["type"] for r in rows]
    assert types == ["header", "event", "slot", "slot", "partial"]
    if ext == "jsonl":
        assert rows[2]["import_mj"] == 1000 * 1800 * 1000 and rows[1]["new"]["import"]["units"] == 5
        json.dumps(rows)
    else:
        assert int(rows[2]["import_mj"]) == 1000 * 1800 * 1000 and rows[1]["import_raw"] == "5"


@given(st.integers(-(10**12), 10**12), st.integers(-10, 10))
def test_decimal_text_is_exact(units, exp):
    from decimal import Decimal

    text = decimal_text(units, exp)
    assert Decimal(text) == Decimal(units).scaleb(exp)
    assert "e" not in text.lower() and "/" not in text


def test_negative_scale_factor_counts_tenths_of_wh():
    d = Device("meter", load_map("sunspec_meter_203"), make_profile("const:w=37"), T0, esf=-1, initial_wh=0)
    d.advance(T0 + 60_000)  # 37 W for 60 s = 0.61666.. Wh -> 6 units of 0.1 Wh
    s = d.counter_states()["import"]
    assert (s["raw"], s["exp"], s["wh"]) == (6, -1, "0.6")
    assert decoded(d)[1] == Fraction(6, 10)
