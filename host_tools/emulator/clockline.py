"""The clock line of the shared simulated clock, and its reader (format: simclock.py).

Kept tiny and free of CPython-only imports so an agent in MicroPython's unix port can load
it as a plain module (MICROPYPATH=host_tools/emulator) within its heap budget.
"""
import time

FORMAT_VERSION = 1


def parse_line(text):
    """One clock line -> (version, wall_ms, sim_ms, num, den, gen, origin_ms); ValueError if bad."""
    parts = text.split()
    if len(parts) != 7:
        raise ValueError("clock line needs 7 integers, got %d" % len(parts))
    vals = tuple(int(p) for p in parts)
    if vals[0] != FORMAT_VERSION:
        raise ValueError("clock format version %d, expected %d" % (vals[0], FORMAT_VERSION))
    if vals[3] < 0 or vals[4] <= 0:
        raise ValueError("clock speed must be NUM >= 0 over DEN > 0")
    return vals


def format_line(wall_ms, sim_ms, num, den, gen, origin_ms):
    return "%d %d %d %d %d %d %d\n" % (FORMAT_VERSION, wall_ms, sim_ms, num, den, gen, origin_ms)


def sim_ms_at(vals, wall_ms):
    """Simulated ms at Unix wall time wall_ms under clock line vals."""
    w0 = vals[1]
    if wall_ms <= w0:
        return vals[2]
    return vals[2] + (wall_ms - w0) * vals[3] // vals[4]


def wall_ms_now():
    return time.time_ns() // 1000000


def read_sim_ms(path):
    """The simulated time now, in edge ms, from the clock file at path (one open and read)."""
    with open(path) as f:
        vals = parse_line(f.read())
    return sim_ms_at(vals, wall_ms_now())
