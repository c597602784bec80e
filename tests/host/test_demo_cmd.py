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


def test_the_demo_takes_the_module_emulators_start_from_its_start_line():
    # the start is the emulator's clock (emulated 0 at WALL_MS), not the output file's mtime
    from host_tools.demo.orchestrate import DemoError, WISUN_SCALE, _wisun_epoch_wall_ms
    from host_tools.emulator.wisun_link import emulator_clock

    clock = emulator_clock(WISUN_SCALE)
    line = ("wisun-emulator: /x/wisun0 -> /dev/pts/9, module bp35a1, collector 127.0.0.1:1, "
            "clock " + clock.line())
    assert _wisun_epoch_wall_ms(line) == clock._vals[1]
    # a line written later, still at emulated 2000 ms: the start is 2000 / 20 = 100 wall ms back
    later = line.rsplit(" clock ", 1)[0] + " clock 1 1000100 2000 20 1 0 0"
    assert _wisun_epoch_wall_ms(later) == 1000000
    with pytest.raises(DemoError):  # another speed than the demo asked for
        _wisun_epoch_wall_ms(line.rsplit(" clock ", 1)[0] + " clock 1 1000 0 100 1 0 0")
    with pytest.raises(DemoError):  # no clock on the line
        _wisun_epoch_wall_ms("wisun-emulator: /x -> /dev/pts/9, module bp35a1")
