"""What `smeter read` sees for a unit id nobody answers to, from each kind of real server.

The Modbus specs say an RS-485 slave that is not addressed stays silent (Modbus over Serial
Line v1.02, 2.1), and a TCP gateway whose target does not answer replies exception 0x0B
(Modbus Application Protocol v1.1b3, 7): `smeter emulate` behaves like that. A bare pymodbus
3.16.1 SimDevice server instead answers exception 0x04 on TCP and RTU alike (its datastore
lookup fails and it reports a device failure). docs/commands/read.md states all three.
"""
import os

from host_tools.commands import read as read_cmd
from host_tools.emulator.runner import Emulator, EmulatorThread
from host_tools.emulator.server import quiet_pymodbus
from host_tools.emulator.simclock import SimClock, parse_start
from test_modbus_servers import rtu_server, sim_device, tcp_server  # noqa: F401 (fixtures)
from test_read_cmd import UNIT, sdm630_image, smeter_read

quiet_pymodbus()


def test_bare_pymodbus_answers_an_unknown_unit_with_exception_04_on_tcp(tcp_server, capsys):
    srv = tcp_server(sim_device(UNIT, sdm630_image(1, 2, 3)))
    code, out, err = smeter_read(capsys, "--tcp", "127.0.0.1:%d" % srv.port, "--unit", "99",
                                 "--map", "eastron_sdm630")
    assert code == read_cmd.EXIT_DEVICE and out == ""
    assert err.count("\n") == 1 and "modbus_exception" in err and "0x04" in err, err


def test_bare_pymodbus_answers_an_unknown_unit_with_exception_04_on_rtu(rtu_server, capsys):
    srv = rtu_server(sim_device(UNIT, sdm630_image(1, 2, 3)))
    code, _, err = smeter_read(capsys, "--serial", srv.path, "--unit", "99", "--map",
                               "eastron_sdm630", "--timeout", "1")
    assert code == read_cmd.EXIT_DEVICE
    assert err.count("\n") == 1 and "modbus_exception" in err and "0x04" in err, err


def _emulated_meter():
    clock = SimClock.private(parse_start("2026-06-21T10:00"), 0)
    return Emulator("meter", clock, profile="const:w=1800")


def test_smeter_emulate_over_tcp_answers_like_a_gateway_with_exception_0b(capsys):
    th = EmulatorThread()
    try:
        host, port = th.start_tcp(_emulated_meter())
        code, _, err = smeter_read(capsys, "--tcp", "%s:%d" % (host, port), "--unit", "9",
                                   "--map", "sunspec_meter_203")
        assert code == read_cmd.EXIT_DEVICE
        assert err.count("\n") == 1 and "modbus exception 0x0B" in err, err
        assert "gateway target device failed to respond" in err, err
        code, out, _ = smeter_read(capsys, "--tcp", "%s:%d" % (host, port), "--unit", "1",
                                   "--map", "sunspec_meter_203")
        assert code == 0 and '"power_w"' in out  # the configured unit still answers
    finally:
        th.close()


def test_smeter_emulate_over_rtu_stays_silent_like_an_rs485_bus(capsys, tmp_path):
    th = EmulatorThread()
    try:
        link = th.start_rtu(_emulated_meter(), str(tmp_path / "meter"))
        assert os.path.islink(link)
        code, _, err = smeter_read(capsys, "--serial", link, "--unit", "9", "--map",
                                   "sunspec_meter_203", "--timeout", "0.3")
        assert code == read_cmd.EXIT_DEVICE
        assert err.count("\n") == 1 and "modbus_timeout" in err, err
    finally:
        th.close()
