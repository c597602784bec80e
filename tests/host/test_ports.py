"""The agent's meter ports (firmware/lib/ports.py) on a real pseudo-terminal, under the real
MicroPython unix port (the runtime the agent runs on) and CPython.

A stale RTU reply (a complete, valid frame: unit 1, function 3, 2 registers) waits on the
line when the next request is about to go out: discard() drops it, so it cannot pass as
that request's reply (RTU has no transaction id)."""
import json
import os
import subprocess
import sys
import time
import tty

import pytest

from conftest import ROOT, micropython_or_fail, mp_env

LIB = os.path.join(ROOT, "firmware", "lib")
STALE = bytes([1, 3, 4, 0, 1, 0, 2, 0x2A, 0x32])

SCRIPT = """
import json, sys
from ports import SerialPort
port = SerialPort(%r)
port.ensure()
print("open")
sys.stdin.readline()  # the stale frame is on the line now
print(json.dumps([port.discard(), port.read(5)]))
"""


@pytest.fixture
def pty():
    master, slave = os.openpty()
    tty.setraw(slave)  # raw before anything is written (canonical mode holds a partial line)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_discard_drops_a_stale_rtu_reply_cpython(pty):
    master, path = pty
    sys.path.insert(0, LIB)
    try:
        from ports import SerialPort

        port = SerialPort(path)
        assert port.discard() == 0  # not opened yet: nothing to drop
        port.ensure()
        os.write(master, STALE)
        time.sleep(0.05)
        assert port.discard() == len(STALE) and port.read(5) == 0
        os.write(master, b"\x01\x03")  # what arrives after the request is read as before
        time.sleep(0.05)
        assert port.read(5) == 2 and port.buf[:2] == b"\x01\x03"
    finally:
        sys.path.remove(LIB)


@pytest.mark.micropython
def test_discard_drops_a_stale_rtu_reply_micropython(pty):
    master, path = pty
    exe = micropython_or_fail()
    p = subprocess.Popen([exe, "-X", "heapsize=256K", "-c", SCRIPT % path], cwd=ROOT,
                         env=mp_env([LIB]), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        assert p.stdout.readline().strip() == b"open"  # opened raw (which flushes input)
        os.write(master, STALE)
        time.sleep(0.05)
        out, _ = p.communicate(b"go\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out.decode()
    assert json.loads(out.decode().strip().splitlines()[-1]) == [len(STALE), 0]
