"""Integer arithmetic that stays inside the small-int range of a 32-bit board (±2**30).

A MicroPython small int has 31 bits on a 32-bit board: anything larger becomes a bignum,
which allocates (and a metering path must allocate nothing). These helpers compute what the
integrator (edge/integrator.py) needs without ever forming a value outside ±2**30:

  muldiv   floor(a * b / c) by shift-and-subtract, the product never formed;
  limbs    a 32-bit counter times 10**k as four 15-bit limbs (up to 2**60);
  lsub     limb subtraction with borrow.

Results that are more than one int go into a caller-owned list at a caller-given offset
(no tuple is built), so the calls allocate nothing. tests/host/test_integrator_props.py
runs them rewritten so that every intermediate is checked against 2**30.
"""


def muldiv(a, b, c, out, rem):
    """floor(a * b / c) for 0 <= a, b and 0 < c < 2**29 whose result fits 2**30; the
    remainder goes to out[rem]. Every partial value stays below 2c."""
    if a < 32768 and b < 32768:
        x = a * b
        q = x // c
        out[rem] = x - q * c
        return q
    qa = a // c
    ar = a - qa * c
    q = qa * b
    hi = 0
    rr = 0
    bit = 1
    while bit <= b >> 1:
        bit <<= 1
    while bit:
        hi += hi
        rr += rr
        if rr >= c:
            rr -= c
            hi += 1
        if b & bit:
            rr += ar
            if rr >= c:
                rr -= c
                hi += 1
        bit >>= 1
    out[rem] = rr
    return q + hi


def lsub(t, a, b):
    """Limbs t[a:a+4] -= t[b:b+4] in place; returns 1 (t[a:] then holds a wrapped value)
    if a < b."""
    borrow = 0
    for i in range(4):
        v = t[a + i] - t[b + i] - borrow
        borrow = 0
        if v < 0:
            v += 0x8000
            borrow = 1
        t[a + i] = v
    return borrow


def limbs(t, o, hi, lo, k):
    """(hi:lo) * 10**k as four 15-bit limbs at t[o:o+4] (k <= 6: < 2**52)."""
    t[o] = lo & 0x7FFF
    t[o + 1] = (lo >> 15) | ((hi & 0x3FFF) << 1)
    t[o + 2] = hi >> 14
    t[o + 3] = 0
    while k > 0:
        c = 0
        for i in range(4):
            v = t[o + i] * 10 + c
            c = v >> 15
            t[o + i] = v & 0x7FFF
        k -= 1
