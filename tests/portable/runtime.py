"""Which runtime a portable test runs on, and how a test that does not apply to it says so.

A check that cannot fail on this runtime must not report "passed": heap_lock() is a no-op on
CPython and gc.mem_alloc() does not exist there, so an allocation proof runs on MicroPython
only and shows as SKIPPED, with its reason, under pytest. Under tests/mp_runner.py (no
pytest) skip() raises Skip, which the runner prints as SKIP with the reason.
"""
import sys

from edge.compat import IS_MICROPYTHON

NO_HEAP_LOCK = ("allocation is proven only on MicroPython: heap_lock() is a no-op on CPython "
                "(the MicroPython lane runs this test)")


class Skip(Exception):
    """This test does not apply to this runtime; the argument is the reason."""


def skip(reason):
    if "pytest" in sys.modules:
        import pytest

        pytest.skip(reason)
    raise Skip(reason)


def micropython_only(reason=NO_HEAP_LOCK):
    if not IS_MICROPYTHON:
        skip(reason)


def cpython_only(reason):
    if IS_MICROPYTHON:
        skip(reason)
