"""Launches the whole run as real processes: `smeter emulate` (Modbus TCP on loopback, owner
of the accelerated shared clock), `smeter collect`, `smeter wisun-emulator` on a pty, and the
agent (host_tools.agent_process.command) under MicroPython or CPython. Used by
tests/host/test_agent_*.py; the demo can use the same pieces.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from conftest import ROOT

DEVICE_ID = 4660
DEVICE_IDS = (4660, 4661)  # the keys file knows both: two agents may share one run
KEY_HEX = "000102030405060708090a0b0c0d0e0f"
CLI = [sys.executable, "-m", "host_tools.cli"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _free_udp_port():
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def agent_config(path, modbus_port, wisun_link, **over):
    cfg = {
        "device_id": DEVICE_ID, "key": KEY_HEX, "key_no": 0, "data_dir": "agent-data",
        "device": {"map": "sunspec_inverter_103", "transport": "tcp", "host": "127.0.0.1",
                   "port": modbus_port, "unit": 1, "poll_interval_s": 10, "timeout_ms": 300},
        "integrator": {"max_power_w": 10000, "max_gap_s": 600, "reg_margin_pct": 300},
        "wisun": {"module": "bp35a1", "serial": wisun_link,
                  "rbid": "00112233445566778899AABBCCDDEEFF", "pwd": "0123456789AB",
                  "channel": 33, "pan_id": 34952,
                  "coordinator": "FE80:0000:0000:0000:021D:1290:1234:5678",
                  "backoff_base_ms": 200, "backoff_max_ms": 2000},
        "uplink": {"max_batch": 48, "ack_timeout_ms": 2000, "retry_ms": 200},
        "clock": {"source": "external"},  # the shared simulated clock is the truth
        "status": {"file": "status.json", "every_s": 5},
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    with open(path, "w") as f:
        json.dump(cfg, f)
    return cfg


class Stack:
    def __init__(self, tmp, speed=1200, start="2026-06-21T08:00", emu_faults="", wisun_faults="",
                 kind="inverter", rtu=False, profile=None):
        self.tmp = str(tmp)
        self.procs = []
        self.clock = os.path.join(self.tmp, "clock")
        self.truth = os.path.join(self.tmp, "truth.jsonl")
        self.db = os.path.join(self.tmp, "col.db")
        self.keys = os.path.join(self.tmp, "keys.json")
        self.link = os.path.join(self.tmp, "wisun0")
        with open(self.keys, "w") as f:
            json.dump({"format": "smeter-keys/1", "keys": [
                {"device_id": d, "key_no": 0, "alg": 1, "key_hex": KEY_HEX} for d in DEVICE_IDS]}, f)
        # The clock file first (this process creates it: no process waits for another),
        # then the three servers start in parallel on ports known in advance.
        from host_tools.emulator.simclock import SimClock, parse_start

        SimClock.create(self.clock, parse_start(start), str(speed))
        cport = _free_udp_port()
        self.collector_port = cport
        self.modbus_link = os.path.join(self.tmp, "modbus0") if rtu else None
        where = ["--pty-link", self.modbus_link] if rtu else ["--tcp", "127.0.0.1:0"]
        emu = self._spawn(CLI + ["emulate", kind] + where + ["--clock", self.clock,
                                 "--truth", self.truth]
                          + (["--profile", profile] if profile else [])
                          + (["--faults", emu_faults] if emu_faults else []),
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        col = self._spawn(CLI + ["collect", "--db", self.db, "--listen", "127.0.0.1:%d" % cport,
                                 "--keys", self.keys, "--clock", self.clock, "--stats-interval", "3600"],
                          stderr=subprocess.PIPE)
        w = self._spawn(CLI + ["wisun-emulator", "--pty-link", self.link, "--collector",
                               "127.0.0.1:%d" % cport, "--time-scale", "0.05"]
                        + (["--faults", wisun_faults] if wisun_faults else []), stdout=subprocess.PIPE)
        ready = json.loads(emu.stdout.readline())
        self.ready = ready
        self.modbus_port = ready["tcp"][1] if "tcp" in ready else None
        line = col.stderr.readline().decode()
        assert "listening on" in line, line
        assert w.stdout.readline().startswith(b"wisun-emulator:")
        self.config = os.path.join(self.tmp, "agent.json")

    def _spawn(self, argv, **kw):
        p = subprocess.Popen(argv, cwd=ROOT, env=_env(), **kw)
        self.procs.append(p)
        return p

    def sim_s(self):
        with open(self.clock) as f:
            v = [int(x) for x in f.read().split()]
        return (v[2] + (time.time_ns() // 1000000 - v[1]) * v[3] // v[4]) // 1000

    def add_module(self, link):
        """A further Wi-SUN module emulator (one per agent) on pty `link`, same collector."""
        w = self._spawn(CLI + ["wisun-emulator", "--pty-link", link, "--collector",
                               "127.0.0.1:%d" % self.collector_port, "--time-scale", "0.05"],
                        stdout=subprocess.PIPE)
        assert w.stdout.readline().startswith(b"wisun-emulator:")
        return link

    def agent(self, runtime, until=None, heap="512K", data_heap=None, log=None, for_s=None,
              config=None):
        from host_tools.agent_process import command

        argv, env = command(config or self.config, runtime, heap, data_heap, self.clock, until,
                            for_s)
        out = open(log or os.path.join(self.tmp, "agent.log"), "ab")
        return subprocess.Popen(argv, cwd=self.tmp, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            for s in (p.stdout, p.stderr):
                if s is not None:
                    s.close()

    def stored(self, device_id=DEVICE_ID):
        """{slot: (import_wh, export_wh, flags)} at the collector, and its rejection count."""
        con = sqlite3.connect(self.db)
        try:
            rows = con.execute("SELECT slot, import_wh, export_wh, flags FROM slot_values "
                               "WHERE device_id = ?", (device_id,)).fetchall()
            rej = con.execute("SELECT reason, COUNT(*) FROM rejections GROUP BY reason").fetchall()
        finally:
            con.close()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}, dict(rej)

    def truth_slots(self, direction="export"):
        """{slot: (wh float, regs_start units, regs_end units)} of one direction, from the emulator."""
        out = {}
        with open(self.truth) as f:
            for line in f:
                r = json.loads(line)
                if r.get("type") == "slot":
                    out[r["start_s"] // 1800] = (r[direction + "_wh"],
                                                 r["regs_start"][direction]["units"],
                                                 r["regs_end"][direction]["units"])
        return out


def wait_for_line(path, needle, count, timeout=30):
    """Wait until `needle` occurs `count` times in the log file."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path, "rb") as f:
                if f.read().count(needle) >= count:
                    return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


def read_log(path):
    from edge.agent_log import parse_line

    out = []
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("t="):
                out.append(parse_line(line))
    return out
