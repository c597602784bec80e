"""Modbus TCP adapter: a socket pipe around edge.modbus_tcp.TcpClient.

Runs unchanged on MicroPython (unix port, boards with network) and CPython; `smeter read
--tcp` uses it too. Transport failures raise OSError; protocol failures raise the edge's
ModbusError subclasses. The socket is polled in short slices so the edge deadline decides.
"""
import select
import socket

from edge.compat import ticks as _ticks
from edge.modbus_pdu import REPLY
from edge.modbus_tcp import TcpClient


_SLICE_MS = 20  # poll wait per slice; the edge client's deadline is the real timeout


class TcpLink:
    def __init__(self, host, port, timeout_ms=1000):
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_ms / 1000)
        try:
            self.sock.connect(addr)
        except BaseException:
            self.sock.close()
            raise
        # Non-blocking reads after poll(): both interpreters then return what has arrived
        # (a blocking MicroPython readinto would wait to fill the whole buffer).
        self.sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(self.sock, select.POLLIN)
        self.client = TcpClient(timeout_ms)
        self.req = bytearray(12)
        self.rx = bytearray(260)
        self._recv_into = getattr(self.sock, "recv_into", None) or self.sock.readinto

    def read(self, unit, function, address, count, words, woff=0):
        """Read `count` registers into words[woff:]; returns when they are there or raises."""
        c = self.client
        c.request(self.req, unit, function, address, count, words, woff, _ticks())
        self.sock.send(self.req)  # 12 bytes: fits any socket buffer in one send
        while True:
            if self._poll.poll(_SLICE_MS):
                try:
                    k = self._recv_into(self.rx)
                except OSError as e:
                    if not _is_timeout(e):
                        raise
                    k = None
                if k == 0:
                    raise OSError("connection closed by the device")
                if k and c.feed(self.rx, _ticks(), k) == REPLY:
                    return
            c.check(_ticks())

    def close(self):
        self.sock.close()


_TIMEOUT = getattr(socket, "timeout", None)
try:
    _BLOCKING = BlockingIOError
except NameError:  # MicroPython
    _BLOCKING = None


def _is_timeout(e):
    """A read that found no data: BlockingIOError/timeout on CPython, EAGAIN/ETIMEDOUT on MicroPython."""
    if _TIMEOUT is not None and isinstance(e, _TIMEOUT):
        return True
    if _BLOCKING is not None and isinstance(e, _BLOCKING):
        return True
    return bool(e.args) and e.args[0] in (11, 110)
