"""`smeter read` next to mbpoll/modpoll: raw typed register ranges (checked against pymodbus's
own converter, a second implementation) and polling with a count, an interval and retries,
against real pymodbus servers over TCP and RTU on a pseudo-terminal, and as a real process."""
import json
import select
import signal
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st
from pymodbus.client import ModbusTcpClient

from conftest import ROOT
from host_tools import raw_values
from test_modbus_servers import rtu_server, sim_device, tcp_server  # noqa: F401 (fixtures)
from test_read_cmd import smeter_read

UNIT = 5
WORDS = [0x1234, 0xFFFE, 0x0001, 0x0002, 0x4479, 0x8000, 0x8000, 0x0000, 0xFFFF, 0x7FC0]
PM_TYPE = {"u16": "UINT16", "s16": "INT16", "u32": "UINT32", "s32": "INT32", "u64": "UINT64",
           "f32": "FLOAT32"}
CLI = [sys.executable, "-m", "host_tools.cli"]


def pymodbus_values(words, kind, order):
    """The oracle: pymodbus's convert_from_registers, one value at a time."""
    w = raw_values.WIDTH[kind]
    dt = getattr(ModbusTcpClient.DATATYPE, PM_TYPE[kind])
    out = []
    for i in range(0, len(words) // w * w, w):
        v = ModbusTcpClient.convert_from_registers(words[i:i + w], dt, word_order=order)
        out.append(repr(v) if kind == "f32" and v != v else v)
    return out


@given(st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=16),
       st.sampled_from(sorted(raw_values.WIDTH)), st.sampled_from(["big", "little"]))
def test_decode_matches_pymodbus(words, kind, order):
    n = len(words) // raw_values.WIDTH[kind] * raw_values.WIDTH[kind]
    got = raw_values.decode(words[:n], kind, order)
    want = pymodbus_values(words[:n], kind, order)
    assert [repr(g) if isinstance(g, float) else g for g in got] == \
           [repr(w) if isinstance(w, float) else w for w in want]


@pytest.mark.parametrize("kind,order", [("u16", "big"), ("s16", "big"), ("u32", "big"),
                                        ("u32", "little"), ("s32", "little"), ("f32", "big"),
                                        ("u64", "big"), ("u64", "little")])
def test_raw_range_over_tcp(kind, order, tcp_server, capsys):
    srv = tcp_server(sim_device(UNIT, [(100, WORDS)]))
    n = 8 // raw_values.WIDTH[kind]
    code, out, err = smeter_read(capsys, "--tcp", "127.0.0.1:%d" % srv.port, "--unit", str(UNIT),
                                 "--raw", "100:%d" % n, "--type", kind, "--word-order", order)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["values"] == pymodbus_values(WORDS[:8], kind, order)
    assert doc["registers"] == {str(100 + i): w for i, w in enumerate(WORDS[:8])}
    assert (doc["address"], doc["type"], doc["word_order"], doc["function"]) == (100, kind, order, 3)


def test_raw_input_registers_over_rtu_pty(rtu_server, capsys):
    srv = rtu_server(sim_device(UNIT, [(0x34, WORDS)]))
    code, out, err = smeter_read(capsys, "--serial", srv.path, "--unit", str(UNIT), "--raw",
                                 "0x34:2", "--type", "f32", "--function", "4", "--timeout", "2")
    assert code == 0, err
    assert json.loads(out)["values"] == pymodbus_values(WORDS[:4], "f32", "big")


def test_raw_range_limits(capsys):
    for argv in (["--raw", "70000"], ["--raw", "0:126"], ["--raw", "x:1"]):
        with pytest.raises(SystemExit) as e:
            smeter_read(capsys, "--tcp", "127.0.0.1:1", "--unit", "1", *argv)
        assert e.value.code == 2
    code, _, err = smeter_read(capsys, "--tcp", "127.0.0.1:1", "--unit", "1", "--raw", "0:40",
                               "--type", "u64")
    assert code == 2 and "160 registers: at most 125" in err
    code, _, err = smeter_read(capsys, "--tcp", "127.0.0.1:1", "--unit", "1")
    assert code == 2 and "--map NAME or --raw" in err


