"""The byte ports, on every runtime: the one home of the agent's UART and TCP byte streams.

    TcpPort(host, port, timeout_ms)   Modbus TCP (socket)
    SerialPort(path, baud)            a serial device by path: a pty or /dev/tty* (host, unix port)
    UartStream(uart)                  a board's UART with any()/readinto()/write() (machine.UART,
                                      smeter_board.UART on MPS2-AN385)

Each has ensure() (open or connect; again after a failure; True when it opened just now),
write(data), read(wait_ms=0) -> n (n bytes arrived in port.buf, a buffer allocated once: 0 none
yet after waiting up to wait_ms, OSError when the link is gone; an int, so polling allocates
nothing), discard() -> bytes dropped that were waiting before a request, read_available(wait_ms)
-> bytes (the Wi-SUN module's side) and close(). The agent's runner (firmware/agent_main.py)
drives them in its loop; transact() is one blocking Modbus request and reply over any of them
(`smeter read`, the board tests).
"""
import select

from edge.compat import IS_MICROPYTHON, const, sleep_ms, ticks
from edge.modbus_pdu import REPLY

_BUF = const(260)  # a Modbus TCP ADU at most; an RTU frame is at most 256


class _Polled:
    """What TcpPort and SerialPort share: an OS handle `io` (None: closed) that poll() watches,
    and read() into self.buf."""

    io = None

    def read_available(self, wait_ms):
        if wait_ms > 0:
            self._poll.poll(wait_ms)
        n = self.read()
        return bytes(self.buf[:n]) if n else b""

    def close(self):
        if self.io is not None:
            try:
                self.io.close()
            except OSError:
                pass
            self.io = None


class TcpPort(_Polled):
    """A Modbus TCP connection with non-blocking reads; reconnects on the next ensure()."""

    def __init__(self, host, port, timeout_ms, size=_BUF):
        self.addr = (host, port)
        self.timeout_ms = timeout_ms
        self.buf = bytearray(size)

    def ensure(self):
        if self.io is not None:
            return False
        import socket

        addr = socket.getaddrinfo(self.addr[0], self.addr[1], 0, socket.SOCK_STREAM)[0][-1]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(self.timeout_ms / 1000)
        try:
            s.connect(addr)
        except BaseException:
            s.close()
            raise
        # Non-blocking after poll(): both interpreters then return what has arrived (a
        # blocking MicroPython readinto would wait to fill the whole buffer).
        s.setblocking(False)
        self._poll = select.poll()
        self._poll.register(s, select.POLLIN)
        self._recv = getattr(s, "recv_into", None) or s.readinto
        self.io = s
        return True

    def write(self, data):
        self.io.send(bytes(data))  # a request is 12 bytes: one send

    def discard(self):
        """Nothing: a late TCP reply carries its transaction id and is refused by it."""
        return 0

    def read(self, wait_ms=0):
        if not self._poll.poll(wait_ms):
            return 0
        try:
            n = self._recv(self.buf)
        except OSError as e:
            if _no_data(e):
                return 0
            raise
        if n is None:
            return 0
        if n == 0:
            raise OSError("connection closed by the device")
        return n


