"""Moves bytes between a serial port and a sans-I/O driver (edge/wisun.py), on any runtime.

Two port shapes: `StreamPort` for a file object that select.poll can watch (a pty opened
with open(path, 'r+b') on the MicroPython unix port or on CPython), and `UartPort` for
machine.UART on a board. Reads go byte by byte while the port says readable, because
MicroPython's f.read(n) blocks until n bytes arrive; flush() is never called (a pty
raises EINVAL on it).
"""
import select

from edge.backoff import ticks_diff

_READ_LIMIT = 512


class StreamPort:
    def __init__(self, f):
        self.f = f
        self.p = select.poll()
        self.p.register(f, select.POLLIN)

    def read_available(self, wait_ms):
        if not self.p.poll(wait_ms):
            return b""
        out = bytearray()
        while len(out) < _READ_LIMIT:
            b = self.f.read(1)
            if not b:
                break
            out += b
            if not self.p.poll(0):
                break
        return bytes(out)

    def write(self, data):
        mv = memoryview(data)
        while len(mv):
            n = self.f.write(mv)
            if n is None:
                n = len(mv)
            mv = mv[n:]


class UartPort:
    """machine.UART: any() says how much is buffered; read(n) returns at most n bytes."""

    def __init__(self, uart, sleep_ms):
        self.u = uart
        self.sleep_ms = sleep_ms

    def read_available(self, wait_ms):
        if not self.u.any() and wait_ms > 0:
            self.sleep_ms(wait_ms)
        n = self.u.any()
        if not n:
            return b""
        return self.u.read(n if n < _READ_LIMIT else _READ_LIMIT) or b""

    def write(self, data):
        self.u.write(data)


def pump(driver, port, ticks, wait_ms):
    """One turn: write what the driver wants, wait for bytes (not past its deadline), feed them.

    `ticks()` returns ms ticks wrapping at 2**30 (time.ticks_ms on a board).
    """
    now = ticks()
    out = driver.poll(now)
    if out:
        port.write(out)
    d = driver.deadline()
    if d is not None:
        left = ticks_diff(d, now)
        if left < wait_ms:
            wait_ms = left if left > 0 else 0
    data = port.read_available(wait_ms)
    now = ticks()
    if data:
        driver.feed(data, now)
    out = driver.poll(now)
    if out:
        port.write(out)
    return data