def test_polling_prints_one_json_line_per_poll(tcp_server):
    srv = tcp_server(sim_device(UNIT, [(100, WORDS)]))
    p = subprocess.run(CLI + ["read", "--tcp", "127.0.0.1:%d" % srv.port, "--unit", str(UNIT),
                              "--raw", "100:2", "--type", "s16", "--count", "3", "--interval",
                              "0.2"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(ln) for ln in p.stdout.splitlines()]
    assert [ln["poll"] for ln in lines] == [1, 2, 3]
    assert all(ln["values"] == [0x1234, -2] for ln in lines)
    assert "3 poll(s), 3 ok, 0 failed" in p.stderr


def test_retries_ride_out_a_lossy_device():
    """A real `smeter emulate` that drops 40 % of replies: with retries every poll answers;
    without, some fail and the exit status says so."""
    emu = subprocess.Popen(CLI + ["emulate", "charger", "--tcp", "127.0.0.1:0", "--faults",
                                  "timeout=0.4,seed=3"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        r, _, _ = select.select([emu.stdout], [], [], 30)
        port = json.loads(emu.stdout.readline())["tcp"][1]
        base = CLI + ["read", "--tcp", "127.0.0.1:%d" % port, "--unit", "1", "--map",
                      "eastron_sdm630", "--count", "8", "--interval", "0.05", "--timeout", "0.3"]
        p = subprocess.run(base + ["--retries", "8"], capture_output=True, text=True, cwd=ROOT,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        assert len(p.stdout.splitlines()) == 8 and "retry 1/8" in p.stderr
        p = subprocess.run(base, capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert p.returncode == 1
        failed = p.stderr.count("error: modbus_timeout")
        assert failed >= 1 and len(p.stdout.splitlines()) == 8 - failed
    finally:
        emu.send_signal(signal.SIGTERM)
        emu.communicate(timeout=20)


def test_polling_until_ctrl_c(tcp_server):
    srv = tcp_server(sim_device(UNIT, [(100, WORDS)]))
    p = subprocess.Popen(CLI + ["read", "--tcp", "127.0.0.1:%d" % srv.port, "--unit", str(UNIT),
                                "--raw", "100", "--count", "0", "--interval", "0.1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    r, _, _ = select.select([p.stdout], [], [], 30)
    first = json.loads(p.stdout.readline())
    assert first["poll"] == 1 and first["values"] == [0x1234]
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130
    assert "(interrupted)" in err and "Traceback" not in err


def test_a_missing_serial_port_is_an_environment_error(capsys, tmp_path):
    code, out, err = smeter_read(capsys, "--serial", str(tmp_path / "ttyUSB9"), "--unit", "1",
                                 "--map", "eastron_sdm630")
    assert code == 4 and out == "" and err.startswith("smeter read: error: io:")


def test_baud_zero_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        smeter_read(capsys, "--serial", "/dev/null", "--baud", "0", "--unit", "1", "--map",
                    "eastron_sdm630")
    assert e.value.code == 2 and "--baud" in capsys.readouterr().err


def test_a_speed_the_serial_driver_cannot_set_is_an_environment_error(capsys, rtu_server):
    """ports.SerialPort sets the speed through termios: a rate termios has no name for is
    refused before anything is sent, not silently left at the line's old speed."""
    srv = rtu_server(sim_device(UNIT, [(100, WORDS)]))
    code, out, err = smeter_read(capsys, "--serial", srv.path, "--baud", "12345", "--unit",
                                 str(UNIT), "--raw", "100")
    assert code == 4 and out == ""
    assert "baud rate 12345 is not a standard serial speed" in err
    code, out, err = smeter_read(capsys, "--serial", srv.path, "--baud", "19200", "--unit",
                                 str(UNIT), "--raw", "100")
    assert code == 0 and json.loads(out)["values"] == [0x1234]
