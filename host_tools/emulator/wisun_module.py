"""A Wi-SUN module (SKSTACK-IP text commands) as a sans-I/O model: commands in, lines out.

What a ROHM BP35A1/BP35C0 or Tessera RL7023 (per the profile in hw/modules/) answers on its
UART, with no pty, socket or clock of its own: the caller passes the time (`now_ms`, emulated
ms on the run's SimClock, host_tools/emulator/simclock.py) into every call, and collects what
came out:

    m = WisunModule(profile, faults)          # faults: a WisunFaultPlan (wisun_faults.py)
    m.receive_serial(b"SKVER\\r\\n", now_ms)  # bytes the agent wrote
    m.receive_datagram(payload, now_ms)       # a UDP datagram from the collector
    m.advance(now_ms)                         # fire the timers due by now_ms
    m.next_timer()                            # when advance() must run next (or None)
    m.take_serial() -> bytes                  # lines for the agent
    m.take_datagrams() -> [payload, ...]      # SKSENDTO payloads for the collector

Latencies come from the profile's `emulator_ms`; faults are asked of the plan (link
windows, the dice). host_tools/emulator/wisun_link.py runs it on a pty and a UDP socket.
"""
import heapq

# ARIB STD-T108 (920 MHz band): at most 360 s of transmission in any 3600 s. Sources and
# date in docs/wisun.md; override with tx_budget_s for tests.
ARIB_TX_BUDGET_S = 360.0
ARIB_WINDOW_MS = 3600000.0
RADIO_BPS = 100000  # Wi-SUN Enhanced HAN / B-route 920 MHz PHY rate
FRAME_OVERHEAD_BYTES = 60  # MAC + 6LoWPAN + UDP headers, rough
# PANA (RFC 5191) runs on UDP 716: the last message of a join, a PANA-Auth-Request with the
# Request and Complete flags (16-byte header: reserved, length, flags, type 2, session id, seq)
PANA_PORT = 0x02CC
PANA_AUTH_REQUEST = bytes.fromhex("00000010A0000002000000010000000A")
MODULE_ADDR = "FE80:0000:0000:0000:021D:1290:0000:0001"
MODULE_MAC = "001D129000000001"
_JUNK = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :#*\x00\xff"


