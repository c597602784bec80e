"""Accelerated simulated time shared by every process of a run (emulators, agents, collector).

The clock is one text file holding ONE line of seven (or eight) decimal integers:

    1 WALL_MS SIM_MS NUM DEN GEN ORIGIN_MS [STOP_MS]

  1          format version
  WALL_MS    Unix wall time in ms at which the line takes effect
  SIM_MS     simulated time at WALL_MS, in ms of the edge time base (edge/timebase.py:
             seconds since 2020-01-01T00:00+09:00, times 1000)
  NUM/DEN    speed: simulated ms per real ms (NUM=0: time stands still)
  GEN        generation, +1 each time the owner rewrites the line (jump, step, new speed)
  ORIGIN_MS  simulated time the run started at; fault times (e.g. `replace=6h`) count from it
  STOP_MS    optional: the clock stands at STOP_MS once it gets there (a run's end). Written
             with the line that starts the clock, it stops every reader at the same instant;
             a speed-0 line written at the end would step the readers that had not yet
             re-read it forward by their refresh lag times the speed.

    sim_ms(now) = min(SIM_MS + (now_wall_ms - WALL_MS) * NUM // DEN, STOP_MS)
                  (SIM_MS while now < WALL_MS)

Wall time (not a per-process monotonic clock) is the shared reference because every process
on the host reads the same one. Only the owner writes, always by atomic rename, so readers
never see half a line. A clock jump is the owner writing a new line with another SIM_MS.

The line parser and `read_sim_ms` live in clockline.py, which uses only what MicroPython's
unix port has (open, int, str.split, time.time_ns): an agent running there loads it as a plain
module (MICROPYPATH=host_tools/emulator) or copies `read_sim_ms`.
"""
import os

from host_tools.emulator.clockline import (  # noqa: F401  (re-exported: one import for host code)
    FORMAT_VERSION,
    format_line,
    parse_line,
    read_sim_ms,
    sim_ms_at,
    wall_ms_now,
)

from edge.timebase import EDGE_EPOCH_UNIX as _EDGE_EPOCH_UNIX


# ---- CPython side: the owner and reader object ----------------------------------------------


class SimClock:
    """A clock read from (or owned and written to) a clock file, or a private in-memory one.

    now_ms() re-reads the file only when its inode/mtime/size changed, so it is cheap to call
    on every Modbus request.
    """

    def __init__(self, path=None, vals=None):
        self.path = path
        self._vals = vals
        self._stamp = None
        if path is not None and vals is None:
            self.refresh(force=True)

    # -- construction --
    @classmethod
    def create(cls, path, sim_start_ms, speed, wall_start_ms=None):
        """Become the owner: write a fresh clock file (atomically) and return its clock."""
        num, den = speed_ratio(speed)
        if wall_start_ms is None:
            wall_start_ms = wall_ms_now()
        vals = (FORMAT_VERSION, wall_start_ms, sim_start_ms, num, den, 0, sim_start_ms)
        clock = cls(path=None, vals=vals)
        clock.path = path
        clock._write()
        return clock

    @classmethod
    def open(cls, path):
        """A reader of an existing clock file."""
        return cls(path=path)

    @classmethod
    def private(cls, sim_start_ms, speed, wall_start_ms=None):
        """A clock no other process sees (no file)."""
        num, den = speed_ratio(speed)
        if wall_start_ms is None:
            wall_start_ms = wall_ms_now()
        return cls(vals=(FORMAT_VERSION, wall_start_ms, sim_start_ms, num, den, 0, sim_start_ms))

    # -- reading --
    def refresh(self, force=False):
        if self.path is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._vals is None:
                raise
            return  # owner is mid-rename or gone: keep the last line
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if force or stamp != self._stamp:
            with open(self.path, encoding="ascii") as f:
                self._vals = parse_line(f.read())
            self._stamp = stamp

    def now_ms(self):
        self.refresh()
        return sim_ms_at(self._vals, wall_ms_now())

    def now_s(self):
        return self.now_ms() // 1000

    @property
    def origin_ms(self):
        self.refresh()
        return self._vals[6]

    @property
    def gen(self):
        self.refresh()
        return self._vals[5]

    @property
    def speed(self):
        """(num, den): simulated ms per real ms."""
        self.refresh()
        return self._vals[3], self._vals[4]

    def line(self):
        """The clock as its one-line text (the file format above), without the newline."""
        self.refresh()
        return format_line(*self._vals[1:]).strip()

    def real_seconds_for(self, sim_ms):
        """Real seconds it takes the clock to advance sim_ms (None when frozen)."""
        num, den = self.speed
        if num == 0:
            return None
        return sim_ms * den / num / 1000.0

    # -- owner operations (rewrite the line) --
    def set(self, sim_ms=None, speed=None):
        """Rewrite the line: the clock reads sim_ms (default: unchanged) from now on, at speed."""
        wall = wall_ms_now()
        self.refresh()
        cur = sim_ms_at(self._vals, wall)
        num, den = (self._vals[3], self._vals[4]) if speed is None else speed_ratio(speed)
        self._vals = (
            FORMAT_VERSION,
            wall,
            cur if sim_ms is None else sim_ms,
            num,
            den,
            self._vals[5] + 1,
            self._vals[6],
        ) + self._vals[7:]  # a stop stays
        self._write()

    def jump(self, delta_ms):
        """Clock jump by delta_ms (either sign), as seen by every reader."""
        wall = wall_ms_now()
        self.refresh()
        self.set(sim_ms_at(self._vals, wall) + delta_ms)

    def advance(self, delta_ms):
        """Step a frozen clock forward (tests): same as jump, kept for readability."""
        self.jump(delta_ms)

    def _write(self):
        if self.path is None:
            return
        tmp = "%s.tmp%d" % (self.path, os.getpid())
        with open(tmp, "w", encoding="ascii") as f:
            f.write(format_line(*self._vals[1:]))
        os.replace(tmp, self.path)
        self._stamp = None


