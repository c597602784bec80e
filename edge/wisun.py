"""Wi-SUN module driver: the SKSTACK-IP text command set as a sans-I/O state machine.

Bytes from the module's UART go in through `feed(data, now_ms)`; command bytes to write come
out of `poll(now_ms)` and `send(payload, tag, now_ms)`; what happened comes out of
`next_event()` as small tuples. The driver never reads a clock: the caller passes ticks
(`time.ticks_ms()` on a board, monotonic ms & (2**30 - 1) on a host) and `deadline()`
says when `poll` must run next. See docs/wisun.md for the command sequence, the gates and
the sources.

Rules (h11-style, one outstanding command at a time):
  IDLE --poll--> RESET -OK-> ECHO -OK-> VER -OK-> APPVER -OK-> ROPT -OK-> [WOPT -OK->]
  PWD -OK-> RBID -OK-> CHAN -OK-> PAN -OK-> JOIN -EVENT 25-> READY
  READY --send()--> SENDING -(OK + EVENT 21)-> READY
  JOIN -EVENT 24 / timeout-> WAIT_REJOIN -backoff-> JOIN   (full reopen after N failures)
  any init FAIL / timeout, repeated link failures -> WAIT_REOPEN -backoff-> RESET
  EVENT 29 (lifetime) closes the session gate: REAUTH waits for the module's own EVENT 25
  (gate opens) or EVENT 24 / timeout (-> WAIT_REJOIN). EVENT 26/27/28 close it -> rejoin.
  EVENT 32 closes the rate gate (ARIB STD-T108 transmit-time limit), EVENT 33 opens it.
A send is allowed only in READY with both gates open. Every line that is not understood is
counted and skipped; nothing a module prints can raise.
"""
import binascii

from edge.backoff import Backoff, BackoffConfigError, ticks_add, ticks_diff
from edge.compat import const
from edge.errors import EdgeError

# --- states -------------------------------------------------------------------------------
ST_IDLE = const(0)
ST_RESET = const(1)
ST_ECHO = const(2)
ST_VER = const(3)
ST_APPVER = const(4)
ST_ROPT = const(5)
ST_WOPT = const(6)
ST_PWD = const(7)
ST_RBID = const(8)
ST_CHAN = const(9)
ST_PAN = const(10)
ST_JOIN = const(11)
ST_READY = const(12)
ST_SENDING = const(13)
ST_REAUTH = const(14)
ST_WAIT_REJOIN = const(15)
ST_WAIT_REOPEN = const(16)

STATE_NAMES = (
    "idle", "reset", "echo", "ver", "appver", "ropt", "wopt", "pwd", "rbid", "chan", "pan",
    "join", "ready", "sending", "reauth", "wait_rejoin", "wait_reopen",
)

# Init sequence: the state entered when the command of state s answers OK.
# ROPT's successor is decided by the mode it reports (WOPT only when different).
_OK_NEXT = (
    ST_RESET, ST_ECHO, ST_VER, ST_APPVER, ST_ROPT, ST_PWD, ST_PWD, ST_RBID, ST_CHAN,
    ST_PAN, ST_JOIN,
)
# Init commands a module may refuse (FAIL ER04) without harm: SKAPPVER, ROPT, WOPT.
_OPTIONAL = (ST_APPVER, ST_ROPT, ST_WOPT)

# --- events: tuples (kind, a, b) -----------------------------------------------------------
EV_JOINED = const(1)  # (EV_JOINED, None, None)
EV_JOIN_FAILED = const(2)  # (EV_JOIN_FAILED, reason, consecutive_failures)
EV_SEND_OK = const(3)  # (EV_SEND_OK, tag, None)
EV_SEND_FAILED = const(4)  # (EV_SEND_FAILED, tag, reason)
EV_UDP_RECEIVED = const(5)  # (EV_UDP_RECEIVED, payload, (src_addr, src_port))
EV_GATE = const(6)  # (EV_GATE, GATE_SESSION | GATE_RATE, is_open)
EV_ERROR = const(7)  # (EV_ERROR, counter_name, count)
EV_REOPEN = const(8)  # (EV_REOPEN, reason, None): a full module reopen starts

GATE_SESSION = const(1)
GATE_RATE = const(2)

