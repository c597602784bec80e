"""Register maps: the shipped JSON maps decoded into readings; scale factors, not-implemented
markers, word order, accumulators in halves, float32 by bit manipulation, sign conventions."""
# Heap for compiling this test module from source; the edge modules alone need far less.
# mp-heap: 64K
import json

from edge.reading import (
    HAS_EXPORT,
    HAS_IMPORT,
    HAS_POWER,
    R_EXP_EXP,
    R_EXP_HI,
    R_EXP_LO,
    R_IMP_EXP,
    R_IMP_HI,
    R_IMP_LO,
    R_POWER,
    R_POWER_EXP,
    R_PRESENT,
    new_reading,
)
from edge.regmap import RegmapInvalid, RegmapMismatch, compile_map, decode


def maps_dir():
    here = __file__.replace("\\", "/").rsplit("/", 1)[0] if "/" in __file__ else "."
    return here + "/../../hw/maps/"


def load(name):
    with open(maps_dir() + name + ".json") as f:
        return compile_map(json.loads(f.read()))


def block(rmap):
    return [0] * rmap.count


def put(rmap, words, addr, value):
    words[addr - rmap.start] = value & 0xFFFF


def put32(rmap, words, addr, value):
    put(rmap, words, addr, value >> 16)
    put(rmap, words, addr + 1, value)


def f32_words(bits):
    return bits >> 16, bits & 0xFFFF


def raises(cls, fn, *args):
    try:
        fn(*args)
    except cls as e:
        return e
    raise AssertionError("expected " + cls.__name__)


def meter203():
    m = load("sunspec_meter_203")
    w = block(m)
    put(m, w, 40070, 203)
    put(m, w, 40071, 105)
    return m, w


def test_meter_203_scale_factors_and_halves():
    m, w = meter203()
    assert (m.function, m.start, m.count) == (3, 40070, 55)
    put(m, w, 40088, -1234)  # W
    put(m, w, 40092, -1)  # W_SF
    put32(m, w, 40108, 0x00012345)  # TotWhExp
    put32(m, w, 40116, 0xFEDCBA98)  # TotWhImp: above 2**30, must arrive as halves
    put(m, w, 40124, 2)  # TotWh_SF
    r = new_reading()
    assert decode(m, w, 0, r) == HAS_POWER | HAS_IMPORT | HAS_EXPORT
    assert r[R_PRESENT] == 7
    assert (r[R_POWER], r[R_POWER_EXP]) == (-1234, -1)
    assert (r[R_IMP_HI], r[R_IMP_LO], r[R_IMP_EXP]) == (0xFEDC, 0xBA98, 2)
    assert (r[R_EXP_HI], r[R_EXP_LO], r[R_EXP_EXP]) == (0x0001, 0x2345, 2)


def test_meter_203_not_implemented_markers_clear_bits():
    m, w = meter203()
    put(m, w, 40088, 0x8000)  # W not implemented
    put32(m, w, 40108, 0)  # acc32 0: not accumulated
    put32(m, w, 40116, 5)
    put(m, w, 40124, 0)
    r = new_reading()
    r[R_POWER] = 999
    assert decode(m, w, 0, r) == HAS_IMPORT
    put(m, w, 40124, 0x8000)  # TotWh_SF not implemented: no energy at all
    put(m, w, 40088, 10)
    assert decode(m, w, 0, r) == HAS_POWER
    put(m, w, 40092, 11)  # W_SF outside -10..10
    assert decode(m, w, 0, r) == 0
    assert r[R_PRESENT] == 0


def test_meter_203_identity_check():
    m, w = meter203()
    put(m, w, 40070, 201)
    e = raises(RegmapMismatch, decode, m, w, 0, new_reading())
    assert e.kind == "regmap_mismatch" and "40070" in str(e)


