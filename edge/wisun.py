"""Wi-SUN module driver: the SKSTACK-IP text command set as a sans-I/O state machine.

Bytes from the module's UART go in through `feed(data, now_ms)`; command bytes to write come
out of `poll(now_ms)` and `send(payload, tag, now_ms)`; what happened comes out of
`next_event()` as small tuples. The driver never reads a clock: the caller passes ticks
(`time.ticks_ms()` on a board, monotonic ms & (2**30 - 1) on a host) and `deadline()`
says when `poll` must run next. See docs/wisun.md for the command sequence, the gates and
the sources.

Two parts, as h11/wsproto keep them: edge/wisun_lines.py turns the byte stream into parsed
module lines; this module holds the session. Its rules are data, `TRANSITIONS` below
(state x input -> next state, gate change, counter, action), which docs/wisun.md prints
and a test keeps equal to the code. In short:
  idle -> reset -> echo -> ver -> appver -> ropt -> [wopt] -> pwd -> rbid -> chan -> pan -> join
  (one command outstanding, each OK issues the next) -EVENT 25-> ready -send()-> sending
  -(OK + EVENT 21)-> ready; EVENT 24 / timeouts -> wait_rejoin -backoff-> join; init
  failures and repeated link or join failures -> wait_reopen -backoff-> reset.
  EVENT 29 closes the session gate (reauth waits for the module's own EVENT 25),
  EVENT 26/27/28 close it -> rejoin; EVENT 32/33 close and open the rate gate (ARIB STD-T108).
A send is allowed only in ready with both gates open. Every line that is not understood is
counted and skipped; nothing a module prints can raise.
"""
from edge.backoff import Backoff, BackoffConfigError, ticks_add, ticks_diff
from edge.compat import const
from edge.errors import EdgeError
from edge.wisun_lines import (
    LN_EAPPVER,
    LN_ERXUDP,
    LN_EVENT,
    LN_EVER,
    LN_FAIL,
    LN_OK,
    LN_PANA,
    PANA_PORT,  # noqa: F401  (re-exported: part of this module's documented interface)
    LineDecoder,
)

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
_N_STATES = const(17)

STATE_NAMES = (
    "idle", "reset", "echo", "ver", "appver", "ropt", "wopt", "pwd", "rbid", "chan", "pan",
    "join", "ready", "sending", "reauth", "wait_rejoin", "wait_reopen",
)

# --- inputs of the transition table -------------------------------------------------------
_IN_START = const(0)  # poll() in idle
_IN_OK = const(1)  # "OK"
_IN_OK_MODE = const(2)  # "OK hh" (ROPT's answer; arg: the mode, -2 if not two hex digits)
_IN_FAIL_REFUSAL = const(3)  # FAIL ER04/05/06 (arg: the code)
_IN_FAIL_LINK = const(4)  # FAIL ER09/10
_IN_FAIL_REOPEN = const(5)  # any other FAIL code
_IN_TIMEOUT = const(6)  # the command or wait deadline passed
_IN_RATE_TIMEOUT = const(7)  # no EVENT 33 within timing_ms.rate_gate_max
_IN_EV21 = const(8)  # send result (arg: its parameter)
_IN_EV24 = const(9)
_IN_EV25 = const(10)
_IN_EV_END = const(11)  # EVENT 26, 27, 28
_IN_EV29 = const(12)
_IN_EV32 = const(13)
_IN_EV33 = const(14)
_IN_EV_OTHER = const(15)  # 01, 02, 05, 1F, 20, 22, C0 and undocumented numbers
_IN_SEND = const(16)  # send()
_IN_REOPEN = const(17)  # reopen()
_N_INPUTS = const(18)

INPUT_NAMES = (
    "poll()", "OK", "OK hh", "FAIL refusal", "FAIL link", "FAIL other", "deadline",
    "rate deadline", "EVENT 21", "EVENT 24", "EVENT 25", "EVENT 26/27/28", "EVENT 29",
    "EVENT 32", "EVENT 33", "other EVENT", "send()", "reopen()",
)

