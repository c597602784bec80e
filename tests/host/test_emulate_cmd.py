"""`smeter emulate` as a real process: accelerated runs, the shared clock file, `smeter read`
(the edge client through the project's own CLI) against it, faults, and argument errors."""
import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from host_tools.emulator.device import MJ_PER_WH, read_truth
from host_tools.emulator.simclock import SimClock, parse_start

T0 = parse_start("2026-06-21T10:00")


def smeter(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "host_tools.cli"] + list(args), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def start(*args):
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "emulate"] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    r, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if r else ""
    if not line:
        proc.kill()
        raise AssertionError("emulator did not start: " + proc.stderr.read())
    return proc, json.loads(line)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])["summary"]


def cli(capsys, *args):
    """The real CLI in-process (for runs that end before any server starts)."""
    from host_tools.cli import main

    try:
        rc = main(list(args))
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_help_documents_the_options(capsys):
    rc, out, _ = cli(capsys, "emulate", "--help")
    assert rc == 0
    for opt in ("--tcp", "--pty-link", "--profile", "--speed", "--faults", "--unit", "--map", "--clock", "--truth"):
        assert opt in out


def test_speed_accelerates_and_the_truth_file_is_exact(tmp_path):
    truth = str(tmp_path / "t.jsonl")
    t = time.monotonic()
    p = smeter("emulate", "meter", "--tcp", "127.0.0.1:0", "--speed", "7200", "--start", "2026-06-21T10:00",
               "--duration", "2h", "--profile", "const:w=1800", "--truth", truth)
    real = time.monotonic() - t
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert lines[0]["ready"] and lines[0]["speed"] == [7200, 1]
    summary = lines[-1]["summary"]
    assert summary["import_mj"] == 2 * 3600 * 1800 * 1000  # exactly 2 h at 1.8 kW, no more, no less
    assert 1.0 <= real < 20  # 2 simulated hours took about one real second
    rows = read_truth(truth)
    slots = [r for r in rows if r["type"] == "slot"]
    assert [r["slot"] for r in slots] == [21, 22, 23, 24]
    assert all(r["import_wh"] == 900 for r in slots)
    assert slots[-1]["regs_end"]["import"]["units"] == 100_000 + 3600


def test_shared_clock_and_smeter_read_over_tcp(tmp_path):
    clock_path = str(tmp_path / "run.clock")
    owner = SimClock.create(clock_path, T0, speed=0)
    proc, ready = start("inverter", "--tcp", "127.0.0.1:0", "--clock", clock_path, "--profile", "const:w=-2500",
                        "--truth", str(tmp_path / "t.jsonl"))
    try:
        assert ready["clock_owner"] is False and ready["start_ms"] == T0
        where = "%s:%d" % tuple(ready["tcp"])
        r0 = smeter("read", "--tcp", where, "--unit", "1", "--map", "sunspec_inverter_103")
        assert r0.returncode == 0, r0.stderr
        owner.advance(3_600_000)
        r1 = smeter("read", "--tcp", where, "--unit", "1", "--map", "sunspec_inverter_103")
        a, b = json.loads(r0.stdout), json.loads(r1.stdout)
        assert a["export_wh"] == 100_000 and b["export_wh"] == 102_500 and b["power_w"] == -2500
    finally:
        summary = stop(proc)
    assert summary["export_mj"] == 2500 * MJ_PER_WH and summary["requests"] == 2
    rows = read_truth(str(tmp_path / "t.jsonl"))
    assert [r["type"] for r in rows] == ["header", "slot", "slot", "partial", "summary"]


def test_rtu_pty_link_with_corrupted_crcs(tmp_path):
    clock_path = str(tmp_path / "run.clock")
    SimClock.create(clock_path, T0, speed=0)
    link = str(tmp_path / "sdm630")
    proc, ready = start("charger", "--pty-link", link, "--unit", "3", "--clock", clock_path, "--faults", "crc=1")
    try:
        assert ready["rtu"] == link and os.path.islink(link)
        r = smeter("read", "--serial", link, "--unit", "3", "--map", "eastron_sdm630", "--timeout", "0.5")
        assert r.returncode == 1 and "modbus_crc" in r.stderr
    finally:
        summary = stop(proc)
    assert summary["faults"] == {"corrupt": summary["requests"]} and summary["requests"] >= 1
    assert not os.path.lexists(link)  # the link is removed at exit


def test_clock_owner_jumps_the_shared_clock(tmp_path):
    clock_path = str(tmp_path / "run.clock")
    truth = str(tmp_path / "t.jsonl")
    p = smeter("emulate", "meter", "--tcp", "127.0.0.1:0", "--clock", clock_path, "--speed", "7200", "--start",
               "2026-06-21T00:00", "--profile", "const:w=1000", "--faults", "jump=30m:+2h", "--duration", "3h",
               "--truth", truth)
    assert p.returncode == 0, p.stderr
    assert SimClock.open(clock_path).gen == 1  # one jump written by the owner
    rows = read_truth(truth)
    jumps = [r for r in rows if r.get("kind") == "clock_jump"]
    assert len(jumps) == 1 and jumps[0]["delta_ms"] == 7_200_000
    # the world skipped ahead: the device still integrated every simulated second
    assert rows[-1]["import_mj"] == 3 * 3600 * 1000 * 1000


@pytest.mark.parametrize(
    "args,msg",
    [
        (["inverter", "--tcp", "127.0.0.1:0", "--profile", "v2h"], "no import register"),
        (["meter", "--tcp", "127.0.0.1:0", "--faults", "bogus=1"], "unknown fault"),
        (["charger", "--tcp", "127.0.0.1:0", "--faults", "rollover=10"], "accumulator"),
        (["meter", "--tcp", "127.0.0.1:0", "--map", "nope"], "no register map"),
        (["meter", "--tcp", "127.0.0.1:0", "--speed", "fast"], "speed"),
    ],
)
def test_bad_arguments_exit_2_with_a_reason(capsys, args, msg):
    rc, _, err = cli(capsys, "emulate", *args)
    assert rc == 2 and msg in err, err


def test_standard_faults_fit_every_default_map(capsys, tmp_path):
    for kind in ("inverter", "charger", "meter"):
        rc, out, err = cli(capsys, "emulate", kind, "--tcp", "127.0.0.1:0", "--faults", "standard", "--speed", "0",
                           "--start", "2026-06-21", "--duration", "0s")
        assert rc == 0, err
        summary = json.loads(out.splitlines()[-1])["summary"]
        wraps = {q: c["raw"] for q, c in summary["counters"].items()}
        if kind == "charger":  # float32 map: no accumulator to wrap, counters as configured
            assert wraps == {"import": 100_000, "export": 100_000}
        else:
            assert set(wraps.values()) == {2**32 - 3000}


def test_jump_needs_the_clock_owner(capsys, tmp_path):
    clock_path = str(tmp_path / "run.clock")
    SimClock.create(clock_path, T0, speed=0)
    rc, _, err = cli(capsys, "emulate", "meter", "--tcp", "127.0.0.1:0", "--clock", clock_path, "--faults", "jump=1h:+1h")
    assert rc == 2 and "owner" in err
