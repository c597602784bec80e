"""Cost of one durable queue operation: append+sync and ack of one record.

On a real directory through firmware/lib/flash_store.py (fsync included), and in RAM
(MemStorage) to separate the CPU cost from the file system's. Run with --benchmark-enable.
"""
import os
import sys

import pytest

from conftest import ROOT
from edge.memstore import MemStorage
from edge.persist import SeqCounter, StateStore
from edge.slot_queue import SlotQueue

sys.path.insert(0, os.path.join(ROOT, "firmware", "lib"))
from flash_store import FlashStore  # noqa: E402


def storage(kind, tmp_path):
    return FlashStore(str(tmp_path / "flash")) if kind == "file" else MemStorage()


class Feed:
    """Appends ever newer slots; acks the previous one so the ring never overflows."""

    def __init__(self, q):
        self.q = q
        self.slot = 100000

    def append(self):
        self.slot += 1
        assert self.q.append(self.slot, 1234, 56, 0)

    def ack_last(self):
        assert self.q.ack([self.slot]) == 1


@pytest.mark.parametrize("kind", ["file", "mem"])
def test_bench_append_one_record(benchmark, tmp_path, kind):
    st = storage(kind, tmp_path)
    feed = Feed(SlotQueue(st))
    feed.append()

    def setup():
        feed.ack_last()

    benchmark.pedantic(feed.append, setup=setup, rounds=300, iterations=1)
    assert feed.q.overflow() is None
    assert feed.q.pending() == 1


@pytest.mark.parametrize("kind", ["file", "mem"])
def test_bench_ack_one_record(benchmark, tmp_path, kind):
    st = storage(kind, tmp_path)
    feed = Feed(SlotQueue(st))
    benchmark.pedantic(feed.ack_last, setup=feed.append, rounds=300, iterations=1)
    assert feed.q.pending() == 0


@pytest.mark.parametrize("kind", ["file", "mem"])
def test_bench_append_on_a_full_ring(benchmark, tmp_path, kind):
    """The overflow path: one record write plus one small atomic replace of the summary."""
    q = SlotQueue(storage(kind, tmp_path), 8)
    feed = Feed(q)
    for _ in range(8):
        feed.append()
    benchmark.pedantic(feed.append, rounds=200, iterations=1)
    assert q.overflow()[1] >= 1


@pytest.mark.parametrize("kind", ["file", "mem"])
def test_bench_state_save_and_seq_block(benchmark, tmp_path, kind):
    """Per slot close the agent also saves the integrator state; seq writes once per block."""
    st = storage(kind, tmp_path)
    state = StateStore(st, "integ", 12)
    seq = SeqCounter(st, reserve=1)  # worst case: every number written
    vals = list(range(12))

    def save():
        vals[0] += 1
        state.save(vals)
        seq.next()

    benchmark.pedantic(save, rounds=200, iterations=1)
    out = [0] * 12
    assert StateStore(st, "integ", 12).load(out) and out == vals
