"""The exact reference of `smeter verify` (host_tools/verify/reference.py): hand-computed
cases, and hypothesis properties against closed-form integrals written here."""
import bisect
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from host_tools.trace import TraceError
from host_tools.verify import reference as R

DAY0 = "2026-05-15T00:00:00+09:00"
T0 = R.parse_samples(["ts,power_w", DAY0 + ",0"]).t[0]  # edge ms of 2026-05-15 00:00 JST
K0 = T0 // R.SLOT_MS  # absolute slot 1 of that day


def ts(sec):
    """ISO time sec seconds after 2026-05-15 00:00 JST (sec may carry ms decimals)."""
    ms = round(Fraction(sec) * 1000)
    return str(1778770800000 + ms)  # epoch ms of DAY0


def trace(header, rows):
    return R.parse_samples([header] + ["%s,%s" % (ts(t), ",".join(map(str, v))) for t, *v in rows])


def ref(header, rows, gap_s=3600):
    return R.reference(trace(header, rows), gap_s * 1000)


def test_epoch_ms_and_iso_agree():
    a = R.parse_samples(["ts,power_w", ts(0) + ",1", "2026-05-15T00:00:01.5+09:00,1"])
    assert a.t == [T0, T0 + 1500]


def test_boundary_split_hand_computed():
    # 00:28:20 0 W -> 00:31:40 2000 W: 1000 W at 00:30, triangle then trapezoid.
    r = ref("ts,power_w", [(1700, 0), (1900, 2000)])
    assert r[K0].imp == Fraction(50000, 3600) == Fraction(125, 9)
    assert r[K0 + 1].imp == Fraction(150000, 3600) == Fraction(125, 3)
    assert r[K0].exp == 0 and r[K0 + 1].exp == 0
    assert r[K0].cover_imp == 100000 and r[K0 + 1].cover_imp == 100000


def test_zero_crossing_hand_computed():
    # 300 W -> -100 W over 8 s crosses zero at 6 s: import 300*6/2 Ws, export 100*2/2 Ws.
    r = ref("ts,power_w", [(60, 300), (68, -100)])
    assert r[K0].imp == Fraction(900, 3600) and r[K0].exp == Fraction(100, 3600)
    # Crossing and boundary in one segment: 100 W at 00:29:50 -> -300 W at 00:30:10.
    r = ref("ts,power_w", [(1790, 100), (1810, -300)])
    assert r[K0].imp == Fraction(250, 3600)  # 0..5 s, triangle to zero
    assert r[K0].exp == Fraction(250, 3600)  # 5..10 s, zero to -100 W at the boundary
    assert r[K0 + 1].exp == Fraction(2000, 3600) and r[K0 + 1].imp == 0


def test_decimals_are_exact():
    r = ref("ts,power_w", [(0, "0.001"), ("0.001", "0.003")])
    assert r[K0].imp == Fraction(2, 1000) * Fraction(1, 1000) / 3600  # (0.001 + 0.003) / 2 W over 1 ms
    r = ref("ts,power_w", [(0, "1e3"), (36, "1000.0")])
    assert r[K0].imp == 10


def test_register_delta_and_split():
    r = ref("ts,import_wh,export_wh", [(1740, "100", "7"), (1860, "106", "7.5")])
    assert r[K0].imp == 3 and r[K0 + 1].imp == 3  # split by time at the boundary
    assert r[K0].exp == Fraction(1, 4) and r[K0 + 1].exp == Fraction(1, 4)
    r = ref("ts,export_wh", [(0, 4294967), (1800, "4294967.296"), (3600, 4295000)])
    assert r[K0].exp == Fraction(296, 1000)  # no 32-bit wrap in the reference
    assert r[K0 + 1].exp == Fraction(32704, 1000)
    assert r[K0].imp is None  # no source for import


def test_register_wins_over_power_per_direction():
    s = trace("ts,power_w,export_wh", [(0, -3600, 10), (1800, -3600, 1000)])
    assert R.sources(s) == {"imp": "power", "exp": "register"}
    r = R.reference(s, 3600000)
    assert r[K0].exp == 990 and r[K0].imp == 0


def test_backwards_register_is_noted_and_not_counted():
    r = ref("ts,import_wh", [(0, 100), (60, 50), (120, 51)])
    assert r[K0].imp == 1
    assert any("went backwards at line 3" in n for n in r[K0].notes)


def test_long_gap_is_not_integrated():
    r = ref("ts,power_w", [(0, 1000), (30, 1000), (200, 1000), (230, 1000)], gap_s=60)
    assert r[K0].imp == Fraction(2 * 30 * 1000, 3600)
    assert r[K0].cover_imp == 60000


def test_bad_traces_raise_trace_errors():
    for lines in (["ts,power_w", ts(0) + ",x"], ["ts,power_w", ts(1) + ",1", ts(1) + ",2"],
                  ["ts,volts", ts(0) + ",1"], ["ts,import_wh", ts(0) + ",-1"],
                  ["ts,power_w", "2026-05-15T00:00:00,1"], ["ts,power_w", ts(0) + ",nan"]):
        try:
            R.parse_samples(lines)
        except TraceError:
            continue
        raise AssertionError("accepted %r" % (lines,))


