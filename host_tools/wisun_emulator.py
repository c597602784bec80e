"""A Wi-SUN module (SKSTACK-IP text commands) on a pseudo-terminal, bridged to loopback UDP.

The agent opens the pty's slave end as its serial port and drives it exactly like a ROHM
BP35A1/BP35C0 or Tessera RL7023 (per the profile in hw/modules/). Payloads sent with
SKSENDTO are forwarded as UDP datagrams to the collector; datagrams the collector sends
back come out as ERXUDP lines. Latencies come from the profile and are multiplied by
`time_scale` (0.01 runs a day of faults in about 15 minutes). Faults (docs/wisun.md):

    link_down=DUR@AT   no radio for DUR from AT (repeatable): sends fail, joins fail
    arib=DUR@AT        ARIB transmit-time limit: EVENT 32 at AT, EVENT 33 after DUR (repeatable)
    drop=P             a send fails on air (EVENT 21 01), nothing forwarded
    lose=P             a send is acknowledged (EVENT 21 00) but the datagram is lost
    garbage=P          a junk line before an output line
    truncate=P         an output line cut short
    session_expiry=DUR PANA session lifetime: EVENT 29 every DUR after a join, then re-auth
    join_fail=N        the first N joins fail (EVENT 24)
    seed=N             random seed (default 1)

DUR/AT: a number with an optional unit s, m or h (seconds when bare), emulated time since start.
"""
import heapq
import json
import os
import random
import re
import select
import socket
import threading
import time
import tty

from edge.wisun import check_profile
from host_tools.pty_link import place_link

PROFILE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hw", "modules")
_DUR_RE = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")
_UNIT = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}

# ARIB STD-T108 (920 MHz band): at most 360 s of transmission in any 3600 s. Sources and
# date in docs/wisun.md; override with tx_budget_s for tests.
ARIB_TX_BUDGET_S = 360.0
ARIB_WINDOW_S = 3600.0
RADIO_BPS = 100000  # Wi-SUN Enhanced HAN / B-route 920 MHz PHY rate
FRAME_OVERHEAD_BYTES = 60  # MAC + 6LoWPAN + UDP headers, rough
# PANA (RFC 5191) runs on UDP 716: the last message of a join, a PANA-Auth-Request with the
# Request and Complete flags (16-byte header: reserved, length, flags, type 2, session id, seq)
PANA_PORT = 0x02CC
PANA_AUTH_REQUEST = bytes.fromhex("00000010A0000002000000010000000A")


class FaultSpecError(ValueError):
    pass


def load_profile(name_or_path):
    """A module profile by id ('bp35a1', 'bp35c0', 'rl7023') or by path to a JSON file."""
    path = name_or_path
    if not os.path.exists(path):
        path = os.path.join(PROFILE_DIR, name_or_path + ".json")
    with open(path, encoding="utf-8") as f:
        return check_profile(json.load(f))


def profile_ids():
    return sorted(f[:-5] for f in os.listdir(PROFILE_DIR) if f.endswith(".json"))


def parse_duration(text):
    m = _DUR_RE.match(text.strip())
    if not m:
        raise FaultSpecError("bad duration %r (use e.g. 600s, 10m, 2h)" % text)
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_faults(spec):
    """'link_down=600s@3600s,drop=0.05,seed=1' -> dict (see module docstring)."""
    f = {
        "link_down": [], "arib": [], "drop": 0.0, "lose": 0.0, "garbage": 0.0,
        "truncate": 0.0, "session_expiry": None, "join_fail": 0, "seed": 1,
    }
    if not spec:
        return f
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise FaultSpecError("fault %r is not key=value" % item)
        key, value = item.split("=", 1)
        key = key.strip()
        value = value.strip()
        if key in ("link_down", "arib"):
            if "@" not in value:
                raise FaultSpecError("%s needs DUR@AT, got %r" % (key, value))
            dur, at = value.split("@", 1)
            f[key].append((parse_duration(at), parse_duration(dur)))
        elif key in ("drop", "lose", "garbage", "truncate"):
            try:
                p = float(value)
            except ValueError:
                raise FaultSpecError("%s needs a probability, got %r" % (key, value))
            if not 0.0 <= p <= 1.0:
                raise FaultSpecError("%s must be within 0..1" % key)
            f[key] = p
        elif key == "session_expiry":
            f[key] = parse_duration(value)
            if f[key] <= 0:
                raise FaultSpecError("session_expiry must be > 0")
        elif key in ("join_fail", "seed"):
            try:
                f[key] = int(value)
            except ValueError:
                raise FaultSpecError("%s needs an integer, got %r" % (key, value))
        else:
            raise FaultSpecError("unknown fault %r" % key)
    return f


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


