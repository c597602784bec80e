"""`smeter read` against real pymodbus 3.16.1 servers: TCP on loopback and RTU on a
pseudo-terminal, for each shipped map; SunSpec images built with pysunspec2."""
import argparse
import json
import os
import struct
import subprocess
import sys

import pytest
import sunspec2.device as ssd

from conftest import ROOT
from host_tools.commands import read as read_cmd
from test_modbus_servers import PtyPair, f32, rtu_server, sim_device, tcp_server  # noqa: F401 (fixtures)

UNIT = 7


def sunspec_image(model_id, values):
    """'SunS' + common model 1 + the model + end marker, as words at 40000."""
    m1 = ssd.Model(1)
    m = ssd.Model(model_id)
    for point, v in values.items():
        getattr(m, point).value = v
    img = b"SunS" + m1.get_mb() + m.get_mb() + struct.pack(">HH", 0xFFFF, 0)
    return [(40000, list(struct.unpack(">%dH" % (len(img) // 2), img)))]


def sdm630_image(power_w, import_kwh, export_kwh):
    regs = [0] * 24
    regs[0:2] = f32(power_w)
    regs[20:22] = f32(import_kwh)
    regs[22:24] = f32(export_kwh)
    return [(0x34, regs)]


CASES = {
    "sunspec_meter_203": (
        lambda: sunspec_image(203, {"W": -1234, "W_SF": -1, "TotWhImp": 0xFEDCBA98, "TotWhExp": 12345, "TotWh_SF": 1}),
        {"power_w": -123.4, "import_wh": 0xFEDCBA98 * 10, "export_wh": 123450},
    ),
    "sunspec_inverter_103": (
        lambda: sunspec_image(103, {"W": 4500, "W_SF": 0, "WH": 123456789, "WH_SF": -2}),
        {"power_w": -4500, "export_wh": 1234567.89},
    ),
    "eastron_sdm630": (
        lambda: sdm630_image(2300.5, 1234.567, 0.25),
        {"power_w": 2301, "import_wh": 1234567, "export_wh": 250},
    ),
}


def parser():
    p = argparse.ArgumentParser(prog="smeter")
    read_cmd.register(p.add_subparsers(dest="command"))
    return p


def smeter_read(capsys, *argv):
    args = parser().parse_args(["read"] + list(argv))
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", sorted(CASES))
def test_read_over_tcp(name, tcp_server, capsys):
    image, expected = CASES[name]
    srv = tcp_server(sim_device(UNIT, image()))
    code, out, err = smeter_read(capsys, "--tcp", "127.0.0.1:%d" % srv.port, "--unit", str(UNIT), "--map", name)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["map"] == name and doc["unit"] == UNIT
    assert {k: doc[k] for k in ("power_w", "import_wh", "export_wh") if k in doc} == expected
    regs = {int(a): w for a, w in doc["registers"].items()}
    blocks = dict(image())
    base, words = next(iter(blocks.items()))
    for addr, w in regs.items():
        assert w == words[addr - base]


@pytest.mark.parametrize("name", sorted(CASES))
def test_read_over_rtu_pty(name, rtu_server, capsys):
    image, expected = CASES[name]
    srv = rtu_server(sim_device(UNIT, image()))
    code, out, err = smeter_read(
        capsys, "--serial", srv.path, "--baud", "9600", "--unit", str(UNIT), "--map", name, "--timeout", "2"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert {k: doc[k] for k in ("power_w", "import_wh", "export_wh") if k in doc} == expected


def test_exception_reply_is_a_one_line_error(tcp_server, capsys):
    # The image does not cover model 203's registers: pymodbus answers exception 0x02.
    srv = tcp_server(sim_device(UNIT, [(40000, [0] * 10)]))
    code, out, err = smeter_read(capsys, "--tcp", "127.0.0.1:%d" % srv.port, "--unit", str(UNIT), "--map", "sunspec_meter_203")
    assert code == read_cmd.EXIT_DEVICE and out == ""
    assert err.count("\n") == 1
    assert "modbus_exception" in err and "0x02" in err and "illegal data address" in err


def test_wrong_model_is_a_mismatch_error(tcp_server, capsys):
    srv = tcp_server(sim_device(UNIT, sunspec_image(203, {"W": 1, "W_SF": 0})))
    code, _, err = smeter_read(capsys, "--tcp", "127.0.0.1:%d" % srv.port, "--unit", str(UNIT), "--map", "sunspec_inverter_103")
    assert code == read_cmd.EXIT_DEVICE and "regmap_mismatch" in err


def test_unknown_unit_gets_exception_04_from_pymodbus_rtu(rtu_server, capsys):
    srv = rtu_server(sim_device(UNIT, sdm630_image(1, 2, 3)))
    code, _, err = smeter_read(capsys, "--serial", srv.path, "--unit", "99", "--map", "eastron_sdm630", "--timeout", "1")
    assert code == read_cmd.EXIT_DEVICE
    assert err.count("\n") == 1 and "modbus_exception" in err and "0x04" in err, err


def test_timeout_on_a_silent_serial_line(capsys):
    ptys = PtyPair()  # nobody on the other end
    try:
        code, _, err = smeter_read(capsys, "--serial", ptys.client_path, "--unit", "1", "--map", "eastron_sdm630", "--timeout", "0.2")
    finally:
        ptys.close()
    assert code == read_cmd.EXIT_DEVICE
    assert err.count("\n") == 1 and "modbus_timeout" in err, err


def test_timeout_on_a_silent_tcp_peer(capsys):
    import socket

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)  # accepts connections (kernel backlog) but never answers
    try:
        code, _, err = smeter_read(
            capsys, "--tcp", "127.0.0.1:%d" % lsock.getsockname()[1], "--unit", "1", "--map", "eastron_sdm630", "--timeout", "0.2"
        )
    finally:
        lsock.close()
    assert code == read_cmd.EXIT_DEVICE
    assert "modbus_timeout" in err and err.count("\n") == 1


def test_unknown_map_and_bad_address(capsys):
    code, _, err = smeter_read(capsys, "--tcp", "127.0.0.1:1", "--unit", "1", "--map", "no_such_meter")
    assert code == read_cmd.EXIT_USAGE
    assert "unknown map 'no_such_meter'" in err and "eastron_sdm630" in err
    with pytest.raises(SystemExit) as e:
        smeter_read(capsys, "--tcp", "nocolon", "--unit", "1", "--map", "eastron_sdm630")
    assert e.value.code == read_cmd.EXIT_USAGE and "HOST:PORT" in capsys.readouterr().err


def test_connection_refused_is_an_io_error(capsys):
    from test_modbus_servers import free_port

    code, _, err = smeter_read(capsys, "--tcp", "127.0.0.1:%d" % free_port(), "--unit", "1", "--map", "eastron_sdm630")
    assert code == read_cmd.EXIT_IO and err.startswith("smeter read: error: io:")


def test_exact_number_rules():
    assert read_cmd.exact_number(12345, 1) == 123450
    assert read_cmd.exact_number(-1234, -1) == -123.4
    assert read_cmd.exact_number(500, -2) == 5
    assert read_cmd.exact_number(0xFFFFFFFF, -10) == 0.4294967295
    assert read_cmd.exact_number(0xFFFFFFFF, -3) == 4294967.295
    assert isinstance(read_cmd.exact_number(0xFFFFFFFF, 2), int)
    # 19 significant digits: no float carries it exactly, so the decimal goes out as a string
    assert read_cmd.exact_number(1234567890123456789, -19) == "0.1234567890123456789"


def test_console_command_end_to_end(tcp_server):
    """The installed `smeter` entry point (host_tools.cli) in a fresh process."""
    srv = tcp_server(sim_device(UNIT, sdm630_image(-750.25, 10.0, 2.5)))
    proc = subprocess.run(
        [sys.executable, "-m", "host_tools.cli", "read", "--tcp", "127.0.0.1:%d" % srv.port,
         "--unit", str(UNIT), "--map", "eastron_sdm630"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["power_w"], doc["import_wh"], doc["export_wh"]) == (-750, 10000, 2500)
    assert len(doc["registers"]) == 24


def test_read_help_names_every_map():
    out = subprocess.run(
        [sys.executable, "-c", "from host_tools.commands import read as read_cmd; import argparse; p=argparse.ArgumentParser(prog='smeter');"
         "read_cmd.register(p.add_subparsers()); p.parse_args(['read','--help'])"],
        capture_output=True, text=True, cwd=ROOT,
    ).stdout
    for name in CASES:
        assert name in out
    assert "--tcp" in out and "--serial" in out and "--timeout" in out
