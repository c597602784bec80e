"""The clock line of the shared simulated clock, and its reader (format: simclock.py).

Kept tiny and free of CPython-only imports so an agent in MicroPython's unix port can load
it as a plain module (MICROPYPATH=host_tools/emulator) within its heap budget.
"""
import time

FORMAT_VERSION = 1


def parse_line(text):
    """One clock line -> (version, wall_ms, sim_ms, num, den, gen, origin_ms[, stop_ms]);
    ValueError if bad."""
    parts = text.split()
    if len(parts) not in (7, 8):
        raise ValueError("clock line needs 7 or 8 integers, got %d" % len(parts))
    vals = tuple(int(p) for p in parts)
    if vals[0] != FORMAT_VERSION:
        raise ValueError("clock format version %d, expected %d" % (vals[0], FORMAT_VERSION))
    if vals[3] < 0 or vals[4] <= 0:
        raise ValueError("clock speed must be NUM >= 0 over DEN > 0")
    if len(vals) == 8 and vals[7] < vals[2]:
        raise ValueError("clock STOP_MS %d lies before SIM_MS %d" % (vals[7], vals[2]))
    return vals


def format_line(wall_ms, sim_ms, num, den, gen, origin_ms, stop_ms=None):
    line = "%d %d %d %d %d %d %d" % (FORMAT_VERSION, wall_ms, sim_ms, num, den, gen, origin_ms)
    return line + ("\n" if stop_ms is None else " %d\n" % stop_ms)


def sim_ms_at(vals, wall_ms):
    """Simulated ms at Unix wall time wall_ms under clock line vals (standing at STOP_MS
    once reached, so a run's end needs no rewrite that would step some readers forward)."""
    w0 = vals[1]
    if wall_ms <= w0:
        return vals[2]
    ms = vals[2] + (wall_ms - w0) * vals[3] // vals[4]
    if len(vals) == 8 and ms > vals[7]:
        return vals[7]
    return ms


def wall_ms_now():
    return time.time_ns() // 1000000


def read_sim_ms(path):
    """The simulated time now, in edge ms, from the clock file at path (one open and read)."""
    with open(path) as f:
        vals = parse_line(f.read())
    return sim_ms_at(vals, wall_ms_now())