class WisunEmulator:
    """One emulated module. `run()` serves until `stop()`; `start()` runs it in a thread."""

    MODULE_ADDR = "FE80:0000:0000:0000:021D:1290:0000:0001"
    MODULE_MAC = "001D129000000001"

    def __init__(self, profile, collector, faults=None, time_scale=1.0, master_fd=None,
                 tx_budget_s=ARIB_TX_BUDGET_S, log=None):
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self.collector = collector
        self.faults = faults if isinstance(faults, dict) else parse_faults(faults)
        self.scale = float(time_scale)
        self.tx_budget_s = tx_budget_s
        self.log = log
        if master_fd is None:
            self.master, self.slave, self.slave_path = open_pty()
        else:
            self.master, self.slave, self.slave_path = master_fd, None, None
        self.rng = random.Random(self.faults["seed"])
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._thread = None
        self._timers = []
        self._seq = 0
        self._inbuf = bytearray()
        self.t0 = time.monotonic()
        # module state
        self.flash_mode = 0  # ROPT/WOPT payload display mode, kept across SKRESET (flash)
        self.flash_writes = 0
        self.joins_left_to_fail = self.faults["join_fail"]
        self._reset_state()
        self.stats = {
            "commands": 0, "forwarded": 0, "dropped": 0, "lost": 0, "link_down_sends": 0,
            "received": 0, "garbage_lines": 0, "truncated_lines": 0, "joins": 0,
            "join_failures": 0, "session_expiries": 0, "rate_limited": 0, "fails": 0,
        }
        self._tx_log = []  # (end_time, airtime_s) for the ARIB window
        self._arib_active = False
        for at, dur in self.faults["arib"]:
            self._at(self._emu(at), self._arib_on)
            self._at(self._emu(at + dur), self._arib_off)

    # ------------------------------------------------------------ time
    def _emu(self, seconds):
        """Emulated seconds -> real monotonic time."""
        return self.t0 + seconds * self.scale

    def _later(self, emulated_ms):
        return time.monotonic() + emulated_ms / 1000.0 * self.scale

    def now_emulated(self):
        return (time.monotonic() - self.t0) / self.scale

    def _at(self, when, fn, *args):
        self._seq += 1
        heapq.heappush(self._timers, (when, self._seq, fn, args))

    def link_up(self):
        t = self.now_emulated()
        for at, dur in self.faults["link_down"]:
            if at <= t < at + dur:
                return False
        return True

    # ------------------------------------------------------------ module state
    def _reset_state(self):
        self.echo = True
        self.joined = False
        self.session_gen = 0
        self.pwd = None
        self.rbid = None
        self.regs = {}
        self.peer = None  # (ipaddr, port) of the last SKSENDTO

    # ------------------------------------------------------------ output
    def _emit(self, line):
        if isinstance(line, str):
            line = line.encode()
        data = b""
        if self.faults["garbage"] and self.rng.random() < self.faults["garbage"]:
            junk = bytes(self.rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :#*\x00\xff")
                         for _ in range(self.rng.randint(1, 40)))
            data += junk + b"\r\n"
            self.stats["garbage_lines"] += 1
        if self.faults["truncate"] and len(line) > 2 and self.rng.random() < self.faults["truncate"]:
            line = line[: self.rng.randint(1, len(line) - 1)]
            self.stats["truncated_lines"] += 1
        data += line + b"\r\n"
        self._write(data)

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

    def _event(self, num, param=None, addr=None):
        parts = ["EVENT", "%02X" % num, addr or self.MODULE_ADDR]
        if self.profile.get("event_side"):
            parts.append(str(self.regs.get("side", 1 if self.profile.get("sendto_side") else 0)))
        if param is not None:
            parts.append("%02X" % param)
        self._emit(" ".join(parts))

    def _ok(self, delay_key="ok", extra=None):
        text = "OK" if extra is None else "OK " + extra
        self._at(self._later(self.profile["emulator_ms"][delay_key]), self._emit, text)

    def _fail(self, code):
        self.stats["fails"] += 1
        self._at(self._later(self.profile["emulator_ms"]["ok"]), self._emit, "FAIL ER%02d" % code)

    # ------------------------------------------------------------ input
    def _feed(self, data):
        self._inbuf += data
        while self._inbuf:
            buf = self._inbuf
            if buf.startswith(b"SKSENDTO "):
                if not self._take_sendto():
                    return
                continue
            cut = -1
            for i, b in enumerate(buf):
                if b in (0x0D, 0x0A):
                    cut = i
                    break
            if cut < 0:
                if len(buf) > 4096:
                    del buf[:]
                return
            line = bytes(buf[:cut])
            del buf[: cut + 1]
            if line:
                self._command(line)

    def _take_sendto(self):
        """SKSENDTO header then exactly DATALEN raw bytes, no terminator."""
        buf = self._inbuf
        ntok = 7 if self.profile.get("sendto_side") is not None else 6
        pos = 0
        for _ in range(ntok):
            j = buf.find(b" ", pos)
            if j < 0 or j > 200:
                if len(buf) > 200 or (b"\r" in buf[:200] or b"\n" in buf[:200]):
                    # a malformed header: treat up to the terminator as a bad command
                    cut = max(buf.find(b"\r"), buf.find(b"\n"))
                    del buf[: (cut + 1) if cut >= 0 else len(buf)]
                    self._fail(6)
                    return True
                return False
            pos = j + 1
        header = bytes(buf[: pos - 1]).decode(errors="replace").split(" ")
        try:
            dlen = int(header[-1], 16)
        except ValueError:
            del buf[:pos]
            self._fail(6)
            return True
        if len(buf) < pos + dlen:
            return False
        data = bytes(buf[pos: pos + dlen])
        del buf[: pos + dlen]
        if self.echo:
            self._emit(" ".join(header) + " ")
        self._sendto(header, data)
        return True

    def _command(self, line):
        self.stats["commands"] += 1
        text = line.decode(errors="replace")
        if self.echo:
            self._emit(text)
        parts = text.split()
        if not parts:
            return
        cmd, args = parts[0], parts[1:]
        handler = getattr(self, "_cmd_" + cmd, None)
        if handler is None:
            self._fail(4)
            return
        try:
            handler(args)
        except (ValueError, IndexError):
            self._fail(6)

    # ------------------------------------------------------------ commands
    def _cmd_SKRESET(self, args):
        self._reset_state()
        self._ok("reset")

    def _cmd_SKSREG(self, args):
        if len(args) != 2:
            self._fail(5)
            return
        reg, value = args
        if reg == "SFE":
            self.echo = value != "0"
        elif reg in ("S2", "S3", "SA2"):
            int(value, 16)
        self.regs[reg] = value
        self._ok()

    def _cmd_SKVER(self, args):
        self._emit("EVER 1.2.10")
        self._ok()

    def _cmd_SKAPPVER(self, args):
        self._emit("EAPPVER smeter-emu-" + self.profile["id"])
        self._ok()

    def _cmd_ROPT(self, args):
        if not self.profile["ropt"]:
            self._fail(4)
            return
        self._ok(extra="%02X" % self.flash_mode)

    def _cmd_WOPT(self, args):
        if not self.profile["ropt"]:
            self._fail(4)
            return
        if len(args) != 1:
            self._fail(5)
            return
        mode = int(args[0], 16)
        if mode not in (0, 1):
            self._fail(6)
            return
        self.flash_mode = mode
        self.flash_writes += 1
        self._ok("reset")

    def _cmd_SKSETPWD(self, args):
        if len(args) != 2 or int(args[0], 16) != len(args[1]):
            self._fail(6)
            return
        self.pwd = args[1]
        self._ok()

    def _cmd_SKSETRBID(self, args):
        if len(args) != 1 or len(args[0]) != 32:
            self._fail(6)
            return
        self.rbid = args[0]
        self._ok()

    def _cmd_SKJOIN(self, args):
        if len(args) != 1:
            self._fail(5)
            return
        if self.pwd is None or self.rbid is None:
            self._fail(10)
            return
        self._ok()
        self._at(self._later(self.profile["emulator_ms"]["join"]), self._join_done, args[0])

    def _join_done(self, addr):
        if self.joins_left_to_fail > 0 or not self.link_up():
            if self.joins_left_to_fail > 0:
                self.joins_left_to_fail -= 1
            self.joined = False
            self.stats["join_failures"] += 1
            self._event(0x24, addr=addr)
            return
        self.joined = True
        self.session_gen += 1
        self.stats["joins"] += 1
        # PANA (UDP 716 = 02CC) is seen by the host as ERXUDP lines, unsecured, before EVENT 25
        self._erxudp(addr, PANA_PORT, 0, PANA_AUTH_REQUEST)
        self._event(0x25, addr=addr)
        if self.faults["session_expiry"]:
            gen = self.session_gen
            self._at(self._later(self.faults["session_expiry"] * 1000), self._expire, gen, addr)

    def _expire(self, gen, addr):
        if gen != self.session_gen or not self.joined:
            return
        self.stats["session_expiries"] += 1
        self.joined = False
        self._event(0x29, addr=addr)
        # the module re-authenticates on its own: EVENT 25 on success, EVENT 24 on failure
        self._at(self._later(self.profile["emulator_ms"]["reauth"]), self._join_done, addr)

    def _cmd_SKTERM(self, args):
        if self.joined:
            self.joined = False
            self.session_gen += 1
            self._ok()
            self._at(self._later(self.profile["emulator_ms"]["ok"]), self._event, 0x27)
        else:
            self._ok()
            self._at(self._later(self.profile["emulator_ms"]["ok"]), self._event, 0x28)

    def _sendto(self, header, data):
        self.stats["commands"] += 1
        side = self.profile.get("sendto_side")
        try:
            handle = int(header[1])
            addr = header[2]
            port = int(header[3], 16)
            sec = int(header[4])
            if side is not None:
                int(header[5])
            dlen = int(header[-1], 16)
        except (ValueError, IndexError):
            self._fail(6)
            return
        if not 1 <= handle <= 6 or sec not in (0, 1, 2) or dlen != len(data):
            self._fail(6)
            return
        if dlen == 0 or dlen > self.profile["max_payload"]:
            self._fail(6)
            return
        if not self.joined or self._arib_active:
            if self._arib_active:
                self.stats["rate_limited"] += 1
            self._fail(10)
            return
        self.peer = (addr, port)
        self._ok()
        airtime = (dlen + FRAME_OVERHEAD_BYTES) * 8.0 / RADIO_BPS
        delay_ms = self.profile["emulator_ms"]["tx_base"] + airtime * 1000.0
        self._at(self._later(delay_ms), self._tx_done, addr, data, airtime)

    def _tx_done(self, addr, data, airtime):
        if not self.link_up():
            self.stats["link_down_sends"] += 1
            self._event(0x21, 1, addr=addr)
            return
        self._account_airtime(airtime)
        if self.faults["drop"] and self.rng.random() < self.faults["drop"]:
            self.stats["dropped"] += 1
            self._event(0x21, 1, addr=addr)
            return
        self._event(0x21, 0, addr=addr)
        if self.faults["lose"] and self.rng.random() < self.faults["lose"]:
            self.stats["lost"] += 1
            return
        try:
            self.udp.sendto(data, self.collector)
            self.stats["forwarded"] += 1
        except OSError:
            self.stats["lost"] += 1

    def _account_airtime(self, airtime):
        now = self.now_emulated()
        self._tx_log = [(t, a) for (t, a) in self._tx_log if t > now - ARIB_WINDOW_S]
        self._tx_log.append((now, airtime))
        if not self._arib_active and sum(a for _, a in self._tx_log) > self.tx_budget_s:
            self._arib_on()
            oldest = self._tx_log[0][0]
            self._at(self._emu(oldest + ARIB_WINDOW_S), self._arib_off)

    def _arib_on(self):
        if not self._arib_active:
            self._arib_active = True
            self._event(0x32)

    def _arib_off(self):
        if self._arib_active:
            self._arib_active = False
            self._event(0x33)

    def _udp_in(self):
        try:
            data, _ = self.udp.recvfrom(65535)
        except OSError:
            return
        if not self.joined or not self.link_up() or not data:
            self.stats["lost"] += 1
            return
        if len(data) > self.profile["max_payload"]:
            self.stats["lost"] += 1
            return
        self.stats["received"] += 1
        src, port = self.peer or (self.MODULE_ADDR, 0x0E1A)
        self._erxudp(src, port, 1, data)

    def _erxudp(self, src, port, secured, data):
        """One ERXUDP line: rport = lport = port, columns per the profile, hex or binary."""
        fields = self.profile["erxudp_fields"][0]
        head = ["ERXUDP", src, self.MODULE_ADDR, "%04X" % port, "%04X" % port, self.MODULE_MAC]
        if fields == 11:
            head.append("%02X" % self.rng.randint(0x80, 0xE0))  # RSSI/LQI column
        head.append(str(secured))  # SECURED
        if fields >= 10:
            head.append("1" if self.profile.get("sendto_side") else "0")  # SIDE
        head.append("%04X" % len(data))
        if self.flash_mode == 1 or not self.profile["ropt"]:
            self._emit(" ".join(head) + " " + data.hex().upper())
        else:
            self._emit((" ".join(head) + " ").encode() + data)

    # ------------------------------------------------------------ loop
    def run(self):
        fds = [self.master, self.udp.fileno(), self._wake_r]
        while not self._stop:
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn, args = heapq.heappop(self._timers)
                fn(*args)
            timeout = 0.2
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0][0] - time.monotonic()))
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
                        self._feed(data)
                    else:
                        time.sleep(0.01)
                elif fd == self._wake_r:
                    os.read(self._wake_r, 64)
                else:
                    self._udp_in()

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
