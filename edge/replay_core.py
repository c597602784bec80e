"""The part of `smeter replay` that runs inside MicroPython (or CPython): compact sample
rows in, slot CSV rows out. The host (host_tools/replay.py) does the heavy parsing
(ISO dates, decimals) and streams integers, so both runtimes run exactly this code and
write byte-identical output. This is the one edge module that takes stream objects.

Input, one record per line, integers separated by single spaces (docs/trace-format.md):
  C max_power_w power_exp max_gap_s missing_ms reg_margin_pct mismatch_wh mismatch_pct
  S line s ms present power power_exp imp_hi imp_lo imp_exp exp_hi exp_lo exp_exp
  E
Output: the slot CSV (header + one row per slot; slots with no data between two closed
slots appear with empty values and the `missing` flag; a final slot that holds only the
last sample is not written). Errors: one line on stderr
'replay_core: line N: message' and exit status 2.
"""
import gc
import sys

from edge.compat import const
from edge.errors import EdgeError
from edge.flags import MISSING, names
from edge.reading import READING_LEN, new_reading
from edge.slots import slot_iso, slot_of_day
gc.collect()  # the integrator is the biggest module: load it into a compacted heap
from edge.integrator import REC_LEN, Integrator  # noqa: I001 (last: less fragmentation)

HEADER = "slot_start,slot,import_wh,export_wh,flags\n"
_S = const(83)  # ord("S")
_C = const(67)
_E = const(69)


class ReplayError(EdgeError):
    kind = "replay"


def _row(slot, imp, exp, fl):
    return "%s,%d,%s,%s,%s\n" % (slot_iso(slot), slot_of_day(slot), imp, exp, names(fl))


def _record(out, rec, last):
    """Write a closed record, first filling the hole after slot `last`; returns the new last."""
    slot = rec[0]
    if last >= 0 and slot > last + 1:
        for k in range(last + 1, slot):
            out.write(_row(k, "", "", MISSING))
    out.write(_row(slot, str(rec[1]), str(rec[2]), rec[3]))
    return slot if slot > last else last


class _Lines:
    """Lines from a binary stream through one small preallocated buffer: MicroPython's
    stdin.readline() costs a system call per byte, and 32 KB leaves no room for big chunks."""

    def __init__(self, inp, size=256):
        self.inp = inp
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.n = 0
        self.pos = 0

    def readline(self):
        """The next line as bytes without its newline; None at the end of input."""
        while True:
            j = self.buf.find(b"\n", self.pos, self.n)
            if j >= 0:
                line = bytes(self.mv[self.pos:j])
                self.pos = j + 1
                return line
            rest = self.n - self.pos
            if rest == len(self.buf):
                raise ReplayError("input line longer than %d bytes" % rest)
            if self.pos:
                self.mv[0:rest] = self.mv[self.pos:self.n]
                self.pos = 0
                self.n = rest
            k = self.inp.readinto(self.mv[rest:])
            if not k:
                if rest:
                    self.pos = self.n
                    return bytes(self.mv[0:rest])
                return None
            self.n = rest + k


def run(inp, out):
    """Replay compact rows from inp (binary, has readinto) to out (text, has write).

    Returns the number of records read; raises ReplayError (with the trace line number when
    known) on malformed input."""
    inp = _Lines(inp)
    it = None
    rd = new_reading()
    rec = [0] * REC_LEN
    last = -1
    out.write(HEADER)
    n = 0
    src = 0
    while True:
        line = inp.readline()
        if line is None:
            raise ReplayError("input ended without the E record", src)
        n += 1
        kind = line[0] if line else 0
        if kind == _S:
            f = line.split()
            if len(f) != 4 + READING_LEN or it is None:
                raise ReplayError("malformed sample record", n)
            try:
                src = int(f[1])
                s = int(f[2])
                ms = int(f[3])
                for i in range(READING_LEN):
                    rd[i] = int(f[4 + i])
            except ValueError:
                raise ReplayError("non-integer field in sample record", n)
            try:
                if it.feed(rd, s, ms, rec):
                    last = _record(out, rec, last)
                while it.pending():  # a gap's estimated slots, one record per call
                    it.advance(s, rec)
                    last = _record(out, rec, last)
            except EdgeError as e:
                raise ReplayError(str(e), src)
        elif kind == _C:
            f = line.split()
            if len(f) != 8:
                raise ReplayError("malformed config record", n)
            try:
                a = [int(x) for x in f[1:]]
            except ValueError:
                raise ReplayError("non-integer field in config record", n)
            gc.collect()  # long-lived state below the line garbage: less fragmentation
            try:
                it = Integrator(a[0], a[1], a[2], a[3], a[4], a[5], a[6])
            except EdgeError as e:
                raise ReplayError(str(e), n)
        elif kind == _E:
            # A last slot holding only the final sample (no interval) is not written.
            if it is not None and it.coverage() > 0 and it.close(rec):
                _record(out, rec, last)
            return n
        else:
            raise ReplayError("unknown record type", n)


def main():
    try:
        run(sys.stdin.buffer, sys.stdout)
    except ReplayError as e:
        sys.stderr.write("replay_core: line %s: %s\n" % (e.detail, e.message))
        sys.exit(2)


if __name__ == "__main__":
    main()
