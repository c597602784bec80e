"""`smeter gen-tso-data` and `smeter correct` end to end on small data sets."""
import argparse

import numpy as np
import pyarrow.parquet as pq
import pytest

from host_tools.commands import correct as correct_cmd, gen_tso_data as gen_tso_data_cmd, settle as settle_cmd


def smeter(*argv):
    parser = argparse.ArgumentParser(prog="smeter")
    sub = parser.add_subparsers()
    correct_cmd.register(sub)
    gen_tso_data_cmd.register(sub)
    settle_cmd.register(sub)
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_generated_data_set_is_corrected_and_written(tmp_path, fmt, capsys):
    data = tmp_path / "data"
    assert smeter("gen-tso-data", "--resources", 400, "--out", data, "--seed", 7,
                  "--format", fmt) == 0
    assert (data / ("resources." + fmt)).exists()
    out = tmp_path / "out.parquet"
    pairs = tmp_path / "pairs.csv"
    assert smeter("correct", "--data", data, "--pattern", 2, "--out", out,
                  "--pairs-out", pairs) == 0
    captured = capsys.readouterr()
    assert "pattern 2, plan basis generation" in captured.out
    assert "loaded 400 resources" in captured.err and "correction" in captured.err
    table = pq.read_table(out).to_pydict()
    n_bg = len(set(table["bg_id"]))
    assert len(table["slot"]) == n_bg * 48
    imb = np.array(table["imbalance_wh"])
    assert (imb == np.array(table["actual_wh"]) + np.array(table["correction_wh"])
            - np.array(table["plan_wh"])).all()
    assert pairs.read_text().startswith('"date","slot","demand_bg","generation_bg"')
    # the generator writes market data too: settle runs on the same directory as it is
    assert (data / ("market." + fmt)).exists()
    settled = tmp_path / "settle.csv"
    assert smeter("settle", "--data", data, "--out", settled) == 0
    assert "charge_yen" in capsys.readouterr().out
    assert settled.read_text().count("\n") > 48


def test_same_seed_same_data_and_pattern_1_differs_from_2(tmp_path, capsys):
    for name in ("a", "b"):
        smeter("gen-tso-data", "--resources", 300, "--out", tmp_path / name, "--seed", 1)
    outs = {}
    for name, pattern in (("a", 1), ("b", 1), ("a", 2)):
        path = tmp_path / ("%s%d.csv" % (name, pattern))
        assert smeter("correct", "--data", tmp_path / name, "--pattern", pattern,
                      "--out", path) == 0
        outs[name, pattern] = path.read_text()
    assert outs["a", 1] == outs["b", 1]
    assert outs["a", 1] != outs["a", 2]


def test_pattern_3_rejects_reverse_flow_sites_by_name(tmp_path, capsys):
    smeter("gen-tso-data", "--resources", 50, "--out", tmp_path / "d")
    assert smeter("correct", "--data", tmp_path / "d", "--pattern", 3) == 2
    err = capsys.readouterr().err
    assert "pattern3_reverse_flow" in err and "R0000000" in err


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    assert smeter("correct", "--data", tmp_path / "none", "--pattern", 1) == 2  # USAGE
    assert "no such data directory" in capsys.readouterr().err
    smeter("gen-tso-data", "--resources", 50, "--out", tmp_path / "d")
    assert smeter("correct", "--data", tmp_path / "d", "--pattern", 1,
                  "--out", tmp_path / "x.txt") == 2
    assert ".csv or .parquet" in capsys.readouterr().err
    (tmp_path / "d" / "bg_plans.parquet").unlink()
    assert smeter("correct", "--data", tmp_path / "d", "--pattern", 1) == 2
    assert "missing table bg_plans" in capsys.readouterr().err


def test_help_texts(capsys):
    for cmd in ("correct", "gen-tso-data"):
        with pytest.raises(SystemExit):
            smeter(cmd, "--help")
    out = capsys.readouterr().out
    for word in ("--pattern", "送端", "発端", "--resources", "--seed", "--days", "100,000"):
        assert word in out


