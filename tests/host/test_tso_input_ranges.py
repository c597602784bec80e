"""Every numeric TSO input is range-checked, and a bad cell is named by resource/row, not only
by file and column: in a 100,000-row file the column alone does not find it."""
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from host_tools.tso import config, generate, model, validate
from host_tools.tso.config import ConfigError
from host_tools.tso.errors import LoadError
from test_tso_cli import smeter
from test_tso_validate import RULES, dataset, kinds


def test_a_negative_or_huge_bg_plan_is_refused_naming_bg_date_and_slot():
    d = dataset()
    d.bg_plans["plan_wh"][3] = -20000  # D, slot 4
    d.bg_plans["plan_wh"][48 + 10] = 10**13  # G, slot 11
    probs = kinds(validate.check(d, RULES))
    assert probs["bad_plan_value"] == ["D@2026-04-08#4: -20000", "G@2026-04-08#11: %d" % 10**13]
    d.bg_plans["plan_wh"][3] = 0
    d.bg_plans["plan_wh"][48 + 10] = RULES["correction"]["max_bg_plan_wh_per_slot"]
    assert "bad_plan_value" not in kinds(validate.check(d, RULES))


def _data_dir(tmp_path, fmt):
    data = generate.generate(30, days=3, seed=5)
    out = tmp_path / "data"
    data.save(str(out), fmt)
    return data, out


@pytest.mark.parametrize("cell", ["", "nan", "NaN", "12.5", "x"])
def test_a_bad_csv_cell_is_named_by_resource_date_and_row(tmp_path, cell):
    data, out = _data_dir(tmp_path, "csv")
    path = out / "receiving.csv"
    table = pacsv.read_csv(str(path), convert_options=pacsv.ConvertOptions(
        column_types={"s29": pa.string()}))
    rows = table.column("s29").to_pylist()
    rows[41] = cell
    table = table.set_column(table.column_names.index("s29"), "s29", pa.array(rows, pa.string()))
    pacsv.write_csv(table, str(path))
    rid = table.column("resource_id")[41].as_py()
    date = table.column("date")[41].as_py()
    with pytest.raises(LoadError) as e:
        model.load(str(out))
    msg = str(e.value)
    assert "receiving.csv: column s29: 1 value(s)" in msg
    assert "%s@%s (row 42)" % (rid, date) in msg and "\n" not in msg


def test_a_nan_or_null_in_parquet_is_named_too(tmp_path):
    data, out = _data_dir(tmp_path, "parquet")
    path = str(out / "receiving.parquet")
    table = pq.read_table(path)
    col = table.column("s05").to_numpy().astype(float)
    col[7] = float("nan")
    pq.write_table(table.set_column(table.column_names.index("s05"), "s05", pa.array(col)), path)
    with pytest.raises(LoadError) as e:
        model.load(str(out))
    assert "column s05" in str(e.value) and "(row 8): nan" in str(e.value)
    ints = table.column("s05").to_pylist()
    ints[9] = None
    pq.write_table(table.set_column(table.column_names.index("s05"), "s05",
                                    pa.array(ints, pa.int64())), path)
    with pytest.raises(LoadError) as e:
        model.load(str(out))
    assert "(row 10): empty" in str(e.value)


def test_many_bad_cells_are_counted_and_the_first_ten_named(tmp_path):
    data, out = _data_dir(tmp_path, "csv")
    path = out / "bg_plans.csv"
    text = path.read_text().splitlines()
    head = text[0].split(",")
    k = head.index('"plan_wh"') if '"plan_wh"' in head else head.index("plan_wh")
    for i in range(1, 26):
        cells = text[i].split(",")
        cells[k] = ""
        text[i] = ",".join(cells)
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(LoadError) as e:
        model.load(str(out))
    msg = str(e.value)
    assert "column plan_wh: 25 value(s)" in msg and "and 15 more" in msg
    assert msg.count("@") == 10 and "#1 (row 1): empty" in msg


def test_cli_names_the_negative_plan(tmp_path, capsys):
    data, out = _data_dir(tmp_path, "csv")
    path = out / "bg_plans.csv"
    text = path.read_text().splitlines()
    cells = text[5].split(",")
    cells[-1] = "-20000"
    text[5] = ",".join(cells)
    path.write_text("\n".join(text) + "\n")
    code = smeter("correct", "--data", out, "--pattern", 1)
    _, err = capsys.readouterr()
    assert code == 2 and "bad_plan_value" in err and "#5: -20000" in err, err


@pytest.mark.parametrize("over,key", [
    ({"baseline": {"high4of5": {"keep_days": 6}}}, "keep_days"),
    ({"baseline": {"high4of5": {"low_day_ratio_pct": 150}}}, "low_day_ratio_pct"),
    ({"baseline": {"high4of5": {"lookback_days": 3}}}, "lookback_days"),
    ({"baseline": {"high4of5": {"adjust_end_hours_before": 5}}}, "adjust_end_hours_before"),
    ({"baseline": {"high4of5": {"like_days": 2.5}}}, "like_days"),
    ({"baseline": {"high4of5": {"holidays": ["2026-13-01"]}}}, "holidays"),
    ({"baseline": {"high4of5": {"dr_days_scope": "bg"}}}, "dr_days_scope"),
    ({"correction": {"max_abs_wh_per_slot": 10**9}}, "max_abs_wh_per_slot"),
    ({"correction": {"max_bg_plan_wh_per_slot": -1}}, "max_bg_plan_wh_per_slot"),
    ({"correction": {"plan_basis": {"1": "receiving"}}}, "plan_basis.1"),
    ({"group_management": {"max_list_patterns": 0}}, "max_list_patterns"),
])
def test_rule_numbers_outside_their_range_are_refused_by_name(over, key):
    with pytest.raises(ConfigError) as e:
        config.load_rules(None, over)
    assert key in str(e.value) and "\n" not in str(e.value)


def _market_csv(tmp_path, rows):
    path = tmp_path / "market.csv"
    head = "date,slot,normal_price_sen,reserve_margin_bp,spot_price_sen\n"
    path.write_text(head + "".join("2026-10-10,%d,%s,%s,%s\n" % r for r in rows))
    return str(path)


def test_market_cells_and_ranges_are_checked_and_named(tmp_path):
    from host_tools.tso import pricing
    from host_tools.tso.pricing import PriceError
    ranges = pricing.load_prices()["market_ranges"]
    good = [(s, 1000, 1500, 1100) for s in range(1, 49)]
    assert pricing.load_market(_market_csv(tmp_path, good), ranges).normal_sen.shape == (1, 48)
    for cell, shown in (("", "empty"), ("nan", "nan"), ("7.5", "7.5")):
        rows = list(good)
        rows[20] = (21, 1000, cell, 1100)
        with pytest.raises(PriceError) as e:
            pricing.load_market(_market_csv(tmp_path, rows), ranges)
        assert "column reserve_margin_bp" in str(e.value)
        assert "2026-10-10/21 (row 21): %s" % shown in str(e.value), str(e.value)
    rows = list(good)
    rows[3] = (4, -500, 1500, 1100)  # a negative normal price
    rows[7] = (8, 1000, 1500, 10**9)
    with pytest.raises(PriceError) as e:
        pricing.load_market(_market_csv(tmp_path, rows), ranges)
    got = {p.text.split(" ")[0]: p.offenders for p in e.value.problems}
    assert got == {"normal_price_sen": ["2026-10-10/4: -500"],
                   "spot_price_sen": ["2026-10-10/8: %d" % 10**9]}
