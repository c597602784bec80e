"""Overrides of hw/tso/rules.json and prices.json: unknown keys and bad JSON are refused, naming
the file and the key, before any work starts (exit 2, one line on stderr)."""
import json

import pytest

from host_tools.tso import config, pricing
from host_tools.tso.config import ConfigError
from test_tso_cli import smeter


def write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return str(p)


def refused(fn, *args):
    with pytest.raises(ConfigError) as e:
        fn(*args)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_known_keys_override_and_unknown_ones_are_refused_by_name(tmp_path):
    ok = write(tmp_path, "ok.json", {"baseline": {"high4of5": {"lookback_days": 20}}})
    assert config.load_rules(ok)["baseline"]["high4of5"]["lookback_days"] == 20
    bad = write(tmp_path, "typo.json", {"baseline": {"high4of5": {"lookbak_days": 20}}})
    msg = refused(config.load_rules, bad)
    assert bad in msg and "'baseline.high4of5.lookbak_days'" in msg
    top = write(tmp_path, "top.json", {"corection": {}})
    assert "'corection'" in refused(config.load_rules, top)
    assert "'x'" in refused(config.load_rules, None, {"x": 1})


def test_prices_lists_and_open_maps(tmp_path):
    periods = pricing.load_prices()["imbalance"]["periods"]
    entry = dict(periods[0], C_sem=1)
    bad = write(tmp_path, "p.json", {"imbalance": {"periods": [entry]}})
    msg = refused(pricing.load_prices, bad)
    assert "'imbalance.periods[0].C_sem'" in msg and bad in msg
    tariffs = pricing.load_prices()["negawatt"]["tariffs"]
    mine = json.loads(json.dumps(next(iter(tariffs.values()))))
    ok = write(tmp_path, "t.json", {"negawatt": {"tariffs": {"my_tariff": mine}}})
    assert "my_tariff" in pricing.load_prices(ok)["negawatt"]["tariffs"]
    mine["summer"]["retail_yen"] = 1
    bad = write(tmp_path, "t2.json", {"negawatt": {"tariffs": {"my_tariff": mine}}})
    assert "'negawatt.tariffs.my_tariff.summer.retail_yen'" in refused(pricing.load_prices, bad)


def test_invalid_json_names_the_file_and_place(tmp_path):
    bad = write(tmp_path, "broken.json", '{"baseline": {"high4of5": {"lookback_days": 20,}}}')
    msg = refused(config.load_rules, bad)
    assert msg.startswith(bad + ": invalid JSON: line 1 column")
    arr = write(tmp_path, "list.json", "[1, 2]")
    assert "JSON object" in refused(config.load_rules, arr)
    assert "cannot read" in refused(config.load_rules, str(tmp_path / "none.json"))


@pytest.mark.parametrize("cmd,opt", [("correct", "--config"), ("settle", "--config"),
                                     ("settle", "--prices")])
def test_commands_refuse_a_bad_override_with_exit_2_and_one_line(tmp_path, capsys, cmd, opt):
    bad = write(tmp_path, "bad.json", {"nonsense": 1})
    code = smeter(cmd, "--data", tmp_path / "no-data", "--pattern", 1, opt, bad)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and bad in err and "'nonsense'" in err, err
    broken = write(tmp_path, "broken.json", "{")
    code = smeter(cmd, "--data", tmp_path / "no-data", "--pattern", 1, opt, broken)
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and broken in err and "invalid JSON" in err
