"""The one place where MicroPython and CPython differ for edge code.

Edge modules import `const` and the heap-lock helpers from here instead of
monkey-patching either interpreter.
"""
import sys

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