def test_through_the_smeter_entry_point(tmp_path):
    import subprocess
    import sys
    run = lambda *a: subprocess.run([sys.executable, "-m", "host_tools.cli"] + [str(x) for x in a],
                                    capture_output=True, text=True, timeout=120)
    gen = run("gen-tso-data", "--resources", 200, "--out", tmp_path / "d", "--format", "csv")
    assert gen.returncode == 0, gen.stderr
    cor = run("correct", "--data", tmp_path / "d", "--pattern", 1, "--out", tmp_path / "o.csv")
    assert cor.returncode == 0, cor.stderr
    assert "pattern 1, plan basis sending" in cor.stdout
    assert (tmp_path / "o.csv").read_text().count("\n") > 48


def test_results_resting_on_estimates_are_told_apart(tmp_path, capsys):
    # Issue 16: a single device value flagged an estimate (`estimated` table) and a whole
    # row filled by `smeter complete` (`completion` table) show up as estimated_inputs on
    # exactly the BG rows and pair rows they enter; everything else stays 0 (exact).
    import csv
    import json

    from host_tools.tso import model
    data_dir = tmp_path / "data"
    assert smeter("gen-tso-data", "--resources", 60, "--out", data_dir, "--seed", 3,
                  "--format", "csv") == 0
    data = model.load(str(data_dir))
    day = str(data.plan_days()[0])
    res = data.resources
    with_gen = [i for i in range(len(res)) if str(res["generation_bg"][i]) not in ("", "None", "nan")]
    a, b = with_gen[0], [i for i in range(len(res)) if i != with_gen[0]][0]
    ra, rb = str(res["resource_id"][a]), str(res["resource_id"][b])
    (data_dir / "estimated.csv").write_text(
        "resource_id,date,series,slot\n%s,%s,device,17\n" % (ra, day))
    (data_dir / "completion.csv").write_text(
        "resource_id,date,series,method\n%s,%s,receiving,profile\n" % (rb, day))
    out, pairs = tmp_path / "o.csv", tmp_path / "p.csv"
    capsys.readouterr()
    assert smeter("correct", "--data", data_dir, "--pattern", 2, "--out", out,
                  "--pairs-out", pairs) == 0
    assert "slots resting on estimated inputs" in capsys.readouterr().out
    want = {}
    for i, slots in ((a, [17]), (b, range(1, 49))):
        for col in ("demand_bg", "generation_bg"):
            g = str(res[col][i])
            if g not in ("", "None", "nan"):
                for s in slots:
                    want[(g, s)] = want.get((g, s), 0) + 1
    got = {(r["bg_id"], int(r["slot"])): int(r["estimated_inputs"])
           for r in csv.DictReader(open(out)) if r["date"] == day and int(r["estimated_inputs"])}
    assert got == want
    rows = [r for r in csv.DictReader(open(pairs)) if r["date"] == day]
    pa_ = (str(res["demand_bg"][a]), str(res["generation_bg"][a]))
    assert [int(r["estimated_inputs"]) for r in rows
            if (r["demand_bg"], r["generation_bg"]) == pa_ and r["slot"] == "17"][0] >= 1
    assert sum(int(r["estimated_inputs"]) for r in rows) >= 49
    # --json counts the slots per BG; without the records everything is exact
    assert smeter("correct", "--data", data_dir, "--pattern", 2, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    d0 = [d for d in doc["days"] if d["date"] == day][0]
    assert {x["bg"]: x["slots_with_estimated_inputs"] for x in d0["bgs"]
            if x["slots_with_estimated_inputs"]} == {
        g: len({s for (h, s) in want if h == g}) for g, _ in want}
    (data_dir / "estimated.csv").unlink()
    (data_dir / "completion.csv").unlink()
    assert smeter("correct", "--data", data_dir, "--pattern", 2, "--out", out) == 0
    assert all(r["estimated_inputs"] == "0" for r in csv.DictReader(open(out)))
    # a record naming an unknown resource is a usage error, nothing written
    (data_dir / "estimated.csv").write_text("resource_id,date,series,slot\nnope,%s,device,1\n" % day)
    assert smeter("correct", "--data", data_dir, "--pattern", 2) == 2
    assert "estimated.csv: rows name resources not in resources" in capsys.readouterr().err