def test_slot_csv_reference(tmp_path):
    p = tmp_path / "ref.csv"
    p.write_text("slot_start,slot,import_wh,export_wh,flags\n"
                 "2026-05-15T00:00:00+09:00,1,1.5,0,\n"
                 "2026-05-15T00:30:00+09:00,2,,,missing\n")
    assert R.is_slot_csv(str(p))
    slots, dirs = R.read_slot_csv(str(p))
    assert dirs == ["imp", "exp"]
    assert slots[K0].imp == Fraction(3, 2) and slots[K0].cover_imp == R.SLOT_MS
    assert slots[K0 + 1].imp is None and "missing" in slots[K0 + 1].notes[0]
    p.write_text("slot_start,import_wh\n2026-05-15T00:10:00+09:00,1\n")
    try:
        R.read_slot_csv(str(p))
        raise AssertionError("accepted a slot_start inside a slot")
    except TraceError as e:
        assert "start of a half hour" in str(e)


# ---- properties ------------------------------------------------------------------------

powers = st.integers(-5000000, 5000000)  # mW
steps = st.integers(1, 900000)  # ms between samples, up to half a slot


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 3 * R.SLOT_MS), st.lists(st.tuples(steps, powers), min_size=2, max_size=40))
def test_power_slot_sums_equal_the_exact_integral(start, pts):
    t = start
    rows = []
    for dt, p in pts:
        t += dt
        rows.append((Fraction(t, 1000), "%d.%03d" % (p // 1000, p % 1000) if p >= 0
                     else "-%d.%03d" % (-p // 1000, -p % 1000)))
    r = ref("ts,power_w", rows, gap_s=10 ** 6)
    net = pos = Fraction(0)
    for (t0, _), (t1, _), (_, p0), (_, p1) in zip(rows, rows[1:], pts, pts[1:]):
        dt = (t1 - t0) * 1000  # ms
        a, b = Fraction(p0, 1000), Fraction(p1, 1000)
        net += (a + b) * dt / 2 / R.WH_MS
        if a >= 0 and b >= 0:
            pos += (a + b) * dt / 2 / R.WH_MS
        elif a > 0 or b > 0:  # opposite signs: the positive triangle
            hi, lo = max(a, b), min(a, b)
            pos += hi * hi / (hi - lo) * dt / 2 / R.WH_MS
    assert sum(x.imp for x in r.values()) - sum(x.exp for x in r.values()) == net
    assert sum(x.imp for x in r.values()) == pos
    assert all(x.imp >= 0 and x.exp >= 0 and x.cover_imp <= R.SLOT_MS for x in r.values())
    assert sum(x.cover_imp for x in r.values()) == (rows[-1][0] - rows[0][0]) * 1000


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 3 * R.SLOT_MS),
       st.lists(st.tuples(st.integers(1, 2 * R.SLOT_MS), st.integers(0, 10 ** 7)),
                min_size=2, max_size=30))
def test_register_slots_equal_the_interpolated_counter(start, pts):
    t, v = start, 10 ** 6
    tt, vv = [], []
    for dt, dv in pts:
        t += dt
        v += dv
        tt.append(t)
        vv.append(v)  # mWh
    rows = [(Fraction(a, 1000), "%d.%03d" % (b // 1000, b % 1000)) for a, b in zip(tt, vv)]
    r = ref("ts,import_wh", rows, gap_s=10 ** 6)

    def counter(x):  # the linearly interpolated counter at edge ms x (Wh)
        i = bisect.bisect_right(tt, x) - 1
        if i == len(tt) - 1:
            return Fraction(vv[-1], 1000)
        return Fraction(vv[i], 1000) + Fraction(vv[i + 1] - vv[i], 1000) * (x - tt[i]) / (tt[i + 1] - tt[i])

    assert sum(x.imp for x in r.values()) == Fraction(vv[-1] - vv[0], 1000)
    for k, x in r.items():
        a = max(tt[0], (k - K0) * R.SLOT_MS)  # slot bounds in ms after DAY0
        b = min(tt[-1], (k - K0 + 1) * R.SLOT_MS)
        assert x.imp == counter(b) - counter(a)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789-.:+TZe,n \t\"x_\x00\r\n", max_size=40), max_size=6),
       st.sampled_from(["ts,power_w", "ts,import_wh,export_wh", "power_w,ts", "ts"]))
def test_fuzzed_traces_fail_only_with_trace_errors(lines, header):
    try:
        s = R.parse_samples([header] + lines)
    except TraceError:
        return
    R.reference(s, 60000)  # whatever parsed must integrate without error


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="0123456789-.:+TZ,n \"\x00", max_size=40), max_size=5))
def test_fuzzed_slot_csvs_fail_only_with_trace_errors(tmp_path_factory, lines):
    p = tmp_path_factory.mktemp("slotcsv") / "s.csv"
    p.write_text("\n".join(["slot_start,import_wh,export_wh,flags"] + lines) + "\n")
    try:
        R.read_slot_csv(str(p))
    except TraceError:
        pass