# FAIL ERxx classes
FAIL_REFUSAL = const(1)  # ER04 unsupported, ER05 argument count, ER06 format/range
FAIL_LINK = const(2)  # ER09 UART input error, ER10 accepted but failed to execute
FAIL_REOPEN = const(3)  # reserved/undocumented codes: the module is in a state we do not know

# send_failed / join_failed reasons (module-level: no allocation when reported)
R_TIMEOUT = "timeout"
R_TX_FAILED = "tx_failed"  # EVENT 21 param 01
R_ADDR_RESOLUTION = "address_resolution"  # EVENT 21 param 02: NS sent, data not sent
R_REFUSED = "refused"
R_LINK = "link"
R_REJECTED = "rejected"  # EVENT 24
R_SESSION_END = "session_end"
R_LIFETIME = "lifetime"
R_LINK_FAILURES = "link_failures"
R_JOIN_FAILURES = "join_failures"
R_INIT_FAILED = "init_failed"
R_UNKNOWN_FAIL = "unknown_fail"
R_REQUESTED = "requested"

MODE_BINARY = const(0)
MODE_HEX = const(1)

_EVENT_QUEUE_MAX = const(32)

# EVENT numbers the module reference documents with a sender address and no parameter
# (BP35A1 command reference 4.8; 21 carries a parameter, C0 neither address nor parameter).
_EVENTS_ADDR_ONLY = (0x01, 0x02, 0x05, 0x1F, 0x20, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
                     0x32, 0x33)
# UDP port of PANA (RFC 5191, IANA "pana" 716 = 0x02CC): the module's own authentication
# traffic, shown as ERXUDP during SKJOIN and re-authentication.
PANA_PORT = const(0x02CC)

COUNTER_NAMES = (
    "unknown_lines", "echo_lines", "garbled_lines", "overlong_lines", "stale_partials",
    "stray_ok", "other_events", "erxudp_field_mismatch", "fail_refusal", "fail_link",
    "fail_reopen", "timeouts", "send_ok", "send_failed", "udp_received", "joins",
    "join_failures", "reopens", "wopt_writes", "rate_gate_timeouts", "events_dropped",
    "udp_pana", "udp_other_port",
)


# Counted but normal: no EV_ERROR (echoes before SFE 0 applies, events the uplink ignores).
_QUIET_COUNTERS = ("events_dropped", "send_ok", "udp_received", "joins", "wopt_writes",
                   "echo_lines", "other_events", "udp_pana", "udp_other_port")


class WisunError(EdgeError):
    kind = "wisun"


class WisunProfileError(WisunError):
    kind = "wisun_profile"


class WisunConfigError(WisunError):
    kind = "wisun_config"


class WisunPayloadTooLarge(WisunError):
    kind = "wisun_payload_too_large"


class WisunPayloadInvalid(WisunError):
    kind = "wisun_payload_invalid"


class WisunNotReady(WisunError):
    kind = "wisun_not_ready"


def classify_fail(code):
    """FAIL ERxx -> FAIL_REFUSAL / FAIL_LINK / FAIL_REOPEN (see docs/wisun.md)."""
    if code == 4 or code == 5 or code == 6:
        return FAIL_REFUSAL
    if code == 9 or code == 10:
        return FAIL_LINK
    return FAIL_REOPEN


_TIMING_KEYS = ("cmd", "reset", "wopt", "join", "send", "reauth", "rate_gate_max", "line_gap")


def check_profile(p):
    """Validate a module profile (hw/modules/*.json, already parsed); returns it."""
    try:
        mp = p["max_payload"]
        if not (isinstance(mp, int) and 1 <= mp <= 4096):
            raise WisunProfileError("max_payload must be an int in 1..4096")
        modes = p["payload_modes"]
        for m in modes:
            if m != "hex" and m != "binary":
                raise WisunProfileError("payload_modes holds 'hex' and/or 'binary'")
        if not modes:
            raise WisunProfileError("payload_modes is empty")
        for n in p["erxudp_fields"]:
            if n < 9 or n > 11:
                raise WisunProfileError("erxudp_fields are token counts 9..11")
        side = p.get("sendto_side")
        if side is not None and side not in (0, 1):
            raise WisunProfileError("sendto_side is 0, 1 or null")
        t = p["timing_ms"]
        for k in _TIMING_KEYS:
            v = t[k]
            if not (isinstance(v, int) and 0 < v < 0x20000000):
                raise WisunProfileError("timing_ms." + k + " must be an int in 1..2**29-1")
        if not isinstance(p["ropt"], bool):
            raise WisunProfileError("ropt must be true or false")
    except (KeyError, TypeError) as e:
        raise WisunProfileError("incomplete module profile: " + repr(e))
    return p