# next-state column: a state, or one of these
NX_SAME = const(-1)  # the state does not change
NX_ACTION = const(-2)  # the action decides (a guard: see ACTION_NAMES in docs/wisun.md)

# gate column
_G_NONE = const(0)
_G_SESSION_OPEN = const(1)
_G_SESSION_CLOSE = const(2)
_G_RATE_OPEN = const(3)
_G_RATE_CLOSE = const(4)
GATE_CHANGE_NAMES = ("", "session open", "session closed", "rate open", "rate closed")

# action column (functions in _ACTIONS, same order)
_A_NONE = const(0)
_A_READ_MODE = const(1)
_A_MODE_HEX = const(2)
_A_JOINED = const(3)
_A_JOIN_FAILED = const(4)
_A_SEND_ACCEPTED = const(5)
_A_SEND_RESULT = const(6)
_A_SEND_FAILED = const(7)
_A_DEFER_NONE = const(8)
_A_DEFER_REAUTH = const(9)
_A_DEFER_REJOIN = const(10)
_A_BACKOFF_RESET = const(11)
_A_RATE_HOLD = const(12)
_A_RATE_RELEASE = const(13)
_A_REOPEN = const(14)
ACTION_NAMES = (
    "", "read_mode", "mode_hex", "joined", "join_failed", "send_accepted", "send_result",
    "send_failed", "defer_none", "defer_reauth", "defer_rejoin", "backoff_reset", "rate_hold",
    "rate_release", "reopen",
)

# const(): the rows below are then literals, and the whole table one constant that a frozen
# build keeps in flash
_INIT = const((ST_RESET, ST_ECHO, ST_VER, ST_APPVER, ST_ROPT, ST_WOPT, ST_PWD, ST_RBID, ST_CHAN,
               ST_PAN))
_ANY = const(())  # every state no earlier row names for this input

