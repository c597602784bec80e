"""Real pymodbus 3.16.1 servers for the host tests: TCP on loopback and RTU on a pseudo-terminal.

Device images are register lists placed at a wire address (SimData address == wire address).
pymodbus's own client reads each image back here, so the fixtures themselves are checked
against the oracle before other tests rely on them.
"""
import asyncio
import os
import select
import socket
import struct
import threading
import tty

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def sim_device(unit, blocks):
    """blocks: [(wire_address, [words])] -> SimDevice with shared holding/input registers."""
    return SimDevice(
        id=unit,
        simdata=[SimData(addr, values=list(words), datatype=DataType.REGISTERS) for addr, words in blocks],
    )


class _LoopThread:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class TcpServer:
    """pymodbus TCP server on 127.0.0.1:<free port> in a background event loop."""

    def __init__(self, devices):
        self.port = free_port()
        self._lt = _LoopThread()

        async def start():
            self.server = ModbusTcpServer(devices, address=("127.0.0.1", self.port))
            await self.server.serve_forever(background=True)

        self._lt.run(start())

    def stop(self):
        self._lt.run(self.server.shutdown())
        self._lt.close()


class PtyPair:
    """Two pseudo-terminals joined by a relay thread: the server opens `server_path`,
    the client under test opens `client_path` (both raw). Bytes are copied unchanged."""

    def __init__(self):
        self._m1, s1 = os.openpty()
        self._m2, s2 = os.openpty()
        for fd in (s1, s2):
            tty.setraw(fd)
        self.server_path = os.ttyname(s1)
        self.client_path = os.ttyname(s2)
        self._slaves = (s1, s2)  # keep open so the masters never see EOF between opens
        self._stop_r, self._stop_w = os.pipe()
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

    def _relay(self):
        peer = {self._m1: self._m2, self._m2: self._m1}
        while True:
            r, _, _ = select.select([self._m1, self._m2, self._stop_r], [], [])
            if self._stop_r in r:
                return
            for fd in r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data:
                    os.write(peer[fd], data)

    def close(self):
        os.write(self._stop_w, b"x")
        self.thread.join(5)
        for fd in (self._m1, self._m2, self._stop_r, self._stop_w) + self._slaves:
            os.close(fd)


class RtuServer:
    """pymodbus RTU server on one end of a PtyPair; clients open `self.path`."""

    def __init__(self, devices, baudrate=9600):
        self.ptys = PtyPair()
        self.path = self.ptys.client_path
        self._lt = _LoopThread()

        async def start():
            self.server = ModbusSerialServer(
                devices, framer=FramerType.RTU, port=self.ptys.server_path, baudrate=baudrate
            )
            await self.server.serve_forever(background=True)

        self._lt.run(start())

    def stop(self):
        self._lt.run(self.server.shutdown())
        self._lt.close()
        self.ptys.close()


def f32(value):
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


@pytest.fixture
def tcp_server():
    servers = []

    def make(devices):
        s = TcpServer(devices)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def rtu_server():
    servers = []

    def make(devices):
        s = RtuServer(devices)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def test_tcp_fixture_serves_the_image_to_pymodbus_client(tcp_server):
    srv = tcp_server(sim_device(3, [(100, [1, 2, 0xFFFF]), (0x34, f32(-12.5))]))
    c = ModbusTcpClient("127.0.0.1", port=srv.port)
    assert c.connect()
    try:
        assert c.read_holding_registers(100, count=3, device_id=3).registers == [1, 2, 0xFFFF]
        assert c.read_input_registers(0x34, count=2, device_id=3).registers == f32(-12.5)
        assert c.read_holding_registers(100, count=3, device_id=9).isError()
    finally:
        c.close()


def test_edge_tcp_client_first_request_carries_first_tid(tcp_server):
    """pymodbus echoes the MBAP transaction id: the reply to the first request shows it."""
    from edge.modbus_pdu import REPLY
    from edge.modbus_tcp import TcpClient

    srv = tcp_server(sim_device(3, [(100, [7, 8])]))
    for first in (1, 0x0102):
        client = TcpClient(1000, first_tid=first)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            for k in range(2):
                words = [0, 0]
                req = bytearray(12)
                client.request(req, 3, 3, 100, 2, words, 0, 0)
                s.sendall(req)
                reply = b""
                while len(reply) < 13:
                    reply += s.recv(64)
                assert struct.unpack(">H", reply[:2])[0] == first + k
                assert client.feed(reply, 1) == REPLY and words == [7, 8]
