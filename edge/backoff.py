"""Bounded exponential backoff with caller-supplied jitter, and a wrap-safe tick difference.

Retries of a radio join must spread out (many devices behind one smart meter rejoin after
the same outage) and must never grow without bound. Delays and ticks stay inside the
31-bit small-int range of 32-bit boards: the cap is limited to 2**29 ms (about 6 days) and
the doubling stops at the cap, so no step ever builds a bignum.

Ticks follow MicroPython's `time.ticks_ms()`; their arithmetic lives in edge/compat.py and is
re-exported here for the callers that import it from this module.
"""
from edge.compat import TICKS_PERIOD, const, ticks_add, ticks_diff  # noqa: F401 (re-exported)
from edge.errors import EdgeError

MAX_DELAY_MS = const(0x20000000)  # a delay must stay below half the tick period


class BackoffConfigError(EdgeError):
    kind = "backoff_config"


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
