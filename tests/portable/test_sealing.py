"""edge/sealing.py on both runtimes: day selection from the ring, steps, power cuts, acks."""
# mp-heap: 256K
from edge import p256, seal, sealing
from edge.memstore import MemStorage, PowerCut
from edge.slot_queue import SlotQueue

PRIV = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
PUB = p256.public_key(PRIV)
DEV = 4242
DAY = 2528  # JST day number: 2026-12-03


def _fill(q, day, slots_of_day, flags=0):
    vals = {}
    for s in slots_of_day:
        q.append(day * 48 + s - 1, s * 11, 500 + s, flags)
        vals[s] = (s * 11, 500 + s, flags)
    return vals


def _run(job, q, ops=1, limit=10000):
    n = 0
    while job.outbox() is None and n < limit:
        if not job.work(q, ops) and not job.busy():
            break
        n += 1
    return n


def test_day_is_sealed_when_its_last_slot_closes_and_verifies():
    st = MemStorage()
    q = SlotQueue(st)
    vals = _fill(q, DAY, range(1, 48))
    job = sealing.SealJob(st, DEV, PRIV, 0)
    _run(job, q)
    assert job.outbox() is None  # slot 48 not closed yet: nothing to seal
    vals.update(_fill(q, DAY, [48]))
    q.ack([DAY * 48 + i for i in range(48)])  # acknowledged records still count
    steps = _run(job, q)
    out = job.outbox()
    assert out is not None and steps > 100
    r = seal.check(out, PUB, vals, DEV, seal.day_code(DAY))
    assert r.ok, r.problems
    s = seal.parse(out)
    assert (s.first, s.count, s.key_no) == (1, 48, 0)
    assert job.last_day == DAY
    _run(job, q)
    assert job.outbox() == out  # nothing new until acked


def test_missing_slots_are_sealed_as_absent_and_gap_days_follow_in_order():
    st = MemStorage()
    q = SlotQueue(st)
    v1 = _fill(q, DAY, [1, 2, 3, 40])
    v2 = _fill(q, DAY + 1, [5, 48])
    job = sealing.SealJob(st, DEV, PRIV, 3)
    _run(job, q)
    first = job.outbox()
    assert seal.parse(first).day == seal.day_code(DAY)
    assert seal.check(first, PUB, v1).ok
    more = dict(v1)
    more[7] = (1, 1, 0)
    rep = seal.check(first, PUB, more)
    assert (7, seal.EXTRA) in rep.slots
    job.acked()
    _run(job, q)
    second = job.outbox()
    assert seal.parse(second).day == seal.day_code(DAY + 1)
    assert seal.check(second, PUB, v2).ok and seal.parse(second).key_no == 3


def test_power_cut_mid_signature_restarts_to_the_same_bytes():
    st = MemStorage()
    q = SlotQueue(st)
    _fill(q, DAY, range(1, 49))
    ref = sealing.SealJob(MemStorage(), DEV, PRIV, 0)
    _run(ref, q)
    want = ref.outbox()
    job = sealing.SealJob(st, DEV, PRIV, 0)
    for _ in range(60):
        job.work(q, 1)
    assert job.busy() and job.outbox() is None
    st.power_cycle()  # the half-done signer was in RAM only
    q2 = SlotQueue(st)
    job2 = sealing.SealJob(st, DEV, PRIV, 0)
    assert job2.last_day == -1 and job2.outbox() is None
    _run(job2, q2)
    assert job2.outbox() == want


def test_power_cut_while_saving_loses_or_keeps_the_seal_whole_never_half():
    for budget in (0, 1):
        st = MemStorage()
        q = SlotQueue(st)
        _fill(q, DAY, range(1, 49))
        job = sealing.SealJob(st, DEV, PRIV, 0)
        while job.phase != sealing.SIGN:
            job.work(q, 1)
        while not job._sealer.step(1):
            pass
        job._sealer.step = lambda ops=1: True  # finished: the next work() saves
        st.cut_after(budget)
        try:
            job.work(q, 1)
        except PowerCut:
            pass
        st.power_cycle()
        q2 = SlotQueue(st)
        job2 = sealing.SealJob(st, DEV, PRIV, 0)
        if budget == 0:
            assert job2.outbox() is None and job2.last_day == -1
            _run(job2, q2)
        assert job2.outbox() is not None and job2.last_day == DAY
        assert seal.check(job2.outbox(), PUB, {s: (s * 11, 500 + s, 0) for s in range(1, 49)}).ok


def test_ack_is_durable_and_the_day_is_never_sealed_twice():
    st = MemStorage()
    q = SlotQueue(st)
    _fill(q, DAY, range(1, 49))
    job = sealing.SealJob(st, DEV, PRIV, 0)
    _run(job, q)
    job.acked()
    st.power_cycle()
    q2 = SlotQueue(st)
    job2 = sealing.SealJob(st, DEV, PRIV, 0)
    assert job2.outbox() is None and job2.last_day == DAY
    _run(job2, q2)
    assert job2.outbox() is None and job2.sealed == 0


def test_partial_seal_on_request_covers_the_closed_slots_so_far():
    st = MemStorage()
    q = SlotQueue(st)
    vals = _fill(q, DAY, range(1, 21))
    job = sealing.SealJob(st, DEV, PRIV, 0)
    job.request_partial()
    _run(job, q)
    s = seal.parse(job.outbox())
    assert (s.first, s.count) == (1, 20)
    assert seal.check(job.outbox(), PUB, vals).ok
    job.acked()
    job.request_partial()  # same slots again: not resealed
    _run(job, q)
    assert job.outbox() is None
    vals.update(_fill(q, DAY, range(21, 49)))
    _run(job, q)
    s = seal.parse(job.outbox())
    assert (s.first, s.count) == (1, 48) and seal.check(job.outbox(), PUB, vals).ok


def test_days_that_left_the_ring_are_skipped_and_counted():
    st = MemStorage()
    q = SlotQueue(st, 48)
    _fill(q, DAY, range(1, 49))
    job = sealing.SealJob(st, DEV, PRIV, 0)
    _run(job, q)
    job.acked()
    _fill(q, DAY + 3, range(1, 49))  # two days never queued, the ring holds one day only
    _run(job, q)
    assert seal.parse(job.outbox()).day == seal.day_code(DAY + 3)
    # the two days between are gone from the ring: counted (the ring cannot say whether
    # they ever held values)
    assert job.skipped_days == 2
    job.acked()
    q2 = SlotQueue(st, 48)
    assert q2.stored(DAY * 48) is None and q2.stored((DAY + 3) * 48) is not None
