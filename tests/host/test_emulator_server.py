"""Emulators on the wire: pymodbus clients, the edge agent's own Modbus clients, pysunspec2,
and every wire fault as the bytes show it. Emulators run in-process (EmulatorThread) on a
frozen private clock that the test steps, so every expected value is exact."""
import os
import select
import socket
import struct
import time
import tty

import pytest

from edge.crc import crc16
from edge.modbus_pdu import REPLY, ModbusError
from edge.modbus_rtu import RtuClient
from edge.modbus_tcp import TcpClient
from edge.reading import R_EXP_HI, R_EXP_LO, R_IMP_HI, R_IMP_LO, R_POWER, new_reading
from edge.regmap import compile_map, decode
from host_tools.emulator.device import MJ_PER_WH
from host_tools.emulator.runner import Emulator, EmulatorThread
from host_tools.emulator.server import quiet_pymodbus
from host_tools.emulator.simclock import SimClock, parse_start

T0 = parse_start("2026-06-21T10:00")
quiet_pymodbus()


def ticks():
    return (time.monotonic_ns() // 1_000_000) & 0x3FFFFFFF


@pytest.fixture
def th():
    t = EmulatorThread()
    yield t
    t.close()


def emulator(kind, clock=None, **kw):
    clock = clock or SimClock.private(T0, 0)
    return Emulator(kind, clock, **kw), clock


# ---- the edge agent's clients over a socket and a pty -----------------------------------


def edge_tcp_read(addr, unit, fn, start, count, timeout_ms=400):
    client = TcpClient(timeout_ms)
    words = [0] * count
    req = bytearray(12)
    with socket.create_connection(addr, timeout=2) as s:
        n = client.request(req, unit, fn, start, count, words, 0, ticks())
        s.sendall(req[:n])
        s.setblocking(False)
        while True:
            r, _, _ = select.select([s], [], [], 0.01)
            data = s.recv(512) if r else b""
            if data and client.feed(data, ticks()) == REPLY:
                return words
            client.check(ticks())


def open_pty(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    return fd


def edge_rtu_read(fd, unit, fn, start, count, timeout_ms=400):
    client = RtuClient(2, timeout_ms)
    words = [0] * count
    req = bytearray(8)
    n = client.request(req, unit, fn, start, count, words, 0, ticks())
    os.write(fd, bytes(req[:n]))
    while True:
        r, _, _ = select.select([fd], [], [], 0.01)
        data = os.read(fd, 512) if r else b""
        if data and client.feed(data, ticks()) == REPLY:
            return words
        client.check(ticks())


def decode_block(em, words):
    rmap = compile_map(em.device.rmap)
    r = new_reading()
    decode(rmap, words, 0, r)
    return r


def truth_units(th, em, q):
    return th.call(lambda: em.device.counter_states()[q]["units"])


# ---- tests ------------------------------------------------------------------------------


def test_tcp_pymodbus_and_edge_client_read_the_exact_truth(th):
    from pymodbus.client import ModbusTcpClient

    em, clock = emulator("meter", profile="const:w=1800")
    addr = th.start_tcp(em)
    pm = ModbusTcpClient(addr[0], port=addr[1], timeout=2)
    assert pm.connect()
    try:
        assert pm.read_holding_registers(40000, count=2, device_id=1).registers == [0x5375, 0x6E53]
        before = pm.read_holding_registers(40116, count=2, device_id=1).registers
        r = decode_block(em, edge_tcp_read(addr, 1, 3, 40070, 55))
        assert (r[R_IMP_HI] << 16 | r[R_IMP_LO]) == truth_units(th, em, "import") == 100_000
        assert r[R_POWER] == 1800
        clock.advance(3_600_000)  # one simulated hour at 1800 W: exactly 1800 Wh
        after = pm.read_holding_registers(40116, count=2, device_id=1).registers
        assert (after[0] << 16 | after[1]) - (before[0] << 16 | before[1]) == 1800
        r = decode_block(em, edge_tcp_read(addr, 1, 3, 40070, 55))
        assert (r[R_IMP_HI] << 16 | r[R_IMP_LO]) == truth_units(th, em, "import") == 101_800
        assert pm.write_register(40116, 5, device_id=1).isError()  # read-only device
    finally:
        pm.close()


def test_rtu_on_a_pty_pymodbus_and_edge_client(th, tmp_path):
    from pymodbus.client import ModbusSerialClient

    em, clock = emulator("charger", profile="const:w=4500", unit=7)
    link = th.start_rtu(em, str(tmp_path / "sdm630"))
    assert os.path.islink(link)
    pm = ModbusSerialClient(link, baudrate=9600, timeout=1)
    assert pm.connect()
    try:
        regs = pm.read_input_registers(52, count=2, device_id=7).registers
        assert struct.unpack(">f", struct.pack(">HH", *regs))[0] == 4500.0
    finally:
        pm.close()
    fd = open_pty(link)
    try:
        r = decode_block(em, edge_rtu_read(fd, 7, 4, 52, 24))
        imp0 = r[R_IMP_HI] << 16 | r[R_IMP_LO]
        assert r[R_POWER] == 4500 and imp0 == truth_units(th, em, "import")
        clock.advance(20 * 60_000)  # 20 min at 4.5 kW = 1500 Wh
        r = decode_block(em, edge_rtu_read(fd, 7, 4, 52, 24))
        assert (r[R_IMP_HI] << 16 | r[R_IMP_LO]) - imp0 == 1500
        with pytest.raises(ModbusError) as e:  # unit 8 is not on this line: RS-485 silence
            edge_rtu_read(fd, 8, 4, 52, 24, timeout_ms=200)
        assert e.value.kind == "modbus_timeout"
    finally:
        os.close(fd)


def test_pysunspec2_discovers_the_emulated_inverter(th):
    import sunspec2.modbus.client as ss

    em, clock = emulator("inverter", profile="const:w=-3000")
    host, port = th.start_tcp(em)
    clock.advance(3_600_000)
    d = ss.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr=host, ipport=port, timeout=2)
    try:
        d.scan()
        inv = d.models[103][0]
        inv.read()
        assert inv.W.cvalue == 3000  # AC output power, production positive in SunSpec
        assert inv.WH.cvalue == 103_000 == truth_units(th, em, "export")
    finally:
        d.close()


@pytest.mark.parametrize("framing", ["tcp", "rtu"])
def test_each_wire_fault_shows_up_on_the_wire(th, tmp_path, framing):
    cases = {
        "timeout=1": "modbus_timeout",
        "exception=1:6": "modbus_exception",
        "crc=1": "modbus_crc" if framing == "rtu" else "modbus_garbled",
    }
    for spec, kind in cases.items():
        em, _ = emulator("meter", profile="const:w=100", faults=spec)
        req_tcp = struct.pack(">HHHBBHH", 0x1234, 0, 6, 1, 3, 40070, 2)
        req_rtu = bytes([1, 3, 0x9C, 0x86, 0, 2])
        c = crc16(req_rtu, 0, 6)
        req_rtu += bytes([c & 0xFF, c >> 8])
        if framing == "tcp":
            addr = th.start_tcp(em)
            with socket.create_connection(addr, timeout=0.4) as s:
                s.sendall(req_tcp)
                try:
                    raw = s.recv(512)
                except socket.timeout:
                    raw = b""
            with pytest.raises(ModbusError) as e:
                edge_tcp_read(addr, 1, 3, 40070, 55, timeout_ms=300)
        else:
            link = th.start_rtu(em, str(tmp_path / "link"))
            fd = open_pty(link)
            try:
                os.write(fd, req_rtu)
                raw = b""
                end = time.monotonic() + 0.4
                while time.monotonic() < end:
                    if select.select([fd], [], [], 0.05)[0]:
                        raw += os.read(fd, 512)
                with pytest.raises(ModbusError) as e:
                    edge_rtu_read(fd, 1, 3, 40070, 55, timeout_ms=300)
            finally:
                os.close(fd)
        assert e.value.kind == kind, spec
        if spec == "timeout=1":
            assert raw == b""
        elif spec.startswith("exception"):
            pdu = raw[7:] if framing == "tcp" else raw[1:-2]
            assert pdu == bytes([0x83, 6])
        elif framing == "rtu":
            assert len(raw) == 9 and raw[:3] == bytes([1, 3, 4])
            c = crc16(raw, 0, 7)
            assert raw[7:] != bytes([c & 0xFF, c >> 8])
        else:
            assert len(raw) == 13 and raw[:2] == b"\x12\x34" and raw[2:4] != b"\0\0"
        faults = th.call(lambda: [r for r in em.device.rows if r["type"] == "fault"])
        assert len(faults) == 2 and faults[0]["kind"] == kind.replace("modbus_", "").replace("crc", "corrupt").replace(
            "garbled", "corrupt")
        th.stop(em)


def test_counter_faults_stay_exact_through_the_wire(th, tmp_path):
    truth = str(tmp_path / "truth.jsonl")
    em, clock = emulator(
        "meter", profile="const:w=3600", faults="rollover=1000,replace=2h:0,sf=3h:1", truth_path=truth
    )
    addr = th.start_tcp(em)
    seen = []
    for step in range(9):  # 30-minute steps through the wrap (at ~17 min), replacement and sf change
        words = edge_tcp_read(addr, 1, 3, 40070, 55)
        r = decode_block(em, words)
        seen.append((r[R_IMP_HI] << 16 | r[R_IMP_LO], words[54]))
        state = th.call(lambda: em.device.counter_states()["import"])
        assert seen[-1] == (state["raw"], state["exp"] & 0xFFFF)
        clock.advance(1_800_000)
    assert seen[0] == (2**32 - 1000, 0)
    assert seen[1][0] == 800  # wrapped: 2**32 - 1000 + 1800
    assert seen[4][0] == 0 and seen[5][0] == 1800  # replaced at 2 h (0 reads as "not accumulated")
    assert seen[6] == (360, 1) and seen[8] == (720, 1)  # sf 1 from 3 h: 3600 Wh -> 360 x 10 Wh
    th.stop(em)
    from host_tools.emulator.device import read_truth

    rows = read_truth(truth)
    slots = [r for r in rows if r["type"] == "slot"]
    assert len(slots) == 9 and all(r["import_mj"] == 1800 * MJ_PER_WH for r in slots)  # 4.5 h stepped
    events = [r["kind"] for r in rows if r["type"] == "event"]
    assert events == ["replace", "sf"]
    assert rows[-1]["type"] == "summary" and rows[-1]["import_mj"] == 9 * 1800 * MJ_PER_WH


def test_speed_accelerates_simulated_time(th):
    clock = SimClock.private(T0, 36_000)  # ten simulated hours per real second
    em, _ = emulator("meter", clock=clock, profile="const:w=-2000")
    addr = th.start_tcp(em, tick_s=0.02)
    t_real = time.monotonic()
    r0 = decode_block(em, edge_tcp_read(addr, 1, 3, 40070, 55))
    time.sleep(0.3)
    r1 = decode_block(em, edge_tcp_read(addr, 1, 3, 40070, 55))
    real = time.monotonic() - t_real
    wh = (r1[R_EXP_HI] << 16 | r1[R_EXP_LO]) - (r0[R_EXP_HI] << 16 | r0[R_EXP_LO])
    # >= 0.3 s x 36000 = 3 h at 2 kW = 6000 Wh; at most the whole real time elapsed
    assert 6000 - 2 <= wh <= real * 36_000 / 3600 * 2000 + 2
    rows = th.call(lambda: [r for r in em.device.rows if r["type"] == "slot"])
    assert len(rows) >= 5  # the ticker closed the slots without any reads in between
