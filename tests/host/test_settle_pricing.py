"""Imbalance price curve, dated parameters, the 2026-10 cap rule and negawatt fees."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from host_tools.tso import pricing
from host_tools.tso.pricing import Market, PriceError

CFG = pricing.load_prices()
CURVE = [[1000, 0], [800, "D"], [300, "C"]]


def market(days, normal=1000, margin=2000, spot=1000):
    days = np.asarray(days, "datetime64[D]")
    shape = (len(days), 48)
    return Market(days, np.broadcast_to(normal, shape), np.broadcast_to(margin, shape),
                  np.broadcast_to(spot, shape))


def test_configured_defaults_and_sources():
    p1 = pricing.period_of(CFG, "2025-01-15")
    assert (p1["C_sen"], p1["D_sen"], p1["cap_rule"]) == (20000, 4500, None)
    assert pricing.period_of(CFG, "2026-09-30") is p1
    p2 = pricing.period_of(CFG, "2026-10-01")
    assert (p2["C_sen"], p2["D_sen"]) == (30000, 5000)
    assert p2["cap_rule"]["lowered_C_sen"] == 10000
    for p in (p1, p2):
        assert p["C_source"] and p["D_source"]
    assert "source" in p2["cap_rule"]
    with pytest.raises(PriceError) as e:
        pricing.period_of(CFG, "2022-03-31")
    assert e.value.kind == "tso_price"


def test_curve_points():
    m = np.array([2500, 1000, 900, 800, 550, 300, 100, -50])
    got = pricing.scarcity_curve(m, 20000, 4500, CURVE)
    # 9 %: half way 0 -> 45 = 22.50; 5.5 %: half way 45 -> 200 = 122.50
    assert got.tolist() == [0, 0, 2250, 4500, 12250, 20000, 20000, 20000]
    got = pricing.scarcity_curve(m, 30000, 5000, CURVE)
    assert got.tolist() == [0, 0, 2500, 5000, 17500, 30000, 30000, 30000]


def test_interpolation_rounds_half_up():
    # 7.99 %: 45 + 155 * 1/500 = 45.31 yen exactly 4531 sen; 9.99 %: 45 * 1/200 = 0.225 -> 23
    got = pricing.scarcity_curve(np.array([799, 999]), 20000, 4500, CURVE)
    assert got.tolist() == [4531, 23]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-500, 3000), st.integers(0, 40000)), min_size=1,
                max_size=40),
       st.integers(100, 40000), st.integers(0, 20000), st.sampled_from(["price", "scarcity"]))
def test_vectorised_price_equals_scalar_oracle(rows, c, d, cap_to):
    m = np.array([r[0] for r in rows])
    normal = np.array([r[1] for r in rows])
    s = pricing.scarcity_curve(m, c, d, CURVE)
    price = np.maximum(normal, s)
    if cap_to == "price":
        price = np.minimum(price, c)
    want = [pricing.price_point(int(n), int(mm), c, d, CURVE, cap_to) for n, mm in
            zip(normal, m)]
    assert price.tolist() == want


def test_price_is_higher_of_normal_and_scarcity_capped_at_c():
    days = ["2025-07-01"]
    margin = np.full((1, 48), 2000)
    margin[0, 10] = 800   # scarcity 45 yen > normal 10 yen
    margin[0, 11] = 900   # scarcity 22.50 > normal 10
    margin[0, 12] = 100   # scarcity = C
    normal = np.full((1, 48), 1000)
    normal[0, 13] = 50000  # a normal price above C is capped at C
    mk = Market(days, normal, margin, np.full((1, 48), 1000))
    p = pricing.imbalance_prices(mk, np.array(days, "datetime64[D]"), CFG)
    assert p.price[0, 0] == 1000 and p.adder[0, 0] == 0
    assert p.price[0, 10] == 4500 and p.adder[0, 10] == 3500
    assert p.price[0, 11] == 2250
    assert p.price[0, 12] == 20000
    assert p.price[0, 13] == 20000 and p.adder[0, 13] == -30000
    assert (p.price == p.normal + p.adder).all()
    cfg = pricing.load_prices(overrides={"imbalance": {"cap_applies_to": "scarcity"}})
    assert pricing.imbalance_prices(mk, np.array(days, "datetime64[D]"), cfg).price[0, 13] \
        == 50000


def test_parameters_follow_the_slot_date():
    days = np.array(["2026-09-30", "2026-10-01"], "datetime64[D]")
    hist = np.arange(np.datetime64("2026-09-23"), np.datetime64("2026-10-02"))
    mk = market(hist, margin=100)  # below 3 %: the price is C
    p = pricing.imbalance_prices(mk, days, CFG)
    assert p.price[:, 0].tolist() == [20000, 30000]
    assert p.lowered.tolist() == [False, False]


@pytest.mark.parametrize("spikes,lowered", [(29, False), (30, True)])
def test_cap_rule_after_30_spike_slots_in_previous_7_days(spikes, lowered):
    hist = np.arange(np.datetime64("2026-10-01"), np.datetime64("2026-10-09"))
    spot = np.full((len(hist), 48), 1000)
    flat = spot[:7].reshape(-1)
    flat[np.linspace(0, 7 * 48 - 1, spikes).astype(int)] = 20000  # exactly 200 yen counts
    spot[:7] = flat.reshape(7, 48)
    spot[7] = 50000  # the settled day's own spot prices do not count
    mk = Market(hist, np.full((8, 48), 1000), np.full((8, 48), 100), spot)
    p = pricing.imbalance_prices(mk, hist[7:], CFG)
    assert p.lowered.tolist() == [lowered]
    assert p.price[0, 0] == (10000 if lowered else 30000)
    assert p.cap[0, 0] == p.price[0, 0]


def test_cap_rule_needs_the_previous_week_of_spot_prices():
    hist = np.arange(np.datetime64("2026-10-05"), np.datetime64("2026-10-09"))
    with pytest.raises(PriceError) as e:
        pricing.imbalance_prices(market(hist), hist[-1:], CFG)
    assert e.value.problems[0].kind == "spot_missing"
    assert "2026-10-01" in e.value.problems[0].offenders


def test_missing_market_slots_are_named():
    mk = Market.from_columns({"date": np.array(["2025-05-01"] * 47, "datetime64[D]"),
                              "slot": np.arange(1, 48), "normal_price_sen": np.ones(47),
                              "reserve_margin_bp": np.ones(47), "spot_price_sen": np.ones(47)})
    with pytest.raises(PriceError) as e:
        pricing.imbalance_prices(mk, np.array(["2025-05-01", "2025-05-02"], "datetime64[D]"),
                                 CFG)
    assert e.value.problems[0].offenders == ["2025-05-01", "2025-05-02"]


def test_market_file_round_trip_and_damage(tmp_path):
    from host_tools.tso.market_data import generate_market
    mk = generate_market(np.array(["2026-10-10"], "datetime64[D]"), seed=3)
    assert len(mk.days) == 8 and (mk.margin_bp.min() < 300)
    for ext in ("csv", "parquet"):
        path = str(tmp_path / ("market." + ext))
        pricing.save_market(mk, path)
        back = pricing.load_market(path)
        assert (back.spot_sen == mk.spot_sen).all() and (back.days == mk.days).all()
    bad = tmp_path / "bad.csv"
    bad.write_text("date,slot,normal_price_sen\n2026-01-01,1,5\n")
    with pytest.raises(PriceError):
        pricing.load_market(str(bad))
    bad.write_text("date,slot,normal_price_sen,reserve_margin_bp,spot_price_sen\n"
                   "2026-01-01,1,5,5,5\n2026-01-01,1,5,5,5\n")
    with pytest.raises(PriceError) as e:
        pricing.load_market(str(bad))
    assert e.value.problems[0].kind == "market_duplicate"
    bad.write_text("date,slot,normal_price_sen,reserve_margin_bp,spot_price_sen\n"
                   "2026-01-01,49,5,5,5\n")
    with pytest.raises(PriceError):
        pricing.load_market(str(bad))


@pytest.mark.parametrize("tariff,date,retail,wheeling,fee", [
    ("tokyo_high_voltage", "2025-08-01", 1894, 184, 1710),
    ("tokyo_high_voltage", "2025-11-01", 1793, 184, 1609),
    ("tokyo_extra_high_20kv", "2025-07-01", 1829, 91, 1738),
    ("tokyo_extra_high_20kv", "2025-06-30", 1734, 91, 1643),
])
def test_negawatt_fee_seed_004_tokyo(tariff, date, retail, wheeling, fee):
    t = CFG["negawatt"]["tariffs"][tariff]
    season = t["summer"] if date[5:7] in ("07", "08", "09") else t["other"]
    assert (season["retail_sen"], season["wheeling_sen"]) == (retail, wheeling)
    assert pricing.negawatt_fee(CFG, tariff, date) == fee == retail - wheeling


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["csv", "parquet"]))
def test_damaged_market_files_fail_only_with_price_error(tmp_path_factory, blob, ext):
    path = tmp_path_factory.mktemp("m") / ("market." + ext)
    header = b"date,slot,normal_price_sen,reserve_margin_bp,spot_price_sen\n"
    path.write_bytes((header if ext == "csv" and blob[:1] != b"!" else b"") + blob)
    try:
        mk = pricing.load_market(str(path))
    except PriceError as exc:
        assert exc.kind == "tso_price"
        return
    assert mk.present.sum() <= len(blob)  # whatever parsed is a consistent Market
