"""`smeter agent` and `smeter status` through the real entry point, in fresh processes."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, micropython_or_fail

CLI = [sys.executable, "-m", "host_tools.cli"]


def smeter(args, cwd=ROOT):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT
    return subprocess.run(CLI + args, capture_output=True, cwd=cwd, env=env, timeout=60)


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_bad_config_names_every_field_and_exits_2(tmp_path, runtime):
    if runtime == "micropython":
        micropython_or_fail()
    with open(os.path.join(ROOT, "firmware", "unix", "agent.example.json")) as f:
        cfg = json.load(f)
    cfg["device"]["port"] = 70000
    cfg["wisun"]["pan_id"] = "x"
    cfg["uplink"]["max_batch"] = 0
    cfg["colector"] = {}
    p = tmp_path / "agent.json"
    p.write_text(json.dumps(cfg))
    proc = smeter(["agent", "--config", str(p), "--runtime", runtime])
    out = proc.stdout.decode()
    assert proc.returncode == 2, out + proc.stderr.decode()
    fields = sorted(ln.split("field=")[1].split()[0] for ln in out.splitlines() if "ev=config_error" in ln)
    assert fields == ["colector", "device.port", "uplink.max_batch", "wisun.pan_id"], out


def test_unknown_map_is_a_config_error(tmp_path):
    with open(os.path.join(ROOT, "firmware", "unix", "agent.example.json")) as f:
        cfg = json.load(f)
    cfg["device"]["map"] = "no_such_map"
    p = tmp_path / "agent.json"
    p.write_text(json.dumps(cfg))
    proc = smeter(["agent", "--config", str(p), "--runtime", "cpython"])
    assert proc.returncode == 2
    assert "field=maps msg='no_such_map'_not_found" in proc.stdout.decode(), proc.stdout.decode()


def test_status_reads_the_agents_file(tmp_path, capsys):
    data = tmp_path / "d"
    data.mkdir()
    cfg = {"data_dir": "d", "status": {"file": "status.json"}}
    (tmp_path / "agent.json").write_text(json.dumps(cfg))
    counters = {k: i for i, k in enumerate((
        "polls", "polls_ok", "faults", "slots_closed", "frames_sent", "frames_acked",
        "frames_send_failed", "ack_timeouts", "joins", "session_losses"))}
    st = {"t": 204208519, "device_id": 4660, "map": "m", "counters": counters,
          "faults": {"modbus_timeout": 2}, "queue_depth": 3, "queue_head": 10, "queue_tail": 12,
          "overflow_slots": 0, "open_slot": 13, "last_slot": 113451, "seq_next": 7,
          "uplink": "await_ack", "inflight_seq": 6, "wisun_state": "ready", "wisun_session": 1,
          "wisun_rate": 0, "resumed": 1, "wall_ms": 0}
    (data / "status.json").write_text(json.dumps(st))
    proc = smeter(["status", "--config", str(tmp_path / "agent.json")])
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()
    assert "modbus_timeout=2" in out and "3 pending (slots 10..12)" in out
    assert "2026-06-21T13:30:00+09:00" in out and "rate gate closed" in out
    from host_tools.cli import main

    capsys.readouterr()
    assert main(["status", "--file", str(data / "status.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == st
    assert main(["status", "--file", str(data / "nope.json")]) == 2
