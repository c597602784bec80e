"""A signing step that fails part way (MemoryError on a full board heap; the agent counts it
and calls step() again) must not change the signature: the retried op continues the same
computation. On a 48 KB board a half-updated state once signed a seal that did not verify.

The fault is injected through the arithmetic itself: the modulus becomes an int whose
n-th reduction raises, so every `% P` / `% N` of the signer (point arithmetic, inversions)
is a place where a step can stop, as an allocation can stop it on a board. CPython only (an
int subclass); the zero-allocation and heap tests run on MicroPython.
"""
import hashlib

import pytest

from edge import p256

PRIV = bytes(range(1, 33))
DIGEST = hashlib.sha256(b"a day of 30-minute values").digest()


class _FailingModulus(int):
    """Reduces like the int it is, but raises MemoryError at the reductions in `at`."""

    calls = 0
    at = frozenset()

    def __rmod__(self, other):
        _FailingModulus.calls += 1
        if _FailingModulus.calls in _FailingModulus.at:
            raise MemoryError("injected")
        return other % int(self)


def _sign_with_faults(monkeypatch, at, ops=4):
    monkeypatch.setattr(p256, "P", _FailingModulus(p256.P))
    monkeypatch.setattr(p256, "N", _FailingModulus(p256.N))
    _FailingModulus.calls = 0
    _FailingModulus.at = frozenset(at)
    s = p256.Signer(PRIV, DIGEST)
    failures = 0
    while True:
        try:
            if s.step(ops):
                break
        except MemoryError:
            failures += 1
            assert failures < 10000
    return s.signature(), failures, _FailingModulus.calls


def test_the_injection_reaches_the_arithmetic(monkeypatch):
    sig, failures, calls = _sign_with_faults(monkeypatch, ())
    monkeypatch.undo()
    assert sig == p256.sign_digest(PRIV, DIGEST) and failures == 0 and calls > 2000


@pytest.mark.parametrize("stride", [97, 211, 499])
def test_a_step_failing_anywhere_gives_the_same_signature(monkeypatch, stride):
    _, _, total = _sign_with_faults(monkeypatch, ())
    want = p256.sign_digest(PRIV, DIGEST)
    at = range(stride // 2, total, stride)
    sig, failures, _ = _sign_with_faults(monkeypatch, at)
    assert failures == len(at)  # every injected fault was hit, then retried
    assert sig == want
    monkeypatch.undo()
    assert p256.verify_digest(p256.public_key(PRIV), DIGEST, sig)