class SerialPort(_Polled):
    """A serial device by path, raw 8N1 at `baud` (ignored by a pty), opened on ensure().

    CPython reads what has arrived with one readinto; MicroPython's readinto blocks until the
    buffer is full, so there bytes come one at a time through a 1-byte buffer while poll()
    says readable. flush() is never called (a pty raises EINVAL on it)."""

    def __init__(self, path, baud=9600, size=_BUF):
        self.path = path
        self.baud = baud
        self.buf = bytearray(size)
        self._one = bytearray(1)

    def ensure(self):
        if self.io is not None:
            return False
        try:
            f = open(self.path, "r+b", buffering=0)
        except TypeError:  # MicroPython: no buffering argument
            f = open(self.path, "r+b")
        try:
            _raw(f.fileno(), self.baud)
        except BaseException:
            f.close()
            raise
        self._poll = select.poll()
        self._poll.register(f, select.POLLIN)
        self.io = f
        return True

    def write(self, data):
        mv = memoryview(data)
        while len(mv):  # a write may take only part of it
            n = self.io.write(mv)
            if n is None:
                n = len(mv)
            mv = mv[n:]

    def discard(self):
        """Drop bytes waiting before a request (a reply that came after its poll timed out
        and after the next poll's reply was taken): RTU has no transaction id, so such a
        complete stale frame would pass as the next poll's reply, with a sample moment before
        that poll's stamp. Returns the number of bytes dropped."""
        k = 0
        while self.io is not None:
            n = self.read()
            if not n:
                break
            k += n
        return k

    def read(self, wait_ms=0):
        if not self._poll.poll(wait_ms):
            return 0
        f = self.io
        b = self.buf
        if not IS_MICROPYTHON:
            n = f.readinto(b)
            if not n:
                raise OSError("serial port closed")
            return n
        one = self._one
        n = 0
        while n < len(b):
            if not f.readinto(one):
                if n == 0:
                    raise OSError("serial port closed")
                break
            b[n] = one[0]
            n += 1
            if not self._poll.poll(0):
                break
        return n


class UartStream:
    """A board UART with any(), readinto(buf, n) and write(): read() lands the bytes in one
    buffer allocated here, so the poll path allocates nothing (tests/board/)."""

    def __init__(self, uart, size=_BUF):
        self.u = uart
        self.buf = bytearray(size)

    def ensure(self):
        return False

    def write(self, data):
        self.u.write(data)

    def read(self, wait_ms=0):
        n = self.u.any()
        while not n and wait_ms > 0:  # a short wait for a reply (the runner's first read)
            sleep_ms(1)
            wait_ms -= 1
            n = self.u.any()
        if not n:
            return 0
        b = self.buf
        return self.u.readinto(b, n if n < len(b) else len(b)) or 0

    def discard(self):
        """Drop bytes waiting before a request (SerialPort.discard: a stale RTU reply);
        returns how many."""
        k = 0
        while True:
            n = self.read()
            if not n:
                return k
            k += n

    def read_available(self, wait_ms):
        if wait_ms > 0 and not self.u.any():
            sleep_ms(wait_ms)
        n = self.read()
        return bytes(self.buf[:n]) if n else b""

    def close(self):
        pass


def transact(port, client, req, unit, function, address, count, words, woff=0):
    """One blocking Modbus request: read `count` registers into words[woff:] or raise the
    edge client's ModbusError (timeout, exception reply, bad frame) or OSError (the link).
    `client` is an edge RtuClient/TcpClient, `req` its request buffer (8 or 12 bytes). A
    late reply to an earlier request is drained first: it must not meet this one."""
    port.ensure()
    while port.read():
        pass
    client.request(req, unit, function, address, count, words, woff, ticks())
    port.write(req)
    while True:
        n = port.read()
        if n:
            if client.feed(port.buf, ticks(), n) == REPLY:
                return
        else:
            client.check(ticks())
            sleep_ms(1)


def _raw(fd, baud):
    """Raw mode at `baud` (a pty accepts and ignores the speed); not a tty (a test pipe):
    left as it is."""
    try:
        import termios
    except ImportError:
        return
    try:
        if hasattr(termios, "setraw"):
            termios.setraw(fd)  # MicroPython
        else:
            import tty

            tty.setraw(fd)
    except OSError:
        return  # not a terminal
    speed = getattr(termios, "B%d" % baud, None)
    if speed is None:
        raise OSError("baud rate %d is not a standard serial speed here" % baud)
    a = termios.tcgetattr(fd)
    a[4] = speed
    a[5] = speed
    termios.tcsetattr(fd, termios.TCSANOW, a)


def _no_data(e):
    """A read that found nothing: EAGAIN/ETIMEDOUT (MicroPython), BlockingIOError (CPython)."""
    if not IS_MICROPYTHON and isinstance(e, (BlockingIOError, TimeoutError)):
        return True
    return bool(e.args) and e.args[0] in (11, 110)