# The rules, h11-style: (states, input, next, gate change, counter, action). The first row
# naming a (state, input) pair applies; _ANY rows hold for the states not named above them.
# A step: count, change the gate, run the action, then enter the next state (entering an
# init state or join writes its command; see _enter). Pairs no row names cannot occur
# (send() and poll() check first). docs/wisun.md#transitions prints this table.
TRANSITIONS = (
    ((ST_IDLE,), _IN_START, ST_RESET, _G_NONE, None, _A_NONE),
    # the init sequence: one command outstanding, each OK issues the next
    ((ST_RESET,), _IN_OK, ST_ECHO, _G_NONE, None, _A_NONE),
    ((ST_ECHO,), _IN_OK, ST_VER, _G_NONE, None, _A_NONE),
    ((ST_VER,), _IN_OK, ST_APPVER, _G_NONE, None, _A_NONE),
    ((ST_APPVER,), _IN_OK, ST_ROPT, _G_NONE, None, _A_NONE),
    ((ST_ROPT,), _IN_OK_MODE, NX_ACTION, _G_NONE, None, _A_READ_MODE),
    ((ST_ROPT,), _IN_OK, NX_SAME, _G_NONE, "garbled_lines", _A_NONE),
    ((ST_WOPT,), _IN_OK, ST_PWD, _G_NONE, "wopt_writes", _A_MODE_HEX),
    ((ST_PWD,), _IN_OK, ST_RBID, _G_NONE, None, _A_NONE),
    ((ST_RBID,), _IN_OK, ST_CHAN, _G_NONE, None, _A_NONE),
    ((ST_CHAN,), _IN_OK, ST_PAN, _G_NONE, None, _A_NONE),
    ((ST_PAN,), _IN_OK, ST_JOIN, _G_NONE, None, _A_NONE),
    ((ST_JOIN,), _IN_OK, NX_SAME, _G_NONE, None, _A_NONE),
    ((ST_SENDING,), _IN_OK, NX_ACTION, _G_NONE, None, _A_SEND_ACCEPTED),
    (_ANY, _IN_OK, NX_SAME, _G_NONE, "stray_ok", _A_NONE),
    (_ANY, _IN_OK_MODE, NX_SAME, _G_NONE, "stray_ok", _A_NONE),
    # optional init commands: refused or silent, the sequence goes on without them
    ((ST_APPVER,), _IN_FAIL_REFUSAL, ST_ROPT, _G_NONE, None, _A_NONE),
    ((ST_ROPT,), _IN_FAIL_REFUSAL, ST_PWD, _G_NONE, None, _A_MODE_HEX),
    ((ST_WOPT,), _IN_FAIL_REFUSAL, ST_PWD, _G_NONE, None, _A_NONE),
    ((ST_APPVER,), _IN_TIMEOUT, ST_ROPT, _G_NONE, "timeouts", _A_NONE),
    ((ST_ROPT, ST_WOPT), _IN_TIMEOUT, ST_PWD, _G_NONE, "timeouts", _A_NONE),
    (_INIT, _IN_FAIL_REFUSAL, ST_WAIT_REOPEN, _G_NONE, None, _A_REOPEN),
    (_INIT, _IN_FAIL_LINK, ST_WAIT_REOPEN, _G_NONE, None, _A_REOPEN),
    (_INIT, _IN_FAIL_REOPEN, ST_WAIT_REOPEN, _G_NONE, None, _A_REOPEN),
    (_INIT, _IN_TIMEOUT, ST_WAIT_REOPEN, _G_NONE, "timeouts", _A_REOPEN),
    # joining
    ((ST_JOIN,), _IN_EV25, ST_READY, _G_SESSION_OPEN, "joins", _A_JOINED),
    ((ST_JOIN,), _IN_EV24, NX_ACTION, _G_NONE, None, _A_JOIN_FAILED),
    ((ST_JOIN,), _IN_FAIL_REFUSAL, NX_ACTION, _G_NONE, None, _A_JOIN_FAILED),
    ((ST_JOIN,), _IN_FAIL_LINK, NX_ACTION, _G_NONE, None, _A_JOIN_FAILED),
    ((ST_JOIN,), _IN_FAIL_REOPEN, NX_ACTION, _G_NONE, None, _A_JOIN_FAILED),
    ((ST_JOIN,), _IN_TIMEOUT, NX_ACTION, _G_NONE, "timeouts", _A_JOIN_FAILED),
    # sending: the result needs both OK and EVENT 21, in either order; session events that
    # arrive meanwhile are applied when it ends
    ((ST_READY,), _IN_SEND, ST_SENDING, _G_NONE, None, _A_NONE),
    ((ST_SENDING,), _IN_EV21, NX_ACTION, _G_NONE, None, _A_SEND_RESULT),
    ((ST_SENDING,), _IN_FAIL_REFUSAL, NX_ACTION, _G_NONE, None, _A_SEND_FAILED),
    ((ST_SENDING,), _IN_FAIL_LINK, NX_ACTION, _G_NONE, None, _A_SEND_FAILED),
    ((ST_SENDING,), _IN_FAIL_REOPEN, NX_ACTION, _G_NONE, None, _A_SEND_FAILED),
    ((ST_SENDING,), _IN_TIMEOUT, NX_ACTION, _G_NONE, "timeouts", _A_SEND_FAILED),
    ((ST_SENDING,), _IN_EV25, NX_SAME, _G_SESSION_OPEN, None, _A_DEFER_NONE),
    ((ST_SENDING,), _IN_EV24, NX_SAME, _G_SESSION_CLOSE, None, _A_DEFER_REJOIN),
    ((ST_SENDING,), _IN_EV_END, NX_SAME, _G_SESSION_CLOSE, None, _A_DEFER_REJOIN),
    ((ST_SENDING,), _IN_EV29, NX_SAME, _G_SESSION_CLOSE, None, _A_DEFER_REAUTH),
    # the session
    ((ST_READY, ST_REAUTH), _IN_EV24, ST_WAIT_REJOIN, _G_SESSION_CLOSE, None, _A_NONE),
    ((ST_READY, ST_REAUTH), _IN_EV_END, ST_WAIT_REJOIN, _G_SESSION_CLOSE, None, _A_NONE),
    ((ST_READY,), _IN_EV29, ST_REAUTH, _G_SESSION_CLOSE, None, _A_NONE),
    ((ST_REAUTH,), _IN_EV25, ST_READY, _G_SESSION_OPEN, None, _A_NONE),
    ((ST_REAUTH,), _IN_TIMEOUT, ST_WAIT_REJOIN, _G_NONE, "timeouts", _A_NONE),
    ((ST_WAIT_REJOIN,), _IN_EV25, ST_READY, _G_SESSION_OPEN, None, _A_BACKOFF_RESET),
    ((ST_WAIT_REJOIN,), _IN_TIMEOUT, ST_JOIN, _G_NONE, None, _A_NONE),
    ((ST_WAIT_REOPEN,), _IN_TIMEOUT, ST_RESET, _G_NONE, None, _A_NONE),
    # in every other state
    (_ANY, _IN_EV25, NX_SAME, _G_SESSION_OPEN, None, _A_NONE),
    (_ANY, _IN_EV_END, NX_SAME, _G_SESSION_CLOSE, None, _A_NONE),
    (_ANY, _IN_EV29, NX_SAME, _G_SESSION_CLOSE, None, _A_NONE),
    (_ANY, _IN_EV24, NX_SAME, _G_NONE, "other_events", _A_NONE),
    (_ANY, _IN_EV21, NX_SAME, _G_NONE, "other_events", _A_NONE),
    (_ANY, _IN_EV_OTHER, NX_SAME, _G_NONE, "other_events", _A_NONE),
    (_ANY, _IN_FAIL_REFUSAL, NX_SAME, _G_NONE, None, _A_NONE),
    (_ANY, _IN_FAIL_LINK, NX_SAME, _G_NONE, None, _A_NONE),
    (_ANY, _IN_FAIL_REOPEN, NX_SAME, _G_NONE, None, _A_NONE),
    (_ANY, _IN_TIMEOUT, NX_SAME, _G_NONE, "timeouts", _A_NONE),
    (_ANY, _IN_EV32, NX_SAME, _G_RATE_CLOSE, None, _A_RATE_HOLD),
    (_ANY, _IN_EV33, NX_SAME, _G_RATE_OPEN, None, _A_RATE_RELEASE),
    (_ANY, _IN_RATE_TIMEOUT, NX_SAME, _G_RATE_OPEN, "rate_gate_timeouts", _A_RATE_RELEASE),
    (_ANY, _IN_REOPEN, ST_RESET, _G_NONE, None, _A_REOPEN),
)


