"""A full board heap (MemoryError) in the radio turn's work changes nothing but the time.

The sealing job: a MemoryError at any of its steps (reading the ring, building the signer, a
signing op, the finished seal, its state record) leaves it to retry, and the seal that comes
out is byte for byte the one a run without faults makes, made once. The Wi-SUN driver: a
send that fails to allocate leaves it ready. CPython only (faults injected by wrapping;
tests/host/test_p256_faults.py injects them inside the arithmetic; the agent's side,
tests/portable/test_agent_seal.py, runs on both runtimes).
"""
import sys

import pytest

from conftest import PORTABLE_TESTS
from edge import p256, seal, sealing
from edge.memstore import MemStorage
from edge.slot_queue import SlotQueue
from test_p256_faults import _FailingModulus

sys.path.insert(0, PORTABLE_TESTS)

from wisun_script import ST_READY, joined  # noqa: E402

PRIV = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
DAY = 2528


def _day():
    st = MemStorage()
    q = SlotQueue(st)
    for s in range(1, 49):
        if s % 7:
            q.append(DAY * 48 + s - 1, s * 13, 900 + s, 0)
    return st, q


def _seal(job, q, limit=20000):
    failures = 0
    for _ in range(limit):
        if job.outbox() is not None:
            return job.outbox(), failures
        try:
            job.work(q, 1)
        except MemoryError:
            failures += 1
    raise AssertionError("no seal after %d calls" % limit)


def _reference():
    st, q = _day()
    return _seal(sealing.SealJob(st, 77, PRIV, 1), q)[0]


def _every(fn, k):
    """fn, but calls number k, 2k, 3k... raise MemoryError before doing anything (a plain
    function, so it binds as a method where it replaces one)."""
    n = [0]

    def wrapped(*a, **kw):
        n[0] += 1
        if n[0] % k == 0:
            raise MemoryError("injected")
        return fn(*a, **kw)

    return wrapped


@pytest.mark.parametrize("k", [2, 3, 5])
def test_memory_errors_at_every_step_give_the_same_seal_once(monkeypatch, k):
    want = _reference()
    st, q = _day()
    q.stored = _every(q.stored, k)
    monkeypatch.setattr(seal.Sealer, "__init__", _every(seal.Sealer.__init__, k))
    monkeypatch.setattr(seal.Sealer, "seal", _every(seal.Sealer.seal, k))
    job = sealing.SealJob(st, 77, PRIV, 1)
    job._encode = _every(job._encode, k)
    monkeypatch.setattr(p256, "P", _FailingModulus(p256.P))
    _FailingModulus.calls = 0
    _FailingModulus.at = frozenset(range(k * 50, 10 ** 6, k * 97))
    out, failures = _seal(job, q)
    assert failures > 10
    assert out == want and job.sealed == 1 and job.last_day == DAY
    assert sealing.SealJob(st, 77, PRIV, 1).outbox() == want  # durable as it was made


def test_a_partial_seal_request_survives_a_failed_start(monkeypatch):
    st, q = _day()
    job = sealing.SealJob(st, 77, PRIV, 1)
    _seal(job, q)  # the full day
    job.acked()
    q.append((DAY + 1) * 48 + 2, 5, 6, 0)
    job.request_partial()
    real = bytearray
    monkeypatch.setattr(sealing, "bytearray", lambda n: (_ for _ in ()).throw(MemoryError()),
                        raising=False)
    with pytest.raises(MemoryError):
        job.work(q, 1)
    monkeypatch.setattr(sealing, "bytearray", real, raising=False)
    out, _ = _seal(job, q)
    s = seal.parse(out)
    assert (s.day, s.first, s.count) == (seal.day_code(DAY + 1), 1, 3)


def test_a_send_that_runs_out_of_heap_leaves_the_driver_ready():
    # WisunDriver.send builds its bytes before it changes state: a MemoryError there must
    # not leave the driver waiting for the result of a send that never reached the module
    class Starved(bytearray):
        def __bytes__(self):
            raise MemoryError("injected")

    d, t = joined()
    with pytest.raises(MemoryError):
        d.send(Starved(b"abc"), 1, t)
    assert d.state == ST_READY and d.can_send()
    assert d.send(b"abc", 2, t).endswith(b"abc")
