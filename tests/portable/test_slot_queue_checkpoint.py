"""Closing a slot: integrator state and queued record commit together, whatever the cut."""
# mp-heap: 128K
from edge.memstore import MemStorage, PowerCut
from edge.persist import StoreError
from edge.slot_queue import MAX_WH, SlotCheckpoint, SlotQueue


def state_of(gen):
    return [gen, gen * 3 - 7, -gen]


def rec(slot):
    return (slot, (slot * 7919) % 100000, (slot * 104729) % 50000, slot & 0xFFFF)


def boot(m):
    q = SlotQueue(m, 8)
    cp = SlotCheckpoint(m, 3)
    out = [0, 0, 0]
    loaded = cp.restore(q, out)
    return q, cp, (out if loaded else None)


def test_commit_queues_the_record_and_saves_the_state():
    m = MemStorage()
    q, cp, st = boot(m)
    assert st is None and cp.last_slot() == -1
    assert cp.commit(q, state_of(1), *rec(40))
    m.power_cycle()
    q, cp, st = boot(m)
    assert st == state_of(1)
    assert q.peek(5) == [rec(40)]
    assert cp.last_slot() == 40
    assert q.stale_appends == 0  # restore does not re-append what is already queued


def test_save_between_closes_keeps_the_journalled_record():
    m = MemStorage()
    q, cp, _ = boot(m)
    cp.commit(q, state_of(1), *rec(7))
    cp.save(state_of(2))
    m.power_cycle()
    q, cp, st = boot(m)
    assert st == state_of(2) and cp.last_slot() == 7
    assert q.peek(5) == [rec(7)]


def test_a_cut_anywhere_in_a_commit_keeps_state_and_queue_in_step():
    cut = 0
    while True:
        for keep in (None, lambda i: True):
            m = MemStorage()
            q, cp, _ = boot(m)
            cp.commit(q, state_of(1), *rec(10))
            q.ack([10])
            m.cut_after(cut)
            try:
                cp.commit(q, state_of(2), *rec(11))
                finished = True
            except PowerCut:
                finished = False
            m.power_cycle(keep)
            q, cp, st = boot(m)
            queued = q.peek(5)
            if st == state_of(2):
                assert queued == [rec(11)]  # restore finished the interrupted append
            else:
                assert not finished
                assert st == state_of(1) and queued == []
        if finished:
            break
        cut += 1
    assert cut == 18  # the state replace, 16 record bytes, the sync


def test_commit_refuses_bad_records_before_writing():
    m = MemStorage()
    q, cp, _ = boot(m)
    for args in ((-1, 0, 0, 0), (1, MAX_WH + 1, 0, 0), (1, 0, -5, 0), (1, 0, 0, 1 << 16)):
        try:
            cp.commit(q, state_of(1), *args)
        except StoreError as e:
            assert e.kind == "store_range"
        else:
            assert False, args
    try:
        cp.save([1, 2])
    except StoreError as e:
        assert e.kind == "store_range"
    else:
        assert False
    assert m.replaces == 1 and m.writes == 0  # only the queue's format
