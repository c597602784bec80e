"""The agent's byte ports: Modbus TCP, serial (pty/tty on a host, machine.UART on a board)
and a UART stream that reads into one preallocated buffer.

Every meter port has ensure() (connect/open, again after a failure), write(data),
read() -> n: n bytes arrived in port.buf (0: none yet; OSError when the link is gone; an int,
not a tuple, so the poll path allocates nothing) and close(); the runner (firmware/agent_main.py) and `smeter read` drive them the same way.
Radio ports give read_available(wait_ms) -> bytes and write(data).
"""
import uart_lines

from edge.compat import sleep_ms

class TcpPort:
    """A Modbus TCP connection with non-blocking reads; reconnects on the next poll."""

    def __init__(self, host, port, timeout_ms):
        self.addr = (host, port)
        self.timeout_ms = timeout_ms
        self.sock = None
        self.buf = bytearray(260)

    def ensure(self):
        if self.sock is not None:
            return
        import select
        import socket

        addr = socket.getaddrinfo(self.addr[0], self.addr[1], 0, socket.SOCK_STREAM)[0][-1]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(self.timeout_ms / 1000)
        try:
            s.connect(addr)
        except BaseException:
            s.close()
            raise
        s.setblocking(False)
        self._poll = select.poll()
        self._poll.register(s, select.POLLIN)
        self._recv = getattr(s, "recv_into", None) or s.readinto
        self.sock = s

    def write(self, data):
        self.sock.send(bytes(data))

    def read(self):
        """(buffer, n): n bytes arrived (0: none yet). OSError when the peer closed."""
        if not self._poll.poll(0):
            return 0
        try:
            n = self._recv(self.buf)
        except OSError as e:
            if e.args and e.args[0] in (11, 110):
                return 0
            raise
        if n is None:
            return 0
        if n == 0:
            raise OSError("connection closed by the device")
        return n

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


class SerialPort:
    """A byte port over firmware/lib/uart_lines.py (pty/tty path on a host, machine.UART on a
    board); read() gives (buffer, n) like TcpPort. Given a callable instead of a port, it opens
    the port on first use and again after a failure (a pty that appears later)."""

    def __init__(self, port):
        self.port = None if callable(port) else port
        self.opener = port if callable(port) else None
        self.buf = b""

    def ensure(self):
        if self.port is None:
            self.port = self.opener()

    def write(self, data):
        self.port.write(data)

    def read(self):
        b = self.port.read_available(0)
        self.buf = b
        return len(b)

    def close(self):
        if self.opener is not None:
            self.port = None


def open_serial(path_or_uart, baud=9600):
    """A uart_lines port: a path opens a pty/tty raw; anything else is a machine.UART-like."""
    if not isinstance(path_or_uart, str):
        return uart_lines.UartPort(path_or_uart, sleep_ms)
    try:
        f = open(path_or_uart, "r+b", buffering=0)
    except TypeError:
        f = open(path_or_uart, "r+b")
    try:
        import termios

        if hasattr(termios, "setraw"):
            termios.setraw(f.fileno())
        else:
            import tty

            tty.setraw(f.fileno())
    except (ImportError, OSError):
        pass  # not a tty (e.g. a test pipe)
    return uart_lines.StreamPort(f)


class UartStream:
    """A UART with any(), readinto(buf, n) and write() (smeter_board.UART on MPS2-AN385,
    machine.UART on esp32/rp2) as a meter port and as a radio port. read() lands the bytes
    in one buffer allocated here, so the poll path allocates nothing."""

    def __init__(self, uart, size=256):
        self.u = uart
        self.buf = bytearray(size)

    def ensure(self):
        pass

    def write(self, data):
        self.u.write(data)

    def read(self):
        n = self.u.any()
        if not n:
            return 0
        b = self.buf
        return self.u.readinto(b, n if n < len(b) else len(b)) or 0

    def read_available(self, wait_ms):
        n = self.read()
        return bytes(self.buf[:n]) if n else b""

    def close(self):
        pass
