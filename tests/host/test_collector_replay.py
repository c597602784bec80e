"""Anti-replay window (replay_guard.py) against a set-based model."""
from hypothesis import given, settings
from hypothesis import strategies as st

from host_tools.collector.replay_guard import BELOW, FRESH, SEEN, ReplayWindow


def test_semantics():
    w = ReplayWindow(4)
    assert w.check(0) == FRESH
    w.mark(10)
    assert (w.top, w.check(10), w.check(11), w.check(9), w.check(7), w.check(6)) == (
        10, SEEN, FRESH, FRESH, FRESH, BELOW)
    w.mark(8)
    assert w.check(8) == SEEN and w.check(9) == FRESH
    w.mark(12)  # slides by 2: 8 drops out of view, 10 stays
    assert (w.check(10), w.check(9), w.check(8)) == (SEEN, FRESH, BELOW)
    w.mark(1000)  # a jump wider than the window clears it
    assert (w.check(999), w.check(997), w.check(996), w.bits) == (FRESH, FRESH, BELOW, 1)


def test_round_trip_bytes_and_resize():
    w = ReplayWindow(70)
    for s in (3, 50, 66, 72):
        w.mark(s)
    r = ReplayWindow.from_row(70, w.top, w.to_bytes())
    assert (r.top, r.bits) == (w.top, w.bits)
    small = ReplayWindow.from_row(8, w.top, w.to_bytes())
    assert small.check(66) == SEEN and small.check(50) == BELOW and small.check(70) == FRESH


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 80), seqs=st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 300),
                                               max_size=80))
def test_model(size, seqs):
    w = ReplayWindow(size)
    accepted = set()
    for s in seqs:
        top = max(accepted) if accepted else -1
        expect = FRESH if s > top else (BELOW if s <= top - size else
                                        (SEEN if s in accepted else FRESH))
        assert w.check(s) == expect
        if expect == FRESH:
            w.mark(s)
            accepted.add(s)
        assert w.top == max(accepted, default=-1)
        assert w.bits < (1 << size)