def test_inverter_103_production_is_export_and_negative_power():
    m = load("sunspec_inverter_103")
    w = block(m)
    put(m, w, 40070, 103)
    put(m, w, 40071, 50)
    put(m, w, 40084, 4500)  # W produced
    put(m, w, 40085, 0)
    put32(m, w, 40094, 123456789)  # WH
    put(m, w, 40096, 1)
    r = new_reading()
    assert decode(m, w, 0, r) == HAS_POWER | HAS_EXPORT
    assert (r[R_POWER], r[R_POWER_EXP]) == (-4500, 0)
    assert ((r[R_EXP_HI] << 16) | r[R_EXP_LO], r[R_EXP_EXP]) == (123456789, 1)


def test_decode_at_a_word_offset():
    m = load("sunspec_inverter_103")
    w = [0] * (m.count + 3)
    w[3] = 103
    w[4] = 50
    w[3 + 14] = 7
    w[3 + 24] = 0
    w[3 + 25] = 9
    r = new_reading()
    assert decode(m, w, 3, r) == HAS_POWER | HAS_EXPORT
    assert r[R_POWER] == -7 and r[R_EXP_LO] == 9


# float32 bit patterns (IEEE 754 binary32), written out so MicroPython needs no struct.pack('>f').
F_1234_567 = 0x449A5225  # 1234.5670166015625 (nearest float32 to 1234.567)
F_NEG_2300_5 = 0xC50FC800  # -2300.5
F_0_0005 = 0x3A03126F  # 0.0005000000237 kWh = 0.5000000237 Wh -> rounds to 1 Wh
F_NAN = 0x7FC00000
F_INF = 0x7F800000
F_NEG_1 = 0xBF800000
F_9999999_0 = 0x4B18967F  # 9999999.0 kWh: 9.999999e9 Wh > 2**32 -> one decimal bump
F_HUGE = 0x7F000000  # 1.7e38


def sdm(power, imp, exp_):
    m = load("eastron_sdm630")
    w = block(m)
    for addr, bits in ((0x34, power), (0x48, imp), (0x4A, exp_)):
        hi, lo = f32_words(bits)
        put(m, w, addr, hi)
        put(m, w, addr + 1, lo)
    return m, w


def test_sdm630_float32_to_integer_counters():
    m, w = sdm(F_NEG_2300_5, F_1234_567, F_0_0005)
    assert (m.function, m.start, m.count) == (4, 0x34, 24)
    r = new_reading()
    assert decode(m, w, 0, r) == HAS_POWER | HAS_IMPORT | HAS_EXPORT
    assert (r[R_POWER], r[R_POWER_EXP]) == (-2301, 0)  # -2300.5 W, half away from zero
    assert ((r[R_IMP_HI] << 16) | r[R_IMP_LO], r[R_IMP_EXP]) == (1234567, 0)
    assert ((r[R_EXP_HI] << 16) | r[R_EXP_LO], r[R_EXP_EXP]) == (1, 0)


def test_sdm630_large_counter_bumps_the_exponent():
    m, w = sdm(0, F_9999999_0, 0)
    r = new_reading()
    decode(m, w, 0, r)
    # 9999999.0 kWh = 9999999000 Wh > 2**32-1 -> 999999900 * 10**1
    assert ((r[R_IMP_HI] << 16) | r[R_IMP_LO], r[R_IMP_EXP]) == (999999900, 1)
    assert ((r[R_EXP_HI] << 16) | r[R_EXP_LO], r[R_EXP_EXP]) == (0, 0)
    assert r[R_POWER] == 0


def test_sdm630_nan_inf_negative_and_huge_are_absent():
    r = new_reading()
    m, w = sdm(F_NAN, F_INF, F_NEG_1)
    assert decode(m, w, 0, r) == 0
    m, w = sdm(F_HUGE, F_HUGE, 0x80000000)  # -0.0 export is still zero
    assert decode(m, w, 0, r) == HAS_EXPORT