# What entering each init state (and join) writes, and the timing_ms key of its deadline;
# from pwd on, a template the config fills (_command_args). Built on entry, as the
# module would have it, so a driver instance holds no copy of its credentials' commands.
_COMMANDS = (
    None, b"SKRESET\r\n", b"SKSREG SFE 0\r\n", b"SKVER\r\n", b"SKAPPVER\r\n", b"ROPT\r\n",
    b"WOPT 01\r\n", "SKSETPWD %X %s\r\n", "SKSETRBID %s\r\n", "SKSREG S2 %X\r\n",
    "SKSREG S3 %04X\r\n", "SKJOIN %s\r\n",
)
_COMMAND_TIMING = (None, "reset", "cmd", "cmd", "cmd", "cmd", "wopt", "cmd", "cmd", "cmd", "cmd",
                   "join")


def _compile(rows):
    """(state, input) -> index of the first row naming it (0xFF: none), as one bytes."""
    cells = bytearray(b"\xff" * (_N_STATES * _N_INPUTS))
    for i in range(len(rows)):
        states = rows[i][0]
        for s in (states if states else range(_N_STATES)):
            k = s * _N_INPUTS + rows[i][1]
            if cells[k] == 0xFF:
                cells[k] = i
    return bytes(cells)


_CELLS = _compile(TRANSITIONS)


