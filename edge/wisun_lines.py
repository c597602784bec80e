"""Wi-SUN module output: bytes in, parsed module lines out (the framing apart from the session).

What a SKSTACK-IP module prints is a stream of lines ending in CR, LF or CR LF; a binary-mode
`ERXUDP` line is framed by its length field instead (its data may hold CR/LF). `LineDecoder`
turns that stream, in any chunking, into calls `handler.module_line(kind, a, b, c, now_ms)`
with the line's fields already parsed (table below), and counts through `handler.count(name)`
every line that has no meaning: it knows the shapes the command reference gives, not what they mean for a session
(edge/wisun.py decides that, as wsproto keeps `FrameDecoder` apart from the connection).

    kind        a                            b                     c
    LN_OK       -1 "OK", 0..255 "OK hh",     -                     -
                -2 "OK <anything else>"
    LN_FAIL     ERxx code 0..99              -                     -
    LN_EVENT    number 0..255                EVENT 21's parameter  -
                                             (else -1)
    LN_ERXUDP   payload (bytes)              sender address        sender port (rport)
                                             (bytes)
    LN_PANA     -  (an ERXUDP on UDP 716 = 02CC, either port: the module's own PANA)
    LN_EVER     version text (bytes)         -                     -
    LN_EAPPVER  application version (bytes)  -                     -

Counters: unknown_lines, echo_lines (command echoes), garbled_lines (a known line whose
fields are wrong), overlong_lines, stale_partials, erxudp_field_mismatch. The buffer is one
fixed bytearray with a fill count and a scan offset (no rescans, no per-feed copies); each
line costs one `bytes` copy, as before the split. See docs/wisun.md#robustness.
"""
import binascii

from edge.backoff import ticks_diff
from edge.compat import const

LN_OK = const(1)
LN_FAIL = const(2)
LN_EVENT = const(3)
LN_ERXUDP = const(4)
LN_PANA = const(5)
LN_EVER = const(6)
LN_EAPPVER = const(7)

# UDP port of PANA (RFC 5191, IANA "pana" 716 = 0x02CC): the module's own authentication
# traffic, shown as ERXUDP during SKJOIN and re-authentication.
PANA_PORT = const(0x02CC)

# EVENT numbers the module reference documents with a sender address and no parameter
# (BP35A1 command reference 4.8; 21 carries a parameter, C0 neither address nor parameter).
EVENTS_ADDR_ONLY = (0x01, 0x02, 0x05, 0x1F, 0x20, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
                    0x32, 0x33)

COUNTER_NAMES = ("unknown_lines", "echo_lines", "garbled_lines", "overlong_lines",
                 "stale_partials", "erxudp_field_mismatch")


def hex_field(tok):
    """int(tok, 16) or -1 when the token is not hex."""
    try:
        return int(tok, 16)
    except ValueError:
        return -1


def event_tokens(num, side):
    """Tokens of `EVENT <num> …` per the module reference (BP35A1 ch. 4.8): C0 (wake-up
    signal) has no address and no parameter; 21 has address [side] and a parameter; the other
    documented numbers an address [side] only. -1: undocumented, shape unknown."""
    if num == 0xC0:
        return 2
    n = 4 if side else 3
    if num == 0x21:
        return n + 1
    if num in EVENTS_ADDR_ONLY:
        return n
    return -1


