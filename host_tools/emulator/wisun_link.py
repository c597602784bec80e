"""The Wi-SUN module emulator's I/O: a pseudo-terminal, a loopback UDP socket, a select loop.

The protocol is host_tools/emulator/wisun_module.py (sans-I/O); this module only moves bytes
between it and the outside, and tells it the time. Time is a SimClock
(host_tools/emulator/simclock.py), private to the emulator, running at 1/time_scale
emulated ms per real ms from emulated 0 at its start; `clock_line()` is that clock as the
shared clock format's line, which `smeter wisun-emulator` prints on its start line so that
others (the demo) know exactly when emulated time 0 was.
"""
import json
import os
import select
import socket
import threading
import time
import tty

from edge.wisun import check_profile
from host_tools.emulator.clockline import parse_line
from host_tools.emulator.simclock import SimClock
from host_tools.emulator.wisun_faults import WisunFaultPlan, parse_faults
from host_tools.emulator.wisun_module import ARIB_TX_BUDGET_S, WisunModule
from host_tools.pty_link import place_link

PROFILE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "hw", "modules")
_IDLE_WAIT_S = 0.2  # the longest select() wait with no timer due


def load_profile(name_or_path):
    """A module profile by id ('bp35a1', 'bp35c0', 'rl7023') or by path to a JSON file."""
    path = name_or_path
    if not os.path.exists(path):
        path = os.path.join(PROFILE_DIR, name_or_path + ".json")
    with open(path, encoding="utf-8") as f:
        return check_profile(json.load(f))


def profile_ids():
    return sorted(f[:-5] for f in os.listdir(PROFILE_DIR) if f.endswith(".json"))


def open_pty(link=None):
    """(master_fd, slave_fd, slave_path); the slave is raw, and `link` points at it (only a
    free path or a stale pty link is taken: host_tools/pty_link.py)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    path = os.ttyname(slave)
    if link:
        try:
            place_link(path, link)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
    return master, slave, path


START_PREFIX = "wisun-emulator: "
_CLOCK_FIELD = ", clock "


def start_line_clock(line):
    """The emulator's clock from its start line (`wisun-emulator: ..., clock 1 W S N D G O`),
    as clockline.parse_line values; ValueError when the line has none."""
    if not line.startswith(START_PREFIX) or _CLOCK_FIELD not in line:
        raise ValueError("not a wisun-emulator start line with a clock: %r" % line[:120])
    return parse_line(line.rsplit(_CLOCK_FIELD, 1)[1])


def emulator_clock(time_scale):
    """A private SimClock at emulated 0 now, running 1/time_scale emulated ms per real ms;
    ValueError outside what the clock can run (time_scale 1e-6 .. 1e6)."""
    try:
        clock = SimClock.private(0, 1.0 / float(time_scale))
    except (ValueError, ZeroDivisionError):
        clock = None
    if clock is None or clock.speed[0] == 0:
        raise ValueError("time scale must be within 1e-6 .. 1e6, got %r" % (time_scale,))
    return clock


class WisunEmulator:
    """One emulated module on a pty and a UDP socket. `run()` serves until `stop()`;
    `start()` runs it in a thread."""

    def __init__(self, profile, collector, faults=None, time_scale=1.0, master_fd=None,
                 tx_budget_s=ARIB_TX_BUDGET_S, clock=None):
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self.collector = collector
        if not isinstance(faults, WisunFaultPlan):
            faults = parse_faults(faults)
        self.faults = faults
        self.clock = clock if clock is not None else emulator_clock(time_scale)
        if master_fd is None:
            self.master, self.slave, self.slave_path = open_pty()
        else:
            self.master, self.slave, self.slave_path = master_fd, None, None
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._thread = None
        self.module = WisunModule(self.profile, faults, tx_budget_s, self.clock.now_ms())

    # ------------------------------------------------------------ what tests and the CLI read
    @property
    def stats(self):
        return self.module.stats

    @property
    def flash_writes(self):
        return self.module.flash_writes

    def now_emulated(self):
        """Emulated seconds since the clock's start."""
        return self.clock.now_ms() / 1000.0

    def clock_line(self):
        """The emulator's clock in the shared clock format (host_tools/emulator/simclock.py):
        emulated ms = SIM_MS + (wall_ms - WALL_MS) * NUM // DEN."""
        return self.clock.line()

    # ------------------------------------------------------------ loop
    def _flush(self):
        m = self.module
        out = m.take_serial()
        if out:
            self._write(out)
        for data in m.take_datagrams():
            try:
                self.udp.sendto(data, self.collector)
                m.stats["forwarded"] += 1
            except OSError:
                m.stats["lost"] += 1

    def _write(self, data):
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                select.select([], [self.master], [], 0.05)
                continue
            except OSError:
                return
            view = view[n:]

    def run(self):
        m = self.module
        fds = [self.master, self.udp.fileno(), self._wake_r]
        while not self._stop:
            m.advance(self.clock.now_ms())
            self._flush()
            timeout = _IDLE_WAIT_S
            due = m.next_timer()
            if due is not None:
                real = self.clock.real_seconds_for(max(0.0, due - self.clock.now_ms()))
                if real is not None:
                    timeout = min(timeout, real)
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except (OSError, ValueError):
                break
            for fd in ready:
                if fd == self.master:
                    try:
                        data = os.read(self.master, 4096)
                    except OSError:
                        data = b""
                    if data:
                        m.receive_serial(data, self.clock.now_ms())
                    else:
                        time.sleep(0.01)
                elif fd == self._wake_r:
                    os.read(self._wake_r, 64)
                else:
                    try:
                        data, _ = self.udp.recvfrom(65535)
                    except OSError:
                        continue
                    m.receive_datagram(data, self.clock.now_ms())
            self._flush()

    def start(self):
        self._thread = threading.Thread(target=self.run, name="wisun-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)
        for fd in (self.master, self.slave, self._wake_r, self._wake_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.udp.close()