MAX_SPEED = 1000000  # simulated seconds per real second
MAX_EDGE_S = 1 << 30  # edge seconds stay a MicroPython small int (edge/timebase.py)


def speed_ratio(speed):
    """'2000', '0.5', '1/3', 2000, Fraction -> (num, den) in lowest terms; ValueError if bad."""
    from fractions import Fraction

    try:
        f = Fraction(str(speed).strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError("speed must be a number >= 0 (e.g. 2000, 0.5, 1/3), got %r" % (speed,))
    if f < 0:
        raise ValueError("speed must be >= 0, got %r" % (speed,))
    if f > MAX_SPEED:
        raise ValueError("speed must be at most %d (a day in 0.09 s), got %r" % (MAX_SPEED, speed))
    f = f.limit_denominator(1000000)
    return f.numerator, f.denominator


def parse_start(text):
    """Start of simulated time -> edge ms.

    Accepts ISO 8601 date or date-time (naive means JST, e.g. '2026-06-21' or
    '2026-06-21T04:30'), or an integer number of edge seconds prefixed with '@'.
    """
    import datetime

    text = text.strip()
    try:
        if text.startswith("@"):
            ms = int(text[1:]) * 1000
        else:
            dt = datetime.datetime.fromisoformat(text)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=JST)
            ms = (int(dt.timestamp()) - _EDGE_EPOCH_UNIX) * 1000 + dt.microsecond // 1000
    except ValueError:
        raise ValueError("start must be ISO 8601 (JST when no offset) or @EDGE_SECONDS, got %r" % text)
    if not 0 <= ms < MAX_EDGE_S * 1000:
        # edge seconds are a 31-bit small int on boards (edge/timebase.py): 2020-01-01 to 2054
        raise ValueError("start %r is outside the edge time base (2020-01-01T00:00+09:00 "
                         "to 2054, edge seconds 0..%d)" % (text, MAX_EDGE_S - 1))
    return ms


def _jst():
    import datetime

    return datetime.timezone(datetime.timedelta(hours=9), "JST")


JST = _jst()


def edge_ms_to_iso(ms):
    """Edge ms -> ISO 8601 JST string with seconds (for files people read)."""
    import datetime

    dt = datetime.datetime.fromtimestamp(ms // 1000 + _EDGE_EPOCH_UNIX, JST)
    return dt.isoformat()


def today_jst_midnight_ms():
    """00:00 JST of the current day, in edge ms (default start of a run)."""
    s = wall_ms_now() // 1000 - _EDGE_EPOCH_UNIX
    return (s - s % 86400) * 1000