def _token(s, lo, hi):
    """A command argument: a str of lo..hi printable ASCII characters, no spaces."""
    if not isinstance(s, str) or not lo <= len(s) <= hi:
        return False
    for ch in s:
        if not "!" <= ch <= "~":
            return False
    return True


def _hex_field(tok):
    """int(tok, 16) or -1 when the token is not hex."""
    try:
        return int(tok, 16)
    except ValueError:
        return -1


class WisunDriver:
    """One module, one coordinator (the smart meter), one UDP destination (the collector)."""

    def __init__(self, profile, config, rand=None):
        check_profile(profile)
        self.profile = profile
        self.max_payload = profile["max_payload"]
        t = profile["timing_ms"]
        self._t_cmd = t["cmd"]
        self._t_reset = t["reset"]
        self._t_wopt = t["wopt"]
        self._t_join = t["join"]
        self._t_send = t["send"]
        self._t_reauth = t["reauth"]
        self._t_rate = t["rate_gate_max"]
        self._t_gap = t["line_gap"]
        self._side = profile.get("sendto_side")
        self._fields = profile["erxudp_fields"]
        self._event_side = bool(profile.get("event_side"))
        self._ropt = profile["ropt"]
        self._modes = profile["payload_modes"]
        try:
            self._rbid = config["rbid"]
            self._pwd = config["pwd"]
            self._channel = int(config["channel"])
            self._pan_id = int(config["pan_id"])
            self._coord = config["coordinator"]
            self._port = int(config.get("dest_port", 0x0E1A))
            self._sec = int(config.get("sec", 1))
            self._allow_wopt = bool(config.get("allow_wopt", True))
            self._max_join_failures = int(config.get("max_join_failures", 4))
            self._max_link_failures = int(config.get("max_link_failures", 3))
            self._backoff = Backoff(
                int(config.get("backoff_base_ms", 2000)), int(config.get("backoff_max_ms", 600000))
            )
        except (KeyError, TypeError, ValueError, AttributeError, BackoffConfigError) as e:
            raise WisunConfigError("bad Wi-SUN config: " + repr(e))
        if not (_token(self._pwd, 1, 32) and _token(self._rbid, 32, 32)
                and _token(self._coord, 2, 39)):
            raise WisunConfigError("rbid: 32 characters, pwd: 1..32, coordinator: an address; "
                                   "printable ASCII without spaces")
        if not (0 <= self._port <= 0xFFFF and 0 <= self._pan_id <= 0xFFFF
                and 0 <= self._channel <= 0xFF and 0 <= self._sec <= 2):
            raise WisunConfigError("dest_port and pan_id are 16-bit, channel 8-bit, sec 0..2")
        self._rand = rand
        # line framing: fixed buffer, fill count, scan offset (no rescans, no per-feed copies)
        self._cap = 2 * self.max_payload + 256
        self._buf = bytearray(self._cap + 128)
        self._mv = memoryview(self._buf)
        self._n = 0
        self._scan = 0
        self._skip_line = False
        self._partial_at = 0
        self._binary_need = -1  # >= 0: bytes still to take raw for a binary ERXUDP
        # protocol state
        self.state = ST_IDLE
        self.session_open = False
        self.rate_open = True
        self.payload_mode = MODE_HEX if "binary" not in self._modes else MODE_BINARY
        self.version = None
        self.app_version = None
        self._deadline = None  # tick of the current wait, or None
        self._rate_deadline = None
        self._out = []
        self._events = []
        self._join_failures = 0
        self._link_failures = 0
        self._send_tag = None
        self._send_ok = False
        self._send_result = -1
        self._after_send = 0  # 0 nothing, 1 reauth, 2 rejoin, 3 reopen
        self._after_reason = None
        self.counters = {}
        for name in COUNTER_NAMES:
            self.counters[name] = 0

    # ------------------------------------------------------------------ public API
    def can_send(self):
        return self.state == ST_READY and self.session_open and self.rate_open

    def deadline(self):
        """The tick at which poll() must run next (None: only when bytes arrive)."""
        d = self._deadline
        r = self._rate_deadline
        if d is None:
            return r
        if r is None:
            return d
        return d if ticks_diff(d, r) <= 0 else r

    def next_event(self):
        if self._events:
            return self._events.pop(0)
        return None

    def poll(self, now_ms):
        """Advance timers; return the bytes to write to the module (b'' when none)."""
        if self.state == ST_IDLE:
            self._issue(ST_RESET, now_ms)
        if self._rate_deadline is not None and ticks_diff(now_ms, self._rate_deadline) >= 0:
            self._rate_deadline = None
            self._count("rate_gate_timeouts")
            self._set_gate(GATE_RATE, True)
        if self._deadline is not None and ticks_diff(now_ms, self._deadline) >= 0:
            self._deadline = None
            self._on_timeout(now_ms)
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out = []
        return out

    def send(self, payload, tag, now_ms):
        """SKSENDTO bytes for one UDP payload; the result comes as EV_SEND_OK/EV_SEND_FAILED."""
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise WisunPayloadInvalid("payload must be bytes")
        n = len(payload)
        if n == 0:
            raise WisunPayloadInvalid("empty payload")
        if n > self.max_payload:
            raise WisunPayloadTooLarge("payload exceeds the module limit", (n, self.max_payload))
        if not self.can_send():
            raise WisunNotReady("no send now", STATE_NAMES[self.state])
        if self._side is None:
            head = "SKSENDTO 1 %s %04X %d %04X " % (self._coord, self._port, self._sec, n)
        else:
            head = "SKSENDTO 1 %s %04X %d %d %04X " % (
                self._coord, self._port, self._sec, self._side, n)
        self.state = ST_SENDING
        self._send_tag = tag
        self._send_ok = False
        self._send_result = -1
        self._after_send = 0
        self._deadline = ticks_add(now_ms, self._t_send)
        return head.encode() + bytes(payload)

    def reopen(self, now_ms):
        """Force a full reopen (SKRESET and the whole init) at once, e.g. after an agent restart."""
        self._start_reopen(R_REQUESTED, now_ms, 0)

    # ------------------------------------------------------------------ input
    def feed(self, data, now_ms):
        """Bytes read from the module, in any chunking."""
        i = 0
        n = len(data)
        while i < n:
            room = len(self._buf) - self._n
            if room == 0:
                self._drop_overlong()
                room = len(self._buf) - self._n
            k = n - i
            if k > room:
                k = room
            if self._n > 0 and ticks_diff(now_ms, self._partial_at) > self._t_gap:
                # a partial line older than the gap lost its tail: drop it, don't glue it
                self._count("stale_partials")
                self._n = 0
                self._scan = 0
                self._binary_need = -1
            self._mv[self._n:self._n + k] = memoryview(data)[i:i + k]
            self._n += k
            i += k
            self._split_lines(now_ms)
            if self._n > 0:
                self._partial_at = now_ms

    def _drop_overlong(self):
        self._count("overlong_lines")
        self._n = 0
        self._scan = 0
        self._binary_need = -1
        self._skip_line = True

    def _split_lines(self, now_ms):
        buf = self._buf
        start = 0
        while True:
            if self._binary_need >= 0:
                if self._n - start < self._binary_need:
                    break
                end = start + self._binary_need
                self._binary_need = -1
                line = bytes(self._mv[start:end])
                start = end
                self._scan = start
                self._on_line(line, now_ms)
                continue
            cr = buf.find(b"\r", self._scan, self._n)
            lf = buf.find(b"\n", self._scan, self._n)
            binary = (self.payload_mode == MODE_BINARY and not self._skip_line
                      and self._n - start >= 7 and buf[start:start + 7] == b"ERXUDP ")
            if binary:
                # binary data may hold CR/LF: frame by the length field, not the terminator
                need = self._binary_length(start)
                if need >= 0:
                    self._binary_need = need
                    continue
            if cr < 0 and lf < 0:
                self._scan = self._n
                if self._skip_line:  # still inside a line already counted as overlong
                    start = self._n
                    self._scan = start
                elif self._n - start > self._cap:
                    self._count("overlong_lines")
                    start = self._n
                    self._scan = start
                    self._skip_line = True
                break
            end = cr if (lf < 0 or (0 <= cr < lf)) else lf
            line = bytes(self._mv[start:end])
            start = end + 1
            self._scan = start
            if self._skip_line:
                self._skip_line = False
                continue
            if line:
                self._on_line(line, now_ms)
        # compact: move the unfinished tail to the front
        rest = self._n - start
        if start > 0:
            if rest > 0:
                self._mv[0:rest] = self._mv[start:self._n]
            self._n = rest
            self._scan -= start
            if self._scan < 0:
                self._scan = 0

    def _binary_length(self, start):
        """Binary ERXUDP: header + DATALEN once the header is in; -1 until then or if bad."""
        want = self._fields[0] - 1  # spaces before the data field
        pos = start
        len_at = start
        spaces = 0
        while spaces < want:
            j = self._buf.find(b" ", pos, self._n)
            if j < 0:
                return -1
            t = self._buf.find(b"\r", pos, j)
            if t >= 0 or self._buf.find(b"\n", pos, j) >= 0:
                return -1  # a terminator inside the header: a truncated line
            spaces += 1
            if spaces == want - 1:
                len_at = j + 1
            pos = j + 1
        dl = _hex_field(bytes(self._mv[len_at:pos - 1]))
        if dl < 0 or dl > self.max_payload:
            return -1
        return (pos - start) + dl

    # ------------------------------------------------------------------ lines
    def _on_line(self, line, now_ms):
        c = line[0]
        if c == 0x45:  # 'E'
            if line.startswith(b"EVENT "):
                self._on_event(line, now_ms)
                return
            if line.startswith(b"ERXUDP "):
                self._on_erxudp(line)
                return
            if line.startswith(b"EVER ") and self.state == ST_VER:
                self.version = line[5:].decode()
                return
            if line.startswith(b"EAPPVER ") and self.state == ST_APPVER:
                self.app_version = line[8:].decode()
                return
        elif c == 0x4F:  # 'O'
            if line == b"OK" or line.startswith(b"OK "):
                self._on_ok(line, now_ms)
                return
        elif c == 0x46:  # 'F'
            if line.startswith(b"FAIL ER") and len(line) == 9:
                d0 = line[7] - 48
                d1 = line[8] - 48
                if 0 <= d0 <= 9 and 0 <= d1 <= 9:
                    self._on_fail(d0 * 10 + d1, now_ms)
                    return
        elif c == 0x53 or c == 0x52 or c == 0x57:  # 'S'K..., 'R'OPT, 'W'OPT: echo
            if line.startswith(b"SK") or line == b"ROPT" or line.startswith(b"WOPT"):
                self._count("echo_lines")
                return
        self._count("unknown_lines")

    def _on_ok(self, line, now_ms):
        st = self.state
        if st != ST_ROPT and line != b"OK":
            self._count("stray_ok")  # "OK xx" answers ROPT only
            return
        if st == ST_SENDING:
            self._send_ok = True
            if self._send_result >= 0:
                self._finish_send(now_ms)
            return
        if st == ST_JOIN:
            return  # OK to SKJOIN: keep waiting for EVENT 25/24 under the join deadline
        if st == ST_ROPT:
            if len(line) != 5:
                self._count("garbled_lines")
                return
            mode = _hex_field(line[3:5])
            if mode < 0:
                self._count("garbled_lines")
                return
            self.payload_mode = MODE_HEX if mode & 1 else MODE_BINARY
            want_hex = "hex" in self._modes
            if want_hex and self.payload_mode != MODE_HEX and self._allow_wopt:
                self._issue(ST_WOPT, now_ms)
            else:
                self._issue(ST_PWD, now_ms)
            return
        if st == ST_WOPT:
            self._count("wopt_writes")
            self.payload_mode = MODE_HEX
        if ST_RESET <= st <= ST_PAN:
            self._issue(_OK_NEXT[st], now_ms)
            return
        self._count("stray_ok")

    def _on_fail(self, code, now_ms):
        cls = classify_fail(code)
        name = "fail_refusal" if cls == FAIL_REFUSAL else (
            "fail_link" if cls == FAIL_LINK else "fail_reopen")
        self._count(name)
        st = self.state
        if st == ST_SENDING:
            self._send_result = 1
            reason = R_REFUSED if cls == FAIL_REFUSAL else R_LINK
            self._end_send(False, reason, now_ms)
            if cls == FAIL_REOPEN:
                self._start_reopen(R_UNKNOWN_FAIL, now_ms, 1)
            elif cls == FAIL_LINK:
                self._link_failure(now_ms)
            else:
                self._resume(now_ms)
            return
        if st == ST_JOIN:
            self._join_failed(R_LINK if cls == FAIL_LINK else R_REFUSED, now_ms)
            return
        if st in _OPTIONAL and cls == FAIL_REFUSAL:
            if st == ST_ROPT:  # no ROPT: the module speaks hex-ASCII only
                self.payload_mode = MODE_HEX
            self._issue(ST_PWD if st != ST_APPVER else ST_ROPT, now_ms)
            return
        if ST_RESET <= st <= ST_PAN:
            self._start_reopen(R_INIT_FAILED, now_ms, 1)

    def _on_event(self, line, now_ms):
        parts = line.split()
        nf = len(parts)
        num = _hex_field(parts[1]) if nf >= 2 else -1
        if num < 0 or num > 0xFF:
            self._count("garbled_lines")
            return
        # token count the module reference gives this number (see _event_tokens)
        want = self._event_tokens(num)
        if nf != want and not (want < 0 and 3 <= nf <= 5):
            self._count("garbled_lines")
            return
        st = self.state
        if num == 0x21:
            # EVENT 21 <addr> [<side>] <param>: the last field is the result
            param = _hex_field(parts[-1])
            if param < 0:
                self._count("garbled_lines")
                return
            if st != ST_SENDING:
                self._count("other_events")
                return
            self._send_result = param
            if self._send_ok:
                self._finish_send(now_ms)
        elif num == 0x25:
            self._set_gate(GATE_SESSION, True)
            if st == ST_JOIN:
                self._join_failures = 0
                self._link_failures = 0
                self._backoff.reset()
                self._count("joins")
                self._emit(EV_JOINED, None, None)
                self.state = ST_READY
                self._deadline = None
            elif st == ST_REAUTH:
                self.state = ST_READY
                self._deadline = None
            elif st == ST_SENDING:
                self._after_send = 0
            elif st == ST_WAIT_REJOIN:  # the module re-authenticated on its own meanwhile
                self._backoff.reset()
                self.state = ST_READY
                self._deadline = None
        elif num == 0x24:
            if st == ST_JOIN:
                self._join_failed(R_REJECTED, now_ms)
            elif st == ST_READY or st == ST_REAUTH:
                self._set_gate(GATE_SESSION, False)
                self._schedule_rejoin(now_ms)
            elif st == ST_SENDING:
                self._set_gate(GATE_SESSION, False)
                self._after_send = 2
            else:
                self._count("other_events")
        elif num == 0x26 or num == 0x27 or num == 0x28 or num == 0x29:
            self._set_gate(GATE_SESSION, False)
            if st == ST_READY:
                if num == 0x29:
                    self.state = ST_REAUTH
                    self._deadline = ticks_add(now_ms, self._t_reauth)
                else:
                    self._schedule_rejoin(now_ms)
            elif st == ST_SENDING:
                if num == 0x29 and self._after_send < 1:
                    self._after_send = 1
                elif num != 0x29:
                    self._after_send = 2
            elif st == ST_REAUTH and num != 0x29:
                self._schedule_rejoin(now_ms)
        elif num == 0x32:
            self._set_gate(GATE_RATE, False)
            self._rate_deadline = ticks_add(now_ms, self._t_rate)
        elif num == 0x33:
            self._rate_deadline = None
            self._set_gate(GATE_RATE, True)
        else:
            self._count("other_events")

    def _event_tokens(self, num):
        """Tokens of `EVENT <num> …` per the module reference (BP35A1 ch. 4.8): C0 (wake-up
        signal) has no address and no parameter; 21 has address [side] and a parameter; the
        other documented numbers an address [side] only. -1: undocumented, shape unknown."""
        if num == 0xC0:
            return 2
        n = 4 if self._event_side else 3
        if num == 0x21:
            return n + 1
        if num in _EVENTS_ADDR_ONLY:
            return n
        return -1

    def _on_erxudp(self, line):
        if self.payload_mode == MODE_BINARY:
            parts = line.split(b" ", self._fields[0] - 1)
        else:
            parts = line.split(b" ")
        nf = len(parts)
        if nf < 9 or nf > 11:
            self._count("garbled_lines")
            return
        if nf not in self._fields:
            self._count("erxudp_field_mismatch")
        # ERXUDP <sender> <dest> <rport> <lport> <senderlla> [<rssi>] <secured> [<side>]
        # <datalen> <data>: rport is the sender's port, lport ours (BP35A1 reference 4.1)
        dlen = _hex_field(parts[-2])
        port = _hex_field(parts[3])
        lport = _hex_field(parts[4])
        data = parts[-1]
        if dlen < 0 or port < 0 or lport < 0 or port > 0xFFFF or lport > 0xFFFF:
            self._count("garbled_lines")
            return
        if self.payload_mode == MODE_HEX:
            if len(data) != 2 * dlen:
                self._count("garbled_lines")
                return
            try:
                payload = binascii.unhexlify(data)
            except ValueError:
                self._count("garbled_lines")
                return
        else:
            if len(data) != dlen:
                self._count("garbled_lines")
                return
            payload = data
        # only the collector's replies go up: PANA (the module's own join and
        # re-authentication) and any other service are counted for what they are
        if port == PANA_PORT or lport == PANA_PORT:
            self._count("udp_pana")
            return
        if port != self._port:
            self._count("udp_other_port")
            return
        try:
            src = parts[1].decode()
        except UnicodeError:
            self._count("garbled_lines")
            return
        self._count("udp_received")
        self._emit(EV_UDP_RECEIVED, payload, (src, port))

    # ------------------------------------------------------------------ transitions
    def _issue(self, st, now_ms):
        self.state = st
        if st == ST_RESET:
            cmd = b"SKRESET\r\n"
            t = self._t_reset
        elif st == ST_ECHO:
            cmd = b"SKSREG SFE 0\r\n"
            t = self._t_cmd
        elif st == ST_VER:
            cmd = b"SKVER\r\n"
            t = self._t_cmd
        elif st == ST_APPVER:
            cmd = b"SKAPPVER\r\n"
            t = self._t_cmd
        elif st == ST_ROPT:
            if not self._ropt:  # profile says: no ROPT/WOPT, hex-ASCII only
                self.payload_mode = MODE_HEX
                self._issue(ST_PWD, now_ms)
                return
            cmd = b"ROPT\r\n"
            t = self._t_cmd
        elif st == ST_WOPT:
            cmd = b"WOPT 01\r\n"
            t = self._t_wopt
        elif st == ST_PWD:
            cmd = ("SKSETPWD %X %s\r\n" % (len(self._pwd), self._pwd)).encode()
            t = self._t_cmd
        elif st == ST_RBID:
            cmd = ("SKSETRBID %s\r\n" % self._rbid).encode()
            t = self._t_cmd
        elif st == ST_CHAN:
            cmd = ("SKSREG S2 %X\r\n" % self._channel).encode()
            t = self._t_cmd
        elif st == ST_PAN:
            cmd = ("SKSREG S3 %04X\r\n" % self._pan_id).encode()
            t = self._t_cmd
        else:  # ST_JOIN
            cmd = ("SKJOIN %s\r\n" % self._coord).encode()
            t = self._t_join
        self._out.append(cmd)
        self._deadline = ticks_add(now_ms, t)

    def _on_timeout(self, now_ms):
        st = self.state
        if st == ST_WAIT_REJOIN:
            self._issue(ST_JOIN, now_ms)
            return
        if st == ST_WAIT_REOPEN:
            self._issue(ST_RESET, now_ms)
            return
        self._count("timeouts")
        if st == ST_SENDING:
            self._end_send(False, R_TIMEOUT, now_ms)
            self._link_failure(now_ms)
        elif st == ST_JOIN:
            self._join_failed(R_TIMEOUT, now_ms)
        elif st == ST_REAUTH:
            self._schedule_rejoin(now_ms)
        elif ST_RESET <= st <= ST_PAN:
            if st in _OPTIONAL:  # a silent optional command: go on without it
                self._issue(ST_ROPT if st == ST_APPVER else ST_PWD, now_ms)
            else:
                self._start_reopen(R_TIMEOUT, now_ms, 1)

    def _finish_send(self, now_ms):
        r = self._send_result
        if r == 0:
            self._link_failures = 0
            self._end_send(True, None, now_ms)
            self._resume(now_ms)
        else:
            self._end_send(False, R_ADDR_RESOLUTION if r == 2 else R_TX_FAILED, now_ms)
            self._link_failure(now_ms)

    def _end_send(self, ok, reason, now_ms):
        tag = self._send_tag
        self._send_tag = None
        self._deadline = None
        if ok:
            self._count("send_ok")
            self._emit(EV_SEND_OK, tag, None)
        else:
            self._count("send_failed")
            self._emit(EV_SEND_FAILED, tag, reason)
        self.state = ST_READY

    def _link_failure(self, now_ms):
        self._link_failures += 1
        if self._link_failures >= self._max_link_failures:
            self._link_failures = 0
            self._start_reopen(R_LINK_FAILURES, now_ms, 1)
        else:
            self._resume(now_ms)

    def _resume(self, now_ms):
        """After a send: apply what session events asked for while it was in flight."""
        after = self._after_send
        self._after_send = 0
        if self.state != ST_READY:
            return
        if after == 2:
            self._schedule_rejoin(now_ms)
        elif after == 1 or not self.session_open:
            self.state = ST_REAUTH
            self._deadline = ticks_add(now_ms, self._t_reauth)

    def _join_failed(self, reason, now_ms):
        self._join_failures += 1
        self._count("join_failures")
        self._emit(EV_JOIN_FAILED, reason, self._join_failures)
        if self._join_failures >= self._max_join_failures:
            self._join_failures = 0
            self._start_reopen(R_JOIN_FAILURES, now_ms, 1)
        else:
            self._schedule_rejoin(now_ms)

    def _schedule_rejoin(self, now_ms):
        self._set_gate(GATE_SESSION, False)
        self.state = ST_WAIT_REJOIN
        self._deadline = ticks_add(now_ms, self._backoff.next_delay(self._draw()))

    def _start_reopen(self, reason, now_ms, delayed):
        self._count("reopens")
        self._emit(EV_REOPEN, reason, None)
        self._set_gate(GATE_SESSION, False)
        if self._send_tag is not None:
            self._end_send(False, R_LINK, now_ms)
        self._after_send = 0
        if delayed:
            self.state = ST_WAIT_REOPEN
            self._deadline = ticks_add(now_ms, self._backoff.next_delay(self._draw()))
        else:
            self._out = []
            self._issue(ST_RESET, now_ms)

    # ------------------------------------------------------------------ helpers
    def _draw(self):
        r = self._rand
        return r() if r is not None else 0

    def _set_gate(self, gate, is_open):
        if gate == GATE_SESSION:
            if self.session_open == is_open:
                return
            self.session_open = is_open
        else:
            if self.rate_open == is_open:
                return
            self.rate_open = is_open
        self._emit(EV_GATE, gate, is_open)

    def _count(self, name):
        c = self.counters[name] + 1
        if c > 0x3FFFFFFF:
            c = 0x3FFFFFFF  # saturate inside the small-int range
        self.counters[name] = c
        if name not in _QUIET_COUNTERS:
            self._emit(EV_ERROR, name, c)

    def _emit(self, kind, a, b):
        ev = self._events
        if len(ev) >= _EVENT_QUEUE_MAX:
            ev.pop(0)
            c = self.counters["events_dropped"] + 1
            self.counters["events_dropped"] = c if c <= 0x3FFFFFFF else 0x3FFFFFFF
        ev.append((kind, a, b))
