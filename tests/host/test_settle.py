"""Imbalance charges, negawatt fees and `smeter settle` end to end."""
import argparse

import numpy as np
import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings, strategies as st

from host_tools.commands import gen_tso_data as gen_tso_data_cmd, settle as settle_cmd
from host_tools.tso import config, correction, generate, pricing, settlement
from host_tools.tso.market_data import generate_market

RULES = config.load_rules()
CFG = pricing.load_prices()


def smeter(*argv):
    parser = argparse.ArgumentParser(prog="smeter")
    sub = parser.add_subparsers()
    settle_cmd.register(sub)
    gen_tso_data_cmd.register(sub)
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture(scope="module")
def day():
    data = generate.generate(300, days=8, seed=5)
    results = correction.correct(data, RULES, 2)
    mk = generate_market(data.plan_days(), seed=2)
    prices = pricing.imbalance_prices(mk, [r.day for r in results], CFG)
    return data, results, prices


def test_signs_shortfall_pays_surplus_receives():
    imb = np.array([[100, -100], [100, -100]])
    sf = settlement.shortfall(imb, np.array([True, False]))
    assert sf.tolist() == [[100, -100], [-100, 100]]
    # 100 Wh at 12.34 yen/kWh = 1.234 yen -> 123 sen; -100 Wh -> -123.4 -> -123
    assert settlement.charges(sf, np.array([1234, 1234])).tolist() == [[123, -123], [-123, 123]]
    # half up: 50 Wh x 1 sen/kWh = 0.05 sen -> 0; 500 Wh -> 0.5 -> 1; -500 Wh -> -0.5 -> 0
    assert settlement.charges(np.array([[50, 500, -500]]), np.array([1, 1, 1])).tolist() \
        == [[0, 1, 0]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(-10**12, 10**12), min_size=48, max_size=48), min_size=1,
                max_size=4),
       st.lists(st.integers(-10**5, 10**5), min_size=48, max_size=48))
def test_charges_equal_exact_integer_oracle(rows, price):
    got = settlement.charges(np.array(rows, np.int64), np.array(price, np.int64))
    assert got.tolist() == settlement.charges_loop(rows, price)


def test_charges_refuse_int64_overflow():
    with pytest.raises(settlement.SettlementError):
        settlement.charges(np.array([[2**50]]), np.array([2**20]))


def test_day_settlement_adds_up(day):
    data, results, prices = day
    (ds,) = settlement.settle(data, results, prices)
    r = results[0]
    is_dem = data.bgs["kind"].astype(str) == "demand"
    assert (ds.shortfall_wh[is_dem] == r.imbalance[is_dem]).all()
    assert (ds.shortfall_wh[~is_dem] == -r.imbalance[~is_dem]).all()
    assert (ds.charge_sen == np.array(settlement.charges_loop(
        ds.shortfall_wh.tolist(), prices.price[0].tolist()))).all()
    assert (ds.day_charge_sen == ds.charge_sen.sum(axis=1)).all()
    assert (ds.price_sen >= prices.normal[0]).all()
    assert prices.adder[0].max() > 0  # the synthetic event day dips below 10 %


def test_negawatt_vectorised_equals_loop(day):
    data, results, _ = day
    inp, _, _ = correction.prepare_day(data, len(data.days) - 1, RULES, 2)
    vol = settlement.negawatt_volume(inp)
    fees = settlement.negawatt_fees(vol, 1710)
    lv, lf = settlement.negawatt_loop(inp, 1710)
    assert (vol == lv).all() and (fees == lf).all()
    assert vol.min() >= 0 and vol.sum() > 0
    # never more than the delivered adjustment of a resource
    delivered = correction.delivered_micro(inp)
    assert (vol * correction.MICRO <= np.maximum(delivered, 0) + correction.MICRO // 2).all()


def test_negawatt_seed_example_volume():
    # One demand site importing 10 kWh, cut to 4 kWh: 6 kWh negawatt; Tokyo HV summer 17.10
    inp = correction.Inputs(
        receiving=np.array([[-4000] + [0] * 47]), meter=np.array([[-4000] + [0] * 47]),
        baseline=np.array([[-10000] + [0] * 47]), base_ge=np.zeros((1, 48), bool),
        loss_ppm=np.array([0]), is_device=np.array([False]),
        events=np.array([[True] + [False] * 47]), pair=np.array([0]),
        pair_has_gen=np.array([False]))
    vol = settlement.negawatt_volume(inp)
    assert vol[0, 0] == 6000
    assert settlement.negawatt_fees(vol, pricing.negawatt_fee(CFG, "tokyo_high_voltage",
                                                              "2025-08-01")).tolist() == [10260]


def test_settle_command_end_to_end(tmp_path, capsys):
    data = tmp_path / "data"
    assert smeter("gen-tso-data", "--resources", 300, "--out", data, "--seed", 3) == 0
    (data / "market.parquet").unlink()  # a data set that came without market data
    assert smeter("settle", "--data", data) == 2
    assert "no market data" in capsys.readouterr().err
    out = tmp_path / "settle.csv"
    neg = tmp_path / "neg.csv"
    assert smeter("settle", "--data", data, "--gen-market", "--out", out,
                  "--negawatt", "--negawatt-out", neg) == 0
    cap = capsys.readouterr()
    assert "charge > 0: BG pays the TSO" in cap.out and "negawatt:" in cap.out
    table = pacsv.read_csv(str(out)).to_pydict()
    slot = np.array(table["slot"])
    charge = np.array(table["charge_sen"])
    bgs = sorted(set(table["bg_id"]))
    assert len(slot) == len(bgs) * 49
    for b in bgs:
        sel = np.array(table["bg_id"]) == b
        assert charge[sel & (slot == 0)].sum() == charge[sel & (slot > 0)].sum()
    assert all(p is None for p, s in zip(table["price_sen_per_kwh"], slot) if s == 0)
    nt = pacsv.read_csv(str(neg)).to_pydict()
    assert len(nt["resource_id"]) == 300 and set(nt["unit_sen_per_kwh"]) == {1609}
    assert smeter("settle", "--data", data, "--negawatt", "nowhere") == 2
    assert smeter("settle", "--data", data, "--out", tmp_path / "x.txt") == 2


def test_settle_command_reports_missing_prices(tmp_path, capsys):
    data = tmp_path / "data"
    assert smeter("gen-tso-data", "--resources", 50, "--out", data) == 0
    (data / "market.parquet").unlink()
    mk = generate_market(np.array(["2030-01-01"], "datetime64[D]"))
    pricing.save_market(mk, str(data / "market.csv"))
    assert smeter("settle", "--data", data) == 2
    assert "market_missing" in capsys.readouterr().err
