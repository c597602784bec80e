"""The Wi-SUN emulator on a real pty, driven by the real edge driver through firmware/lib's
port adapter, with a loopback UDP echo server standing in for the collector.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "firmware", "lib"))

import uart_lines  # noqa: E402

from edge.wisun import (  # noqa: E402
    EV_GATE, EV_JOIN_FAILED, EV_JOINED, EV_REOPEN, EV_SEND_FAILED, EV_SEND_OK, EV_UDP_RECEIVED,
    GATE_RATE, GATE_SESSION, MODE_HEX, WisunDriver, WisunPayloadTooLarge,
)
from host_tools.commands import wisun_emulator as wisun_emulator_cmd  # noqa: E402
from host_tools.emulator.wisun_faults import FaultSpecError, parse_faults  # noqa: E402
from host_tools.emulator.wisun_link import (  # noqa: E402
    WisunEmulator, load_profile, profile_ids, start_line_clock,
)

COORD = "FE80:0000:0000:0000:021D:1290:1234:5678"
CFG = {"rbid": "0123456789ABCDEF0123456789ABCDEF", "pwd": "SECRETPWD123", "channel": 0x21,
       "pan_id": 0x8888, "coordinator": COORD, "backoff_base_ms": 50, "backoff_max_ms": 400,
       "max_join_failures": 3, "max_link_failures": 3}


def ticks():
    return int(time.monotonic() * 1000) & 0x3FFFFFFF


def fast(profile):
    """Driver timeouts for accelerated runs (the emulator's latencies are scaled down)."""
    p = dict(profile)
    p["timing_ms"] = dict(profile["timing_ms"], cmd=400, reset=600, wopt=600, join=1500,
                          send=600, reauth=1500, line_gap=500)
    return p


class Echo:
    """The collector's stand-in: answers every datagram with b'ACK' + datagram."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.addr = self.sock.getsockname()
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

    def wait(self, n, timeout=3.0, last=None):
        """The forwarded datagram trails EVENT 21 00 by a thread hop: wait for n of them
        (and for `last` to be among them)."""
        end = time.monotonic() + timeout
        while (len(self.got) < n or (last is not None and last not in self.got)) \
                and time.monotonic() < end:
            time.sleep(0.005)
        return self.got

    def close(self):
        self.sock.close()


class Agent:
    def __init__(self, path, profile, cfg=CFG):
        self.f = open(path, "r+b", buffering=0)
        self.port = uart_lines.StreamPort(self.f)
        self.d = WisunDriver(profile, cfg)
        self.events = []

    def step(self, wait_ms=5):
        uart_lines.pump(self.d, self.port, ticks, wait_ms)
        while True:
            e = self.d.next_event()
            if e is None:
                return
            self.events.append(e)

    def run_until(self, pred, timeout=8.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.step()
            if pred():
                return
        raise AssertionError("timed out; state %d counters %s" % (self.d.state, self.d.counters))

    def of(self, kind):
        return [e for e in self.events if e[0] == kind]

    def deliver(self, payloads, timeout=10.0):
        """Send each payload until the module confirms it (EVENT 21 00)."""
        end = time.monotonic() + timeout
        for i, p in enumerate(payloads):
            while True:
                assert time.monotonic() < end, ("stuck", i, self.d.counters)
                self.run_until(self.d.can_send, timeout=end - time.monotonic())
                n = len(self.of(EV_SEND_OK)) + len(self.of(EV_SEND_FAILED))
                self.port.write(self.d.send(p, i, ticks()))
                self.run_until(
                    lambda: len(self.of(EV_SEND_OK)) + len(self.of(EV_SEND_FAILED)) > n,
                    timeout=end - time.monotonic())
                last = [e for e in self.events if e[0] in (EV_SEND_OK, EV_SEND_FAILED)][-1]
                if last[0] == EV_SEND_OK:
                    break

    def close(self):
        self.f.close()


@pytest.fixture
def echo():
    e = Echo()
    yield e
    e.close()


@pytest.fixture
def rig(echo):
    made = []

    def make(module="bp35a1", faults="", scale=0.01, **kw):
        prof = load_profile(module)
        emu = WisunEmulator(prof, echo.addr, faults, scale, **kw).start()
        agent = Agent(emu.slave_path, fast(prof))
        made.append((emu, agent))
        return emu, agent

    yield make
    for emu, agent in made:
        agent.close()
        emu.stop()


@pytest.mark.parametrize("module", profile_ids())
def test_join_send_and_receive_on_every_module(rig, echo, module):
    emu, a = rig(module)
    a.run_until(lambda: a.of(EV_JOINED))
    payloads = [bytes([i]) * (10 + i) + b"\r\n\x00" for i in range(5)]
    a.deliver(payloads)
    a.run_until(lambda: len(a.of(EV_UDP_RECEIVED)) == 5)
    assert echo.wait(5) == payloads
    got = [e[1] for e in a.of(EV_UDP_RECEIVED)]
    assert got == [b"ACK" + p for p in payloads]
    assert all(e[2][0] == COORD for e in a.of(EV_UDP_RECEIVED))
    assert a.d.payload_mode == MODE_HEX
    assert a.d.version == "1.2.10"
    c = a.d.counters
    assert c["unknown_lines"] == c["garbled_lines"] == c["timeouts"] == 0
    assert emu.stats["forwarded"] == 5 and emu.stats["received"] == 5
    # the join's PANA datagram (UDP 716) was parsed and counted, not handed up as a reply
    assert c["udp_pana"] >= 1 and c["udp_received"] == 5


def test_wopt_writes_flash_once_across_reopens(rig):
    emu, a = rig("bp35a1")
    a.run_until(lambda: a.of(EV_JOINED))
    assert emu.flash_writes == 1 and a.d.counters["wopt_writes"] == 1
    a.d.reopen(ticks())
    a.events.clear()
    a.run_until(lambda: a.of(EV_JOINED))
    assert emu.flash_writes == 1 and a.d.counters["wopt_writes"] == 1
    emu2, b = rig("rl7023")  # hex-only module: never written
    b.run_until(lambda: b.of(EV_JOINED))
    assert emu2.flash_writes == 0 and b.d.counters["wopt_writes"] == 0


def test_payload_limit_end_to_end(rig, echo):
    emu, a = rig("bp35c0")
    a.run_until(lambda: a.of(EV_JOINED))
    big = bytes(range(256)) * 4 + bytes(208)
    assert len(big) == a.d.max_payload == 1232
    a.deliver([big])
    a.run_until(lambda: emu.stats["lost"], timeout=3)
    assert echo.got == [big]
    # the 1235-byte reply exceeds what the module can deliver: dropped, never truncated
    assert not a.of(EV_UDP_RECEIVED) and emu.stats["received"] == 0
    with pytest.raises(WisunPayloadTooLarge):
        a.d.send(big + b"!", 1, ticks())
    # the emulator refuses an oversized SKSENDTO by itself, as the module does
    a.port.write(("SKSENDTO 1 %s 0E1A 1 1 04D1 " % COORD).encode() + big + b"!")
    a.run_until(lambda: a.d.counters["stray_ok"] or emu.stats["fails"], timeout=3)
    assert emu.stats["fails"] == 1 and echo.got == [big]


def test_link_down_fails_sends_then_recovers(rig, echo):
    emu, a = rig("bp35a1", faults="link_down=60s@30s", scale=0.02)  # real 0.6 s .. 1.8 s
    a.run_until(lambda: a.of(EV_JOINED))
    assert emu.now_emulated() < 30
    a.run_until(lambda: emu.now_emulated() > 31)
    a.deliver([b"during-outage"], timeout=12)
    assert emu.stats["link_down_sends"] >= 1
    fails = [e for e in a.of(EV_SEND_FAILED)]
    assert fails and all(e[2] in ("tx_failed", "link", "timeout") for e in fails)
    assert a.of(EV_REOPEN)  # three link failures in a row: a full reopen
    assert echo.wait(1) == [b"during-outage"]
    a.run_until(lambda: a.of(EV_UDP_RECEIVED))
    assert a.of(EV_UDP_RECEIVED)[0][1] == b"ACKduring-outage"


def test_dropped_sends_are_reported_failed_and_never_forwarded(rig, echo):
    emu, a = rig("bp35a1", faults="drop=0.3,seed=3")
    a.run_until(lambda: a.of(EV_JOINED))
    payloads = [b"d%02d" % i for i in range(20)]
    a.deliver(payloads, timeout=20)
    assert emu.stats["dropped"] >= 2
    assert len([e for e in a.of(EV_SEND_FAILED) if e[2] == "tx_failed"]) == emu.stats["dropped"]
    assert echo.wait(20) == payloads  # each forwarded exactly once, in order


def test_lost_datagrams_are_acknowledged_by_the_module_but_never_arrive(rig, echo):
    emu, a = rig("bp35a1", faults="lose=0.4,seed=5")
    a.run_until(lambda: a.of(EV_JOINED))
    payloads = [b"l%02d" % i for i in range(20)]
    a.deliver(payloads)
    a.run_until(lambda: len(a.of(EV_UDP_RECEIVED)) == emu.stats["forwarded"], timeout=3)
    assert len(a.of(EV_SEND_OK)) == 20
    assert emu.stats["lost"] >= 2 and len(echo.wait(20 - emu.stats["lost"])) == 20 - emu.stats["lost"]


def test_garbage_and_truncated_lines_are_counted_and_survived(rig, echo):
    emu, a = rig("bp35a1", faults="garbage=0.3,truncate=0.05,seed=11")
    a.run_until(lambda: a.of(EV_JOINED), timeout=20)
    payloads = [b"g%02d" % i for i in range(15)]
    a.deliver(payloads, timeout=30)
    c = a.d.counters
    assert emu.stats["garbage_lines"] > 5
    assert c["unknown_lines"] + c["garbled_lines"] >= emu.stats["garbage_lines"] // 2
    # a truncated EVENT 21 00 makes the driver time out and resend: duplicates are allowed
    # here (the collector deduplicates by device and slot), losses are not
    assert [p for p in payloads if p in echo.wait(15, last=payloads[-1])] == payloads


def test_session_expiry_closes_and_reopens_the_session_gate(rig, echo):
    emu, a = rig("bp35a1", faults="session_expiry=40s", scale=0.01)  # every 0.4 s real
    a.run_until(lambda: a.of(EV_JOINED))
    payloads = [b"s%02d" % i for i in range(10)]
    for p in payloads:
        a.deliver([p])
        time.sleep(0.1)
    a.run_until(lambda: emu.stats["session_expiries"] >= 2, timeout=5)
    a.run_until(a.d.can_send, timeout=5)
    gates = [(e[1], e[2]) for e in a.of(EV_GATE) if e[1] == GATE_SESSION]
    closes = gates.count((GATE_SESSION, False))
    assert closes >= 2 and gates.count((GATE_SESSION, True)) >= closes
    assert echo.wait(10) == payloads
    # every (re-)authentication shows PANA traffic; none of it is taken for a reply
    assert a.d.counters["udp_pana"] >= 3
    assert [e[1] for e in a.of(EV_UDP_RECEIVED)] == [b"ACK" + p for p in payloads]


def test_arib_limit_closes_and_reopens_the_rate_gate(rig, echo):
    emu, a = rig("bp35a1", faults="arib=100s@50s", scale=0.01)  # closed 0.5 s .. 1.5 s real
    a.run_until(lambda: a.of(EV_JOINED))
    a.run_until(lambda: not a.d.rate_open, timeout=3)
    assert not a.d.can_send()
    t_closed = emu.now_emulated()
    a.run_until(lambda: a.d.rate_open, timeout=3)
    assert emu.now_emulated() - t_closed > 50
    a.deliver([b"after-limit"])
    assert echo.wait(1) == [b"after-limit"]
    assert [(e[1], e[2]) for e in a.of(EV_GATE) if e[1] == GATE_RATE] == [
        (GATE_RATE, False), (GATE_RATE, True)]


def test_arib_budget_accounting_triggers_event_32_by_itself(rig, echo):
    # 360 s per hour is out of reach in a test: a 30 ms budget and a 2000x clock.
    # One 200-byte send is (200 + 60) * 8 / 100 kbit/s = 20.8 ms on air; two exceed it.
    emu, a = rig("bp35a1", scale=0.0005, tx_budget_s=0.03)
    a.run_until(lambda: a.of(EV_JOINED))
    a.deliver([b"x" * 200])
    assert a.d.rate_open
    a.deliver([b"x" * 200])
    a.run_until(lambda: not a.d.rate_open, timeout=3)
    a.run_until(lambda: a.d.rate_open, timeout=6)  # the hour (1.8 s real) slides past
    a.deliver([b"y"])
    a.run_until(lambda: echo.got[-1:] == [b"y"], timeout=3)
    assert len(echo.got) == 3


def test_join_failures_back_off_then_join(rig):
    emu, a = rig("bp35a1", faults="join_fail=2")
    a.run_until(lambda: a.of(EV_JOINED))
    fails = a.of(EV_JOIN_FAILED)
    assert [e[2] for e in fails] == [1, 2] and all(e[1] == "rejected" for e in fails)
    assert emu.stats["join_failures"] == 2 and emu.stats["joins"] == 1


def test_fault_spec_grammar():
    f = parse_faults("link_down=600s@3600s,link_down=1h@2h,drop=0.05,garbage=0.01,"
                     "session_expiry=7200s,seed=7,arib=10m@30,join_fail=1,lose=0,truncate=1")
    assert f.link_down == [(3600e3, 600e3), (7200e3, 3600e3)]  # (at, duration) in ms
    assert f.arib == [(30e3, 600e3)]
    assert (f.drop, f.garbage, f.lose, f.truncate) == (0.05, 0.01, 0.0, 1.0)
    assert (f.session_expiry_ms, f.seed, f.join_fail) == (7200e3, 7, 1)
    assert parse_faults("").link_down == []
    for bad in ("drop=2", "drop=x", "link_down=600s", "nonsense=1", "seed=a", "oops",
                "session_expiry=0", "link_down=10x@5s"):
        with pytest.raises(FaultSpecError):
            parse_faults(bad)


def test_the_shipped_profiles_are_valid_and_cite_sources():
    for pid in profile_ids():
        p = load_profile(pid)
        assert p["id"] == pid and p["sources"]
        assert set(p["emulator_ms"]) >= {"ok", "reset", "join", "tx_base", "reauth"}
    assert load_profile("bp35c0")["sendto_side"] == 1
    assert load_profile("rl7023")["payload_modes"] == ["hex"]


CLI = ("import argparse, sys\n"
       "from host_tools.commands import wisun_emulator as m\n"
       "p = argparse.ArgumentParser(prog='smeter'); m.register(p.add_subparsers())\n"
       "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n")


def test_cli_runs_on_a_pty_link_until_sigterm(echo, tmp_path):
    link = str(tmp_path / "wisun0")
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "wisun-emulator", "--pty-link", link, "--collector",
         "%s:%d" % echo.addr, "--faults", "seed=2", "--time-scale", "0.01",
         "--stats-json", str(stats)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("wisun-emulator: " + link)
        # the start line carries the emulator's clock: emulated 0 was at its WALL_MS, 100x
        clock = start_line_clock(line.strip())
        assert clock[2] == 0 and (clock[3], clock[4]) == (100, 1)
        assert abs(clock[1] - time.time() * 1000) < 10000
        a = Agent(link, fast(load_profile("bp35a1")))
        a.run_until(lambda: a.of(EV_JOINED))
        a.deliver([b"via-cli"])
        a.run_until(lambda: a.of(EV_UDP_RECEIVED))
        a.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert json.loads(stats.read_text())["forwarded"] == 1
    assert echo.wait(1) == [b"via-cli"]


@pytest.mark.parametrize("option, message", [
    (["--faults", "drop=7"], b"drop must be within 0..1"),
    (["--time-scale", "1e-9"], b"time scale must be within"),  # beyond what its clock runs
])
def test_cli_rejects_a_bad_option_in_one_line(tmp_path, option, message):
    proc = subprocess.run(
        [sys.executable, "-c", CLI, "wisun-emulator", "--pty-link", str(tmp_path / "x"),
         "--collector", "127.0.0.1:9"] + option,
        capture_output=True, cwd=ROOT, timeout=30)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not os.path.lexists(tmp_path / "x")


def test_register_adds_a_documented_parser():
    p = argparse.ArgumentParser()
    wisun_emulator_cmd.register(p.add_subparsers())
    args = p.parse_args(["wisun-emulator", "--pty-link", "L", "--collector", "127.0.0.1:5"])
    assert args.collector == ("127.0.0.1", 5) and args.module == "bp35a1"
    assert args.func is wisun_emulator_cmd.run
