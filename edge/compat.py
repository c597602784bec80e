"""The one place where MicroPython and CPython differ for edge code.

Edge modules import `const`, the heap-lock helpers and the tick arithmetic from here instead
of monkey-patching either interpreter. Ticks follow MicroPython's `time.ticks_ms()`: they
wrap at 2**30 ms, and `ticks_diff` gives the signed distance between two ticks less than
2**29 ms apart; all of it stays inside the 31-bit small ints of 32-bit boards.
"""
import sys
import time

IS_MICROPYTHON = sys.implementation.name == "micropython"

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


try:
    from micropython import heap_lock, heap_unlock
except ImportError:  # CPython has no heap lock; allocation proofs run in the MicroPython lane

    def heap_lock():
        return 0

    def heap_unlock():
        return 0


# Small ints on 32-bit boards are 31-bit signed; hot arithmetic must stay inside.
SMALL_INT_MAX = const(0x3FFFFFFF)
SMALL_INT_MIN = const(-0x40000000)

TICKS_PERIOD = const(0x40000000)  # 2**30, as MicroPython's ticks_ms
_TICKS_MAX = const(0x3FFFFFFF)
_TICKS_HALF = const(0x20000000)  # 2**29


def ticks_add(t, delta_ms):
    """Tick t plus delta, wrapped like time.ticks_add."""
    return (t + delta_ms) & _TICKS_MAX


def ticks_diff(a, b):
    """Signed a - b for wrapped ticks (same contract as time.ticks_diff), for any two ints
    whose true distance is under 2**29: also for counters that wrap at a multiple of 2**30."""
    return ((a - b + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF


if hasattr(time, "ticks_ms"):
    ticks = time.ticks_ms
    sleep_ms = time.sleep_ms
else:  # CPython

    def ticks():
        return (time.monotonic_ns() // 1000000) & _TICKS_MAX

    def sleep_ms(ms):
        time.sleep(ms / 1000)
