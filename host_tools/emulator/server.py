"""The one adapter between the emulators and pymodbus 3.16.1 (the pinned version).

A pymodbus change should touch only this file. What it uses from pymodbus:
  - pymodbus.simulator SimDevice/SimData: one read-only register block at the image start,
    with an async `action` called before every read; the action refreshes the registers from
    the device model and may answer with a Modbus exception code.
  - ModbusTcpServer / ModbusSerialServer (FramerType.SOCKET / RTU) with serve_forever(
    background=True) and shutdown(), per instance (several emulators can share one process).
  - the servers' `trace_packet(sending, data) -> bytes` hook, which sees every reply frame
    after framing (MBAP header or CRC already added): returning b"" sends nothing (no reply),
    returning altered bytes corrupts the reply on the wire. No framer subclass is needed.
    The same hook makes other unit ids behave like real links (pymodbus's SimCore would
    answer them with exception 4): silence on RTU, exception 0x0B on TCP.

RTU runs on pseudo-terminals. pymodbus opens a serial port by path, and a pty's master end
has none, so there are two pty pairs and a byte relay between their masters:

    pymodbus --(path)-- slave A | master A <-relay-> master B | slave B --(symlink PATH)-- client
"""
import asyncio
import errno
import logging
import os
import tty

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from host_tools.emulator.faults import CORRUPT, EXCEPTION, TIMEOUT
from host_tools.pty_link import check_link_path, place_link, remove_link


def quiet_pymodbus(level=logging.CRITICAL):
    """pymodbus logs a line per refused request; emulators report faults themselves."""
    logging.getLogger("pymodbus").setLevel(level)


class ListenError(OSError):
    """The TCP server could not listen (address in use, not local, no permission)."""


def _bind_error(host, port):
    """Why binding host:port fails, found by trying it the way asyncio's server does."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(infos[0][4])
    except OSError as exc:
        return exc.strerror or str(exc)
    return "refused by the server library"


class RegisterServer:
    """A Modbus server for one unit showing one register block.

    on_read(function, address, count) -> decision is called before each read is answered;
    it must bring `words` up to date (the list passed in, mutated in place) and returns None,
    TIMEOUT, CORRUPT or (EXCEPTION, code). corrupt(frame, framing) -> bytes mangles a reply.
    """

    def __init__(self, start, words, unit, on_read, corrupt):
        self.start = start
        self.words = words
        self.unit = unit
        self.on_read = on_read
        self.corrupt = corrupt
        self.framing = None
        self.requests = 0
        self.replies = 0
        self._pending = None
        self._server = None
        self._fds = []
        self._relay_readers = []
        self.link_path = None
        self.address = None

    def _sim_device(self):
        return SimDevice(
            id=self.unit,
            simdata=[SimData(self.start, values=list(self.words), datatype=DataType.REGISTERS, readonly=True)],
            action=self._action,
        )

    async def _action(self, function, start_address, address, count, registers, set_values):
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION
        self.requests += 1
        decision = self.on_read(function, address, count)
        off = self.start - start_address
        registers[off : off + len(self.words)] = self.words
        if isinstance(decision, tuple) and decision[0] == EXCEPTION:
            self._pending = None
            return ExcCodes(decision[1]) if decision[1] in ExcCodes._value2member_map_ else ExcCodes.DEVICE_FAILURE
        self._pending = decision
        return None

    def _trace_packet(self, sending, data):
        if not sending:
            return data
        if self.framing == "rtu" and data and data[0] != self.unit:
            return b""  # RS-485: a unit that is not on the line stays silent
        if self.framing == "tcp" and len(data) >= 8 and data[6] != self.unit:
            # Modbus TCP gateway: "gateway target device failed to respond" (0x0B)
            return data[:4] + bytes([0, 3, data[6], (data[7] & 0x7F) | 0x80, 0x0B])
        decision = self._pending
        self._pending = None
        if decision == TIMEOUT:
            return b""
        self.replies += 1
        if decision == CORRUPT:
            return self.corrupt(data, self.framing)
        return data

    async def start_tcp(self, host="127.0.0.1", port=0):
        """Listen on host:port (0 picks a free port); returns the bound (host, port)."""
        self.framing = "tcp"
        self._server = ModbusTcpServer(
            self._sim_device(),
            framer=FramerType.SOCKET,
            address=(host, port),
            trace_packet=self._trace_packet,
        )
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError:  # pymodbus hides the reason: "Could not start listen"
            self._server = None
            raise ListenError("cannot listen on %s:%d: %s" % (host, port, _bind_error(host, port))) from None
        sock = self._server.transport.sockets[0]
        self.address = sock.getsockname()[:2]
        return self.address

    async def start_rtu(self, link_path):
        """RTU on a pseudo-terminal whose client end is symlinked at link_path."""
        self.framing = "rtu"
        check_link_path(link_path)
        m_srv, s_srv = os.openpty()
        m_cli, s_cli = os.openpty()
        self._fds = [m_srv, s_srv, m_cli, s_cli]
        for fd in (s_srv, s_cli):
            tty.setraw(fd)
        for fd in (m_srv, m_cli):
            os.set_blocking(fd, False)
        self.link_target = os.ttyname(s_cli)
        place_link(self.link_target, link_path)
        self.link_path = link_path
        loop = asyncio.get_running_loop()
        loop.add_reader(m_srv, self._relay, m_srv, m_cli)
        loop.add_reader(m_cli, self._relay, m_cli, m_srv)
        self._relay_readers = [m_srv, m_cli]
        # Slaves stay open here too: a master reads EIO once no process holds its slave.
        self._server = ModbusSerialServer(
            self._sim_device(),
            framer=FramerType.RTU,
            port=os.ttyname(s_srv),
            baudrate=115200,
            trace_packet=self._trace_packet,
        )
        await self._server.serve_forever(background=True)
        return link_path

    @staticmethod
    def _relay(src, dst):
        try:
            data = os.read(src, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        try:
            os.write(dst, data)
        except (BlockingIOError, OSError):
            pass  # nobody reading and the pty buffer is full: the line drops bytes

    async def stop(self):
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
        loop = asyncio.get_running_loop()
        for fd in self._relay_readers:
            loop.remove_reader(fd)
        self._relay_readers = []
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        if self.link_path:
            remove_link(self.link_path, self.link_target)
            self.link_path = None