def transition(state, inp):
    """The TRANSITIONS row that applies to (state, input), or None."""
    i = _CELLS[state * _N_INPUTS + inp]
    return None if i == 0xFF else TRANSITIONS[i]

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
R_LINK_FAILURES = "link_failures"
R_JOIN_FAILURES = "join_failures"
R_INIT_FAILED = "init_failed"
R_UNKNOWN_FAIL = "unknown_fail"
R_REQUESTED = "requested"

MODE_BINARY = const(0)
MODE_HEX = const(1)

_EVENT_QUEUE_MAX = const(32)


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


class WisunDriver:
    """One module, one coordinator (the smart meter), one UDP destination (the collector)."""

    def __init__(self, profile, config, rand=None):
        check_profile(profile)
        self.profile = profile
        self.max_payload = profile["max_payload"]
        t = profile["timing_ms"]
        self._timing = t  # read when a deadline is set, not copied: a driver holds little
        try:
            self._rbid = rbid = config["rbid"]
            self._pwd = pwd = config["pwd"]
            self._channel = channel = int(config["channel"])
            self._pan_id = pan_id = int(config["pan_id"])
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
        if not (_token(pwd, 1, 32) and _token(rbid, 32, 32) and _token(self._coord, 2, 39)):
            raise WisunConfigError("rbid: 32 characters, pwd: 1..32, coordinator: an address; "
                                   "printable ASCII without spaces")
        if not (0 <= self._port <= 0xFFFF and 0 <= pan_id <= 0xFFFF
                and 0 <= channel <= 0xFF and 0 <= self._sec <= 2):
            raise WisunConfigError("dest_port and pan_id are 16-bit, channel 8-bit, sec 0..2")
        self._rand = rand
        self._lines = LineDecoder(self.max_payload, profile["erxudp_fields"],
                                  bool(profile.get("event_side")), t["line_gap"], self)
        # protocol state
        self.state = ST_IDLE
        self.session_open = False
        self.rate_open = True
        self._set_mode(MODE_HEX if "binary" not in profile["payload_modes"] else MODE_BINARY)
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
        self._after_send = 0  # 0 nothing, 1 reauth, 2 rejoin (session events during a send)
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
            self._step(_IN_START, None, now_ms)
        if self._rate_deadline is not None and ticks_diff(now_ms, self._rate_deadline) >= 0:
            self._step(_IN_RATE_TIMEOUT, None, now_ms)
        if self._deadline is not None and ticks_diff(now_ms, self._deadline) >= 0:
            self._deadline = None
            self._step(_IN_TIMEOUT, None, now_ms)
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out = []
        return out

    def send(self, payload, tag, now_ms):
        """SKSENDTO bytes for one UDP payload; the result comes as EV_SEND_OK/EV_SEND_FAILED."""
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise WisunPayloadInvalid("payload must be bytes")
        out = self.sendto_head(len(payload)) + bytes(payload)  # first: a MemoryError changes nothing
        self.send_commit(tag, now_ms)
        return out

    def sendto_head(self, n):
        """The `SKSENDTO ... <len> ` head for an n-byte payload (at most 65 bytes: a
        39-character address, port, sec, side, length); nothing changes until send_commit(). With it a caller writes the head and then its
        own payload buffer, and no block the size of a frame is ever allocated (send() is
        this head plus a copy of the payload)."""
        if n == 0:
            raise WisunPayloadInvalid("empty payload")
        if n > self.max_payload:
            raise WisunPayloadTooLarge("payload exceeds the module limit", (n, self.max_payload))
        if not self.can_send():
            raise WisunNotReady("no send now", STATE_NAMES[self.state])
        side = self.profile.get("sendto_side")
        if side is None:
            head = "SKSENDTO 1 %s %04X %d %04X " % (self._coord, self._port, self._sec, n)
        else:
            head = "SKSENDTO 1 %s %04X %d %d %04X " % (
                self._coord, self._port, self._sec, side, n)
        return head.encode()

    def send_commit(self, tag, now_ms):
        """The head from sendto_head() and the payload are written: wait for the result."""
        if not self.can_send():
            raise WisunNotReady("no send now", STATE_NAMES[self.state])
        self._send_tag = tag
        self._send_ok = False
        self._send_result = -1
        self._after_send = 0
        self._step(_IN_SEND, None, now_ms)

    def reopen(self, now_ms):
        """Force a full reopen (SKRESET and the whole init) at once, e.g. after an agent restart."""
        self._step(_IN_REOPEN, None, now_ms)

    def feed(self, data, now_ms):
        """Bytes read from the module, in any chunking."""
        self._lines.feed(data, now_ms)

    # ------------------------------------------------------------------ lines
    def _on_line(self, kind, a, b, c, now_ms):
        """One parsed module line (edge/wisun_lines.py) -> a table input, or data."""
        if kind == LN_EVENT:
            self._step(_event_input(a), b, now_ms)
        elif kind == LN_OK:
            self._step(_IN_OK if a == -1 else _IN_OK_MODE, a, now_ms)
        elif kind == LN_FAIL:
            cls = classify_fail(a)
            if cls == FAIL_REFUSAL:
                self._count("fail_refusal")
                self._step(_IN_FAIL_REFUSAL, a, now_ms)
            elif cls == FAIL_LINK:
                self._count("fail_link")
                self._step(_IN_FAIL_LINK, a, now_ms)
            else:
                self._count("fail_reopen")
                self._step(_IN_FAIL_REOPEN, a, now_ms)
        elif kind == LN_ERXUDP:
            # only the collector's replies go up: any other service is counted for what it is
            if c != self._port:
                self._count("udp_other_port")
                return
            try:
                src = b.decode()
            except UnicodeError:
                self._count("garbled_lines")
                return
            self._count("udp_received")
            self._emit(EV_UDP_RECEIVED, a, (src, c))
        elif kind == LN_PANA:  # the module's own join and re-authentication
            self._count("udp_pana")
        elif kind == LN_EVER and self.state == ST_VER:
            self.version = self._text(a)
        elif kind == LN_EAPPVER and self.state == ST_APPVER:
            self.app_version = self._text(a)
        else:
            self._count("unknown_lines")

    def _text(self, raw):
        try:
            return raw.decode()
        except UnicodeError:
            self._count("garbled_lines")
            return None

    # ------------------------------------------------------------------ transitions
    def _step(self, inp, arg, now_ms):
        """Apply the TRANSITIONS row for (state, input)."""
        i = _CELLS[self.state * _N_INPUTS + inp]
        if i == 0xFF:
            return
        row = TRANSITIONS[i]
        if row[4] is not None:
            self._count(row[4])
        g = row[3]
        if g == _G_SESSION_OPEN or g == _G_SESSION_CLOSE:
            self._set_gate(GATE_SESSION, g == _G_SESSION_OPEN)
        elif g != _G_NONE:
            self._set_gate(GATE_RATE, g == _G_RATE_OPEN)
        if row[5] != _A_NONE:
            _ACTIONS[row[5]](self, inp, arg, now_ms)
        if row[2] >= 0:
            self._enter(row[2], now_ms)

    def _enter(self, st, now_ms):
        """Entering a state: init states and join write their command under its deadline."""
        if ST_RESET <= st <= ST_JOIN:
            if st == ST_ROPT and not self.profile["ropt"]:  # profile: no ROPT/WOPT, hex-ASCII only
                self._set_mode(MODE_HEX)
                st = ST_PWD
            cmd = _COMMANDS[st]
            if st >= ST_PWD:  # the credentials, radio settings and coordinator: the config's
                cmd = (cmd % self._command_args(st)).encode()
            self._out.append(cmd)
            self._deadline = ticks_add(now_ms, self._timing[_COMMAND_TIMING[st]])
        elif st == ST_READY:
            self._deadline = None
        elif st == ST_SENDING:
            self._deadline = ticks_add(now_ms, self._timing["send"])
        elif st == ST_REAUTH:
            self._deadline = ticks_add(now_ms, self._timing["reauth"])
        elif st == ST_WAIT_REJOIN:
            self._set_gate(GATE_SESSION, False)
            self._deadline = ticks_add(now_ms, self._backoff.next_delay(self._draw()))
        elif st == ST_WAIT_REOPEN:
            self._deadline = ticks_add(now_ms, self._backoff.next_delay(self._draw()))
        self.state = st

    def _command_args(self, st):
        if st == ST_PWD:
            return (len(self._pwd), self._pwd)
        if st == ST_RBID:
            return self._rbid
        if st == ST_CHAN:
            return self._channel
        if st == ST_PAN:
            return self._pan_id
        return self._coord

    def _set_mode(self, mode):
        self.payload_mode = mode
        self._lines.binary = mode == MODE_BINARY

    def _finish_send(self, now_ms):
        """OK and EVENT 21 are both in: the send's result."""
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
        if ok:
            self._count("send_ok")
            self._emit(EV_SEND_OK, tag, None)
        else:
            self._count("send_failed")
            self._emit(EV_SEND_FAILED, tag, reason)
        self._enter(ST_READY, now_ms)

    def _link_failure(self, now_ms):
        self._link_failures += 1
        if self._link_failures >= self._max_link_failures:
            self._link_failures = 0
            self._reopen(R_LINK_FAILURES, now_ms)
            self._enter(ST_WAIT_REOPEN, now_ms)
        else:
            self._resume(now_ms)

    def _resume(self, now_ms):
        """After a send: apply what session events asked for while it was in flight."""
        after = self._after_send
        self._after_send = 0
        if self.state != ST_READY:
            return
        if after == 2:
            self._enter(ST_WAIT_REJOIN, now_ms)
        elif after == 1 or not self.session_open:
            self._enter(ST_REAUTH, now_ms)

    def _reopen(self, reason, now_ms):
        """What every full reopen does before its state: report it, close the session gate,
        fail a send in flight."""
        self._count("reopens")
        self._emit(EV_REOPEN, reason, None)
        self._set_gate(GATE_SESSION, False)
        if self._send_tag is not None:
            self._end_send(False, R_LINK, now_ms)
        self._after_send = 0

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

    # the line decoder's hooks (a handler object rather than two bound methods: less RAM)
    module_line = _on_line
    count = _count

    def _emit(self, kind, a, b):
        ev = self._events
        if len(ev) >= _EVENT_QUEUE_MAX:
            ev.pop(0)
            c = self.counters["events_dropped"] + 1
            self.counters["events_dropped"] = c if c <= 0x3FFFFFFF else 0x3FFFFFFF
        ev.append((kind, a, b))