def test_word_order_little_and_int32_power():
    m = compile_map(
        {
            "name": "swapped",
            "function": 3,
            "start": 100,
            "count": 6,
            "word_order": "little",
            "quantities": {
                "power": {"addr": 100, "type": "int32", "exp": -1},
                "import": {"addr": 102, "type": "uint32", "exp": 1},
                "export": {"addr": 104, "type": "float32", "unit_exp": 3, "exp": -1},
            },
        }
    )
    neg = (-123456789) & 0xFFFFFFFF
    hi, lo = f32_words(F_1234_567)
    w = [neg & 0xFFFF, neg >> 16, 0x5678, 0x1234, lo, hi]
    r = new_reading()
    assert decode(m, w, 0, r) == 7
    assert (r[R_POWER], r[R_POWER_EXP]) == (-123456789, -1)
    assert (r[R_IMP_HI], r[R_IMP_LO], r[R_IMP_EXP]) == (0x1234, 0x5678, 1)
    # 1234.5670166 kWh in 0.1 Wh units = 12345670.17 -> 12345670
    assert ((r[R_EXP_HI] << 16) | r[R_EXP_LO], r[R_EXP_EXP]) == (12345670, -1)
    w[0] = 0
    w[1] = 0x8000  # int32 not implemented
    w[2] = 0xFFFF
    w[3] = 0xFFFF  # uint32 not implemented
    assert decode(m, w, 0, r) == HAS_EXPORT


def test_power_beyond_a_small_int_is_absent():
    m = compile_map({"name": "u32", "function": 4, "start": 0, "count": 2,
                     "quantities": {"power": {"addr": 0, "type": "uint32"}}})
    r = new_reading()
    assert decode(m, [0x3FFF, 0xFFFF], 0, r) == HAS_POWER
    assert r[R_POWER] == (1 << 30) - 1
    assert decode(m, [0x4000, 0], 0, r) == 0


def test_invalid_maps_are_rejected_with_a_typed_error():
    good = {"name": "x", "function": 3, "start": 0, "count": 2,
            "quantities": {"power": {"addr": 0, "type": "int16"}}}
    compile_map(good)
    bad = [
        [],
        {"function": 3, "start": 0, "count": 2, "quantities": good["quantities"]},
        {"name": "x", "function": 6, "start": 0, "count": 2, "quantities": good["quantities"]},
        {"name": "x", "function": 3, "start": 0, "count": 126, "quantities": good["quantities"]},
        {"name": "x", "function": 3, "start": 65535, "count": 2, "quantities": good["quantities"]},
        {"name": "x", "function": 3, "start": 0, "count": 2, "quantities": {}},
        {"name": "x", "function": 3, "start": 0, "count": 2, "word_order": "middle",
         "quantities": good["quantities"]},
        {"name": "x", "function": 3, "start": 0, "count": 2, "quantities": {"power": {"addr": 1, "type": "int32"}}},
        {"name": "x", "function": 3, "start": 0, "count": 2, "quantities": {"power": {"addr": 0, "type": "acc32"}}},
        {"name": "x", "function": 3, "start": 0, "count": 2, "quantities": {"import": {"addr": 0, "type": "int16"}}},
        {"name": "x", "function": 3, "start": 0, "count": 2, "quantities": {"power": {"addr": 0, "type": "f64"}}},
        {"name": "x", "function": 3, "start": 0, "count": 2,
         "quantities": {"power": {"addr": 0, "type": "float32", "unit_exp": 5, "exp": 0}}},
        {"name": "x", "function": 3, "start": 0, "count": 2,
         "quantities": {"power": {"addr": 0, "type": "int16", "sign": 0}}},
        {"name": "x", "function": 3, "start": 0, "count": 2,
         "quantities": {"power": {"addr": 0, "type": "int16", "sf_addr": 7}}},
        {"name": "x", "function": 3, "start": 0, "count": 2, "quantities": good["quantities"],
         "checks": [{"addr": 0, "value": 70000}]},
        {"name": "x", "function": 3, "start": 0, "count": 2,
         "quantities": {"power": {"addr": 0, "type": "int16"}, "imports": {"addr": 1, "type": "uint16"}}},
    ]
    for obj in bad:
        e = raises(RegmapInvalid, compile_map, obj)
        assert e.kind == "regmap_invalid"
