"""`smeter demo` through the console entry point: a short multi-device run (including the
bidirectional meter) with a kill, JSON on stdout, the PNG and summary.json on disk."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@pytest.mark.slow  # ~25 s, mostly process start-up and matplotlib
def test_demo_json_short_run(tmp_path):
    out = tmp_path / "demo"
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "demo", "--hours", "2", "--devices",
                        "inverter,meter", "--start", "2026-06-21T16:00", "--faults",
                        "kill=50m,timeout=0.02", "--speed", "1440", "--json", "--out", str(out)],
                       cwd=ROOT, env=_env(), capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    s = json.loads(p.stdout)
    for key in ("devices", "slots_stored", "slots_missing", "wh_lost", "wh_duplicated",
                "frames_rejected", "max_delivery_minutes"):
        assert key in s, key
    assert [d["kind"] for d in s["devices"]] == ["inverter", "meter"]
    assert s["slots_stored"] == 8 and s["slots_missing"] == 0
    assert s["wh_lost"] == 0 and s["wh_duplicated"] == 0 and s["frames_rejected"] == 0
    for d in s["devices"]:
        assert d["stored_wh"] == d["register_delta_wh"] > 0, d
        assert d["agent_kills"] == 1 and len(d["slots"]) == 4
    # each device's day (16:00-18:00 of it) sealed by the device, checked with its public key
    assert s["seals_verified"] == 2 and s["seals_failed"] == 0 and s["seals_incomplete"] == 0
    for d in s["devices"]:
        assert [x["verdict"] for x in d["seals"]] == ["PASS"], d["seals"]
    meter = s["devices"][1]
    assert meter["import_wh"] > 0 or meter["export_wh"] > 0
    assert b"demo: 100%" in p.stderr  # progress lines when stderr is not a terminal
    assert (out / "demo.png").stat().st_size > 20000
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["wh_lost"] == 0
    # the documented keys, naming the final places (the run was made in a temporary dir)
    assert on_disk["chart"] == s["chart"] == str(out / "demo.png")
    assert on_disk["run"]["dir"] == str(out / "run") and (out / "run" / "collector.db").exists()
    assert sorted(os.listdir(tmp_path)) == ["demo"]  # no temporary left beside it


def test_demo_refuses_bad_options(tmp_path, capsys):
    from host_tools.cli import main

    for argv in (["--faults", "outage=6h"], ["--devices", "toaster"], ["--poll", "7"],
                 ["--hours", "0.7"], ["--start", "2026-06-21T00:10"], ["--speed", "0"]):
        assert main(["demo", "--out", str(tmp_path / "x")] + argv) == 2, argv
        assert "smeter demo:" in capsys.readouterr().err, argv
    assert not (tmp_path / "x" / "run").exists() or not os.listdir(tmp_path / "x" / "run")