def _event_input(num):
    """EVENT number -> table input."""
    if num == 0x21:
        return _IN_EV21
    if num == 0x24:
        return _IN_EV24
    if num == 0x25:
        return _IN_EV25
    if num == 0x26 or num == 0x27 or num == 0x28:
        return _IN_EV_END
    if num == 0x29:
        return _IN_EV29
    if num == 0x32:
        return _IN_EV32
    if num == 0x33:
        return _IN_EV33
    return _IN_EV_OTHER


# ---- actions: (driver, input, arg, now_ms); the rows say when each runs --------------------
def _a_read_mode(d, inp, arg, now_ms):
    """ROPT answered: WOPT 01 only when the module is not in hex mode and writes are allowed."""
    if arg < 0:
        d._count("garbled_lines")
        return
    d._set_mode(MODE_HEX if arg & 1 else MODE_BINARY)
    if "hex" in d.profile["payload_modes"] and d.payload_mode != MODE_HEX and d._allow_wopt:
        d._enter(ST_WOPT, now_ms)
    else:
        d._enter(ST_PWD, now_ms)


def _a_mode_hex(d, inp, arg, now_ms):
    d._set_mode(MODE_HEX)


def _a_joined(d, inp, arg, now_ms):
    d._join_failures = 0
    d._link_failures = 0
    d._backoff.reset()
    d._emit(EV_JOINED, None, None)


