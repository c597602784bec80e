"""The agent's clocks on every runtime (docs/agent.md#clocks).

`ticks()`: ms ticks wrapping at 2**30 for protocol timeouts (time.ticks_ms on MicroPython).
A metering clock gives edge seconds (edge/timebase.py) as `now() -> (s, ms)` and
`real_ms_until(edge_s)`: `SystemClock` (the host's or the board's RTC time) or `SimFileClock`
(the shared simulated clock file of host_tools/emulator/simclock.py). Both take the wall
clock as a function, so a board without time.time_ns (MPS2-AN385 under QEMU) gives its own.
"""
import time

from edge.compat import ticks, ticks_diff
from edge.timebase import EDGE_EPOCH_FROM_2000, EDGE_EPOCH_UNIX


def wall_ms():
    if hasattr(time, "time_ns"):
        return time.time_ns() // 1000000
    return int(time.time() * 1000)


class SystemClock:
    """Wall time of the host or the board's RTC: epoch 1970 (unix port, CPython) or 2000."""

    def __init__(self, wall=None, epoch_year=None):
        self.wall = wall or wall_ms
        year = epoch_year or time.gmtime(0)[0]
        self._off = EDGE_EPOCH_UNIX if year == 1970 else EDGE_EPOCH_FROM_2000
        self.speed = (1, 1)

    def now(self):
        """(edge seconds, ms 0..999)"""
        ms = self.wall()
        return ms // 1000 - self._off, ms % 1000

    def real_ms_until(self, edge_s):
        s, ms = self.now()
        return (edge_s - s) * 1000 - ms


class SimFileClock:
    """The shared simulated clock (host_tools/emulator/simclock.py): one line
    `1 WALL_MS SIM_MS NUM DEN GEN ORIGIN_MS [STOP_MS]`; re-read at most every `refresh_ms`
    real ms."""

    def __init__(self, path, refresh_ms=100, wall=None):
        self.path = path
        self.refresh_ms = refresh_ms
        self.wall = wall or wall_ms
        self._vals = None
        self._read_at = 0
        self._load()

    def _load(self):
        try:
            with open(self.path) as f:
                parts = f.read().split()
            v = [int(p) for p in parts]
            if 7 <= len(v) <= 8 and v[0] == 1 and v[4] > 0 and v[3] >= 0:
                self._vals = v
        except MemoryError:
            if self._vals is None:
                raise
            # a full heap on a small board: keep the last good line, read again next call
        except (OSError, ValueError):
            pass  # keep the last good line; a rewrite is an atomic rename, so this is rare
        if self._vals is None:
            raise OSError("no valid clock line in " + self.path)
        self._read_at = ticks()

    @property
    def speed(self):
        return (self._vals[3], self._vals[4])

    def sim_ms(self):
        if ticks_diff(ticks(), self._read_at) >= self.refresh_ms:
            self._load()
        v = self._vals
        w = self.wall()
        if w <= v[1]:
            return v[2]
        ms = v[2] + (w - v[1]) * v[3] // v[4]
        if len(v) == 8 and ms > v[7]:
            return v[7]  # the run's end: the clock stands
        return ms

    def now(self):
        ms = self.sim_ms()
        return ms // 1000, ms % 1000

    def real_ms_until(self, edge_s):
        v = self._vals
        if v[3] == 0:
            return 50
        return (edge_s * 1000 - self.sim_ms()) * v[4] // v[3]
