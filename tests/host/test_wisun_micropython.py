"""The driver and firmware/lib/uart_lines.py under the real `micropython`, against the
emulator's pty: what a board runs, minus the board.
"""
import os
import socket
import threading

import pytest

from conftest import ROOT, run_micropython
from host_tools.emulator.wisun_link import WisunEmulator, load_profile

SCRIPT = r'''
import sys, time, json, termios
import uart_lines
from edge.wisun import (WisunDriver, EV_JOINED, EV_SEND_OK, EV_SEND_FAILED, EV_UDP_RECEIVED,
                        EV_GATE)
path = sys.argv[1]
n = int(sys.argv[2])
with open("hw/modules/bp35a1.json") as fp:
    prof = json.load(fp)
t = prof["timing_ms"]
t["cmd"] = 400; t["reset"] = 600; t["wopt"] = 600; t["join"] = 1500; t["send"] = 600
t["reauth"] = 1500; t["line_gap"] = 500
cfg = {"rbid": "0123456789ABCDEF0123456789ABCDEF", "pwd": "SECRETPWD123", "channel": 0x21,
       "pan_id": 0x8888, "coordinator": "FE80:0000:0000:0000:021D:1290:1234:5678",
       "backoff_base_ms": 50, "backoff_max_ms": 400}
f = open(path, "r+b")
termios.setraw(f.fileno())
port = uart_lines.StreamPort(f)
d = WisunDriver(prof, cfg)
acked = 0
got = {}
last_sent = {}
inflight = False
reopened = 0
end = time.ticks_add(time.ticks_ms(), 30000)
while time.ticks_diff(end, time.ticks_ms()) > 0 and (len(got) < n or not reopened):
    uart_lines.pump(d, port, time.ticks_ms, 20)
    while True:
        e = d.next_event()
        if e is None:
            break
        k = e[0]
        if k == EV_JOINED:
            print("JOINED")
        elif k == EV_SEND_OK:
            acked += 1
            inflight = False
        elif k == EV_SEND_FAILED:
            inflight = False
            print("FAILED", e[1], e[2])
        elif k == EV_UDP_RECEIVED:
            text = e[1].decode()
            got[text] = 1
            print("RX", text)
        elif k == EV_GATE:
            print("GATE", e[1], e[2])
            if e[1] == 1 and e[2] and got:
                reopened += 1  # the session gate opened again after a lifetime expiry
    if d.can_send() and not inflight:
        # the oldest payload the collector has not answered, resent after 300 ms (a reply
        # is lost when it arrives while the session re-authenticates)
        now = time.ticks_ms()
        for i in range(n):
            if ("ACKmp-%d" % i) in got:
                continue
            if i in last_sent and time.ticks_diff(now, last_sent[i]) < 300:
                continue
            port.write(d.send(("mp-%d" % i).encode(), i, now))
            last_sent[i] = now
            inflight = True
            break
rx = len(got)
c = d.counters
print("DONE", acked, rx, c["unknown_lines"] + c["garbled_lines"], c["wopt_writes"])
'''


class Echo:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.got = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                return
            self.got.append(data)
            self.sock.sendto(b"ACK" + data, peer)


@pytest.mark.micropython
def test_driver_under_micropython_against_the_emulator(tmp_path):
    echo = Echo()
    emu = WisunEmulator(load_profile("bp35a1"), echo.sock.getsockname(),
                        "garbage=0.2,session_expiry=20s,seed=4", 0.01).start()
    script = tmp_path / "wisun_mp_agent.py"
    script.write_text(SCRIPT)
    try:
        proc = run_micropython([str(script), emu.slave_path, "20"], heap="160K",
                               extra_paths=[os.path.join(ROOT, "firmware", "lib")], timeout=90)
    finally:
        emu.stop()
        echo.sock.close()
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 0, out
    lines = out.splitlines()
    assert "JOINED" in lines
    rx = [ln[3:] for ln in lines if ln.startswith("RX ")]
    assert sorted(set(rx)) == sorted("ACKmp-%d" % i for i in range(20)), out
    assert sorted(set(echo.got)) == sorted(("mp-%d" % i).encode() for i in range(20))
    done = [ln for ln in lines if ln.startswith("DONE ")][-1].split()
    acked, received, garbled, wopt = (int(x) for x in done[1:])
    assert acked >= 20 and received == 20 and wopt == 1
    assert garbled >= 1 and emu.stats["garbage_lines"] >= 1  # noise was seen and survived
    assert emu.stats["session_expiries"] >= 1
    assert lines.index("GATE 1 False") < len(lines) - 1 - lines[::-1].index("GATE 1 True")