def _a_join_failed(d, inp, arg, now_ms):
    """Rejoin after backoff; after max_join_failures in a row, a full reopen."""
    if inp == _IN_EV24:
        reason = R_REJECTED
    elif inp == _IN_TIMEOUT:
        reason = R_TIMEOUT
    elif inp == _IN_FAIL_LINK:
        reason = R_LINK
    else:
        reason = R_REFUSED
    d._join_failures += 1
    d._count("join_failures")
    d._emit(EV_JOIN_FAILED, reason, d._join_failures)
    if d._join_failures >= d._max_join_failures:
        d._join_failures = 0
        d._reopen(R_JOIN_FAILURES, now_ms)
        d._enter(ST_WAIT_REOPEN, now_ms)
    else:
        d._enter(ST_WAIT_REJOIN, now_ms)


def _a_send_accepted(d, inp, arg, now_ms):
    d._send_ok = True
    if d._send_result >= 0:
        d._finish_send(now_ms)


def _a_send_result(d, inp, arg, now_ms):
    d._send_result = arg
    if d._send_ok:
        d._finish_send(now_ms)


def _a_send_failed(d, inp, arg, now_ms):
    """FAIL or no answer while sending: refused -> ready; link/timeout -> a link failure;
    an unknown FAIL code -> full reopen."""
    if inp == _IN_FAIL_REFUSAL:
        d._end_send(False, R_REFUSED, now_ms)
        d._resume(now_ms)
    elif inp == _IN_FAIL_REOPEN:
        d._end_send(False, R_LINK, now_ms)
        d._reopen(R_UNKNOWN_FAIL, now_ms)
        d._enter(ST_WAIT_REOPEN, now_ms)
    else:
        d._end_send(False, R_TIMEOUT if inp == _IN_TIMEOUT else R_LINK, now_ms)
        d._link_failure(now_ms)