class LineDecoder:
    """One module's output stream. `binary` (set by the session when ROPT/WOPT tell the
    payload mode) says whether ERXUDP data is raw bytes framed by its length field."""

    def __init__(self, max_payload, erxudp_fields, event_side, line_gap_ms, handler):
        self.max_payload = max_payload
        self._fields = erxudp_fields  # ERXUDP token counts, the first one is configured
        self._side = event_side
        self._gap = line_gap_ms
        self._h = handler  # module_line(kind, a, b, c, now_ms) and count(name)
        self.binary = False
        # the longest line kept is 2 * max_payload + 256 bytes ; 128 to spare
        self._buf = bytearray(2 * max_payload + 256 + 128)
        self._mv = memoryview(self._buf)
        self._n = 0  # bytes held
        self._scan = 0  # where the terminator search resumes
        self._skip_line = False  # inside a line already counted as overlong
        self._partial_at = 0
        self._binary_need = -1  # >= 0: bytes still to take raw for a binary ERXUDP

    def held(self):
        """Bytes of an unfinished line held (0..len(buffer))."""
        return self._n

    def feed(self, data, now_ms):
        """Bytes read from the module, in any chunking; each finished line goes to the handler."""
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
            if self._n > 0 and ticks_diff(now_ms, self._partial_at) > self._gap:
                # a partial line older than the gap lost its tail: drop it, don't glue it
                self._h.count("stale_partials")
                self._n = 0
                self._scan = 0
                self._binary_need = -1
            if k == n:  # the whole chunk fits: no view of it needed
                self._mv[self._n:self._n + k] = data
            else:
                self._mv[self._n:self._n + k] = memoryview(data)[i:i + k]
            self._n += k
            i += k
            self._split_lines(now_ms)
            if self._n > 0:
                self._partial_at = now_ms

    def _drop_overlong(self):
        self._h.count("overlong_lines")
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
                self._line(line, now_ms)
                continue
            cr = buf.find(b"\r", self._scan, self._n)
            lf = buf.find(b"\n", self._scan, self._n)
            if (self.binary and not self._skip_line and self._n - start >= 7
                    and buf[start:start + 7] == b"ERXUDP "):
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
                elif self._n - start > len(buf) - 128:
                    self._h.count("overlong_lines")
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
                self._line(line, now_ms)
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
        dl = hex_field(bytes(self._mv[len_at:pos - 1]))
        if dl < 0 or dl > self.max_payload:
            return -1
        return (pos - start) + dl

    # ------------------------------------------------------------------ one line
    def _line(self, line, now_ms):
        c = line[0]
        if c == 0x45:  # 'E'
            if line.startswith(b"EVENT "):
                self._event(line, now_ms)
                return
            if line.startswith(b"ERXUDP "):
                self._erxudp(line, now_ms)
                return
            if line.startswith(b"EVER "):
                self._h.module_line(LN_EVER, line[5:], None, None, now_ms)
                return
            if line.startswith(b"EAPPVER "):
                self._h.module_line(LN_EAPPVER, line[8:], None, None, now_ms)
                return
        elif c == 0x4F:  # 'O'
            if line == b"OK":
                self._h.module_line(LN_OK, -1, None, None, now_ms)
                return
            if line.startswith(b"OK "):
                mode = hex_field(line[3:5]) if len(line) == 5 else -1
                self._h.module_line(LN_OK, mode if mode >= 0 else -2, None, None, now_ms)
                return
        elif c == 0x46:  # 'F'
            if line.startswith(b"FAIL ER") and len(line) == 9:
                d0 = line[7] - 48
                d1 = line[8] - 48
                if 0 <= d0 <= 9 and 0 <= d1 <= 9:
                    self._h.module_line(LN_FAIL, d0 * 10 + d1, None, None, now_ms)
                    return
        elif c == 0x53 or c == 0x52 or c == 0x57:  # 'S'K..., 'R'OPT, 'W'OPT: echo
            if line.startswith(b"SK") or line == b"ROPT" or line.startswith(b"WOPT"):
                self._h.count("echo_lines")
                return
        self._h.count("unknown_lines")

    def _event(self, line, now_ms):
        parts = line.split()
        nf = len(parts)
        num = hex_field(parts[1]) if nf >= 2 else -1
        if num < 0 or num > 0xFF:
            self._h.count("garbled_lines")
            return
        want = event_tokens(num, self._side)
        if nf != want and not (want < 0 and 3 <= nf <= 5):
            self._h.count("garbled_lines")
            return
        param = -1
        if num == 0x21:
            # EVENT 21 <addr> [<side>] <param>: the last field is the result
            param = hex_field(parts[-1])
            if param < 0:
                self._h.count("garbled_lines")
                return
        self._h.module_line(LN_EVENT, num, param, None, now_ms)

    def _erxudp(self, line, now_ms):
        if self.binary:
            parts = line.split(b" ", self._fields[0] - 1)
        else:
            parts = line.split(b" ")
        nf = len(parts)
        if nf < 9 or nf > 11:
            self._h.count("garbled_lines")
            return
        if nf not in self._fields:
            self._h.count("erxudp_field_mismatch")
        # ERXUDP <sender> <dest> <rport> <lport> <senderlla> [<rssi>] <secured> [<side>]
        # <datalen> <data>: rport is the sender's port, lport ours (BP35A1 reference 4.1)
        dlen = hex_field(parts[-2])
        port = hex_field(parts[3])
        lport = hex_field(parts[4])
        data = parts[-1]
        if dlen < 0 or port < 0 or lport < 0 or port > 0xFFFF or lport > 0xFFFF:
            self._h.count("garbled_lines")
            return
        if not self.binary:
            if len(data) != 2 * dlen:
                self._h.count("garbled_lines")
                return
            try:
                payload = binascii.unhexlify(data)
            except ValueError:
                self._h.count("garbled_lines")
                return
        else:
            if len(data) != dlen:
                self._h.count("garbled_lines")
                return
            payload = data
        if port == PANA_PORT or lport == PANA_PORT:
            self._h.module_line(LN_PANA, None, None, None, now_ms)
            return
        self._h.module_line(LN_ERXUDP, payload, parts[1], port, now_ms)
