"""Bounded exponential backoff with caller-supplied jitter, and a wrap-safe tick difference.

Retries of a radio join must spread out (many devices behind one smart meter rejoin after
the same outage) and must never grow without bound. Delays and ticks stay inside the
31-bit small-int range of 32-bit boards: the cap is limited to 2**29 ms (about 6 days) and
the doubling stops at the cap, so no step ever builds a bignum.

Ticks follow MicroPython's `time.ticks_ms()`: they wrap at 2**30, and `ticks_diff` below
gives the signed distance between two ticks that are less than 2**29 ms apart.
"""
from edge.compat import const
from edge.errors import EdgeError

TICKS_PERIOD = const(0x40000000)  # 2**30, as MicroPython's ticks_ms
_TICKS_MAX = const(0x3FFFFFFF)
_TICKS_HALF = const(0x20000000)  # 2**29
MAX_DELAY_MS = const(0x20000000)  # a delay must stay below half the tick period


class BackoffConfigError(EdgeError):
    kind = "backoff_config"


def ticks_add(t, delta_ms):
    """Tick t plus delta, wrapped like time.ticks_add."""
    return (t + delta_ms) & _TICKS_MAX


def ticks_diff(a, b):
    """Signed a - b for wrapped ticks (same contract as time.ticks_diff)."""
    return ((a - b + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF


class Backoff:
    """Delay n: cap_n = min(base * 2**n, max); delay = cap_n/2 + rand % (cap_n/2 + 1).

    "Equal jitter": never less than half the nominal delay (so retries really back off),
    never more than the cap. `rand` is any non-negative int the caller draws (os.urandom,
    random.getrandbits, a test's fixed value); the backoff itself holds no RNG.
    """

    __slots__ = ("base_ms", "max_ms", "attempt", "_cap")

    def __init__(self, base_ms, max_ms):
        if not (0 < base_ms <= max_ms <= MAX_DELAY_MS):
            raise BackoffConfigError("backoff needs 0 < base_ms <= max_ms <= 2**29")
        self.base_ms = base_ms
        self.max_ms = max_ms
        self.attempt = 0
        self._cap = base_ms

    def reset(self):
        self.attempt = 0
        self._cap = self.base_ms

    def next_delay(self, rand=0):
        cap = self._cap
        half = cap >> 1
        if rand < 0:
            rand = -rand
        delay = half + rand % (cap - half + 1)
        self.attempt += 1
        if cap < self.max_ms:
            cap = cap << 1  # cap <= 2**29 before the shift, so this stays below 2**30
            if cap > self.max_ms:
                cap = self.max_ms
            self._cap = cap
        return delay