class WisunModule:
    """One emulated module's protocol state. Every time is emulated ms (see module doc)."""

    def __init__(self, profile, faults, tx_budget_s=ARIB_TX_BUDGET_S, now_ms=0):
        self.profile = profile
        self.faults = faults
        self.rng = faults.rng
        self.tx_budget_s = tx_budget_s
        self.now = now_ms
        self._lat = profile["emulator_ms"]
        self._timers = []  # heap of (due_ms, seq, fn, args)
        self._seq = 0
        self._inbuf = bytearray()
        self._serial = []
        self._datagrams = []
        # flash: ROPT/WOPT payload display mode survives SKRESET
        self.flash_mode = 0
        self.flash_writes = 0
        self.joins_left_to_fail = faults.join_fail
        self._reset_state()
        self.stats = {
            "commands": 0, "forwarded": 0, "dropped": 0, "lost": 0, "link_down_sends": 0,
            "received": 0, "garbage_lines": 0, "truncated_lines": 0, "joins": 0,
            "join_failures": 0, "session_expiries": 0, "rate_limited": 0, "fails": 0,
        }
        self._tx_log = []  # (end_ms, airtime_s) for the ARIB window
        self._arib_active = False
        for at, dur in faults.arib:
            self._at(at, self._arib_on)
            self._at(at + dur, self._arib_off)

    # ------------------------------------------------------------ the caller's side
    def receive_serial(self, data, now_ms):
        self.advance(now_ms)
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

    def receive_datagram(self, data, now_ms):
        """A datagram from the collector: an ERXUDP line, if the module can deliver it."""
        self.advance(now_ms)
        if not self.joined or not self.link_up() or not data:
            self.stats["lost"] += 1
            return
        if len(data) > self.profile["max_payload"]:
            self.stats["lost"] += 1
            return
        self.stats["received"] += 1
        src, port = self.peer or (MODULE_ADDR, 0x0E1A)
        self._erxudp(src, port, 1, data)

    def advance(self, now_ms):
        """Fire every timer due by now_ms, in order; the model's time becomes now_ms."""
        while self._timers and self._timers[0][0] <= now_ms:
            due, _, fn, args = heapq.heappop(self._timers)
            self.now = max(self.now, due)
            fn(*args)
        self.now = max(self.now, now_ms)

    def next_timer(self):
        return self._timers[0][0] if self._timers else None

    def take_serial(self):
        out = b"".join(self._serial)
        self._serial = []
        return out

    def take_datagrams(self):
        out = self._datagrams
        self._datagrams = []
        return out

    def link_up(self):
        return self.faults.link_up(self.now)

    # ------------------------------------------------------------ module state
    def _reset_state(self):
        self.echo = True
        self.joined = False
        self.session_gen = 0
        self.pwd = None
        self.rbid = None
        self.regs = {}
        self.peer = None  # (ipaddr, port) of the last SKSENDTO

    def _at(self, due_ms, fn, *args):
        self._seq += 1
        heapq.heappush(self._timers, (due_ms, self._seq, fn, args))

    def _later(self, delay_ms, fn, *args):
        self._at(self.now + delay_ms, fn, *args)

    # ------------------------------------------------------------ output
    def _emit(self, line):
        if isinstance(line, str):
            line = line.encode()
        f = self.faults
        if f.roll(f.garbage):
            junk = bytes(self.rng.choice(_JUNK) for _ in range(self.rng.randint(1, 40)))
            self._serial.append(junk + b"\r\n")
            self.stats["garbage_lines"] += 1
        if f.truncate and len(line) > 2 and f.roll(f.truncate):
            line = line[: self.rng.randint(1, len(line) - 1)]
            self.stats["truncated_lines"] += 1
        self._serial.append(line + b"\r\n")

    def _event(self, num, param=None, addr=None):
        parts = ["EVENT", "%02X" % num, addr or MODULE_ADDR]
        if self.profile.get("event_side"):
            parts.append(str(self.regs.get("side", 1 if self.profile.get("sendto_side") else 0)))
        if param is not None:
            parts.append("%02X" % param)
        self._emit(" ".join(parts))

    def _ok(self, delay_key="ok", extra=None):
        self._later(self._lat[delay_key], self._emit, "OK" if extra is None else "OK " + extra)

    def _fail(self, code):
        self.stats["fails"] += 1
        self._later(self._lat["ok"], self._emit, "FAIL ER%02d" % code)

    # ------------------------------------------------------------ input
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
        handler = self._COMMANDS.get(parts[0])
        if handler is None:
            self._fail(4)
            return
        try:
            handler(self, parts[1:])
        except (ValueError, IndexError):
            self._fail(6)

    # ------------------------------------------------------------ commands
    def _cmd_skreset(self, args):
        self._reset_state()
        self._ok("reset")

    def _cmd_sksreg(self, args):
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

    def _cmd_skver(self, args):
        self._emit("EVER 1.2.10")
        self._ok()

    def _cmd_skappver(self, args):
        self._emit("EAPPVER smeter-emu-" + self.profile["id"])
        self._ok()

    def _cmd_ropt(self, args):
        if not self.profile["ropt"]:
            self._fail(4)
            return
        self._ok(extra="%02X" % self.flash_mode)

    def _cmd_wopt(self, args):
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

    def _cmd_sksetpwd(self, args):
        if len(args) != 2 or int(args[0], 16) != len(args[1]):
            self._fail(6)
            return
        self.pwd = args[1]
        self._ok()

    def _cmd_sksetrbid(self, args):
        if len(args) != 1 or len(args[0]) != 32:
            self._fail(6)
            return
        self.rbid = args[0]
        self._ok()

    def _cmd_skjoin(self, args):
        if len(args) != 1:
            self._fail(5)
            return
        if self.pwd is None or self.rbid is None:
            self._fail(10)
            return
        self._ok()
        self._later(self._lat["join"], self._join_done, args[0])

    def _cmd_skterm(self, args):
        if self.joined:
            self.joined = False
            self.session_gen += 1
            self._ok()
            self._later(self._lat["ok"], self._event, 0x27)
        else:
            self._ok()
            self._later(self._lat["ok"], self._event, 0x28)

    _COMMANDS = {
        "SKRESET": _cmd_skreset, "SKSREG": _cmd_sksreg, "SKVER": _cmd_skver,
        "SKAPPVER": _cmd_skappver, "ROPT": _cmd_ropt, "WOPT": _cmd_wopt,
        "SKSETPWD": _cmd_sksetpwd, "SKSETRBID": _cmd_sksetrbid, "SKJOIN": _cmd_skjoin,
        "SKTERM": _cmd_skterm,
    }

    # ------------------------------------------------------------ the session
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
        if self.faults.session_expiry_ms:
            self._later(self.faults.session_expiry_ms, self._expire, self.session_gen, addr)

    def _expire(self, gen, addr):
        if gen != self.session_gen or not self.joined:
            return
        self.stats["session_expiries"] += 1
        self.joined = False
        self._event(0x29, addr=addr)
        # the module re-authenticates on its own: EVENT 25 on success, EVENT 24 on failure
        self._later(self._lat["reauth"], self._join_done, addr)

    # ------------------------------------------------------------ sending
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
        self._later(self._lat["tx_base"] + airtime * 1000.0, self._tx_done, addr, data, airtime)

    def _tx_done(self, addr, data, airtime):
        if not self.link_up():
            self.stats["link_down_sends"] += 1
            self._event(0x21, 1, addr=addr)
            return
        self._account_airtime(airtime)
        f = self.faults
        if f.roll(f.drop):
            self.stats["dropped"] += 1
            self._event(0x21, 1, addr=addr)
            return
        self._event(0x21, 0, addr=addr)
        if f.roll(f.lose):
            self.stats["lost"] += 1
            return
        self._datagrams.append(data)

    def _account_airtime(self, airtime):
        now = self.now
        self._tx_log = [(t, a) for (t, a) in self._tx_log if t > now - ARIB_WINDOW_MS]
        self._tx_log.append((now, airtime))
        if not self._arib_active and sum(a for _, a in self._tx_log) > self.tx_budget_s:
            self._arib_on()
            self._at(self._tx_log[0][0] + ARIB_WINDOW_MS, self._arib_off)

    def _arib_on(self):
        if not self._arib_active:
            self._arib_active = True
            self._event(0x32)

    def _arib_off(self):
        if self._arib_active:
            self._arib_active = False
            self._event(0x33)

    def _erxudp(self, src, port, secured, data):
        """One ERXUDP line: rport = lport = port, columns per the profile, hex or binary."""
        fields = self.profile["erxudp_fields"][0]
        head = ["ERXUDP", src, MODULE_ADDR, "%04X" % port, "%04X" % port, MODULE_MAC]
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
