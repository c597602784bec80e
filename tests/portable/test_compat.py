"""The compat layer: const, small-int bounds, and that heap_lock really proves no allocation."""
from edge.compat import SMALL_INT_MAX, SMALL_INT_MIN, const, heap_lock, heap_unlock
from runtime import micropython_only

_K = const(12345)


def test_const_is_usable_in_expressions():
    assert _K + 1 == 12346


def test_small_int_bounds_are_31_bit():
    assert SMALL_INT_MAX == (1 << 30) - 1
    assert SMALL_INT_MIN == -(1 << 30)


def test_heap_lock_catches_an_allocation_on_micropython():
    micropython_only()
    caught = False
    heap_lock()
    try:
        bytearray(64)
    except MemoryError:
        caught = True
    heap_unlock()
    assert caught