def _a_defer_none(d, inp, arg, now_ms):
    d._after_send = 0


def _a_defer_reauth(d, inp, arg, now_ms):
    if d._after_send < 1:
        d._after_send = 1


def _a_defer_rejoin(d, inp, arg, now_ms):
    d._after_send = 2


def _a_backoff_reset(d, inp, arg, now_ms):
    d._backoff.reset()


def _a_rate_hold(d, inp, arg, now_ms):
    d._rate_deadline = ticks_add(now_ms, d._timing["rate_gate_max"])


def _a_rate_release(d, inp, arg, now_ms):
    d._rate_deadline = None


def _a_reopen(d, inp, arg, now_ms):
    if inp == _IN_REOPEN:
        d._out = []  # asked for: drop what was still to be written
        d._reopen(R_REQUESTED, now_ms)
    else:
        d._reopen(R_TIMEOUT if inp == _IN_TIMEOUT else R_INIT_FAILED, now_ms)


_ACTIONS = (
    None, _a_read_mode, _a_mode_hex, _a_joined, _a_join_failed, _a_send_accepted,
    _a_send_result, _a_send_failed, _a_defer_none, _a_defer_reauth, _a_defer_rejoin,
    _a_backoff_reset, _a_rate_hold, _a_rate_release, _a_reopen,
)
