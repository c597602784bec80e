"""Integrator step: one 1 s sample (power + both registers), steady state; and a restart
after a day (a register delta spread over 48 slots and drained).

`pytest tests/bench/test_bench_integrator.py --benchmark-enable` measures; the suite runs it
once with benchmarks disabled."""
from edge.integrator import REC_LEN, Integrator
from edge.reading import (
    HAS_EXPORT, HAS_IMPORT, HAS_POWER, R_EXP_EXP, R_IMP_EXP, R_IMP_HI, R_IMP_LO, R_POWER,
    R_POWER_EXP, R_PRESENT, new_reading,
)

DAY = 2326 * 86400


def _setup(present):
    it = Integrator()
    r = new_reading()
    r[R_PRESENT] = present
    r[R_POWER] = -25000
    r[R_POWER_EXP] = -1
    r[R_IMP_EXP] = -3
    r[R_EXP_EXP] = -3
    out = [0] * REC_LEN
    state = [DAY]
    it.feed(r, DAY, 0, out)
    return it, r, out, state


def _step(it, r, out, state):
    state[0] += 1
    r[R_POWER] = -25000 + (state[0] & 63)
    r[R_IMP_LO] = (r[R_IMP_LO] + 1) & 0xFFFF
    return it.feed(r, state[0], 0, out)


def test_bench_integrator_step_power_only(benchmark):
    it, r, out, state = _setup(HAS_POWER)
    benchmark(_step, it, r, out, state)
    assert it.open_slot() == state[0] // 1800


def test_bench_integrator_step_power_and_registers(benchmark):
    it, r, out, state = _setup(HAS_POWER | HAS_IMPORT | HAS_EXPORT)
    benchmark(_step, it, r, out, state)
    assert it.open_slot() == state[0] // 1800


def _restart_gap(it_state, r, out):
    """A restart after a day: the first reading spreads a register delta over 48 slots,
    drained one record per advance() call."""
    it = Integrator()
    it.restore(it_state)
    r[R_IMP_LO] = 0x1234
    r[R_IMP_HI] = 0x0100  # + 16.8 kWh: plausible for 20 kW over a day
    n = it.feed(r, DAY + 86400 + 900, 0, out)
    while it.advance(DAY + 86400 + 901, out):
        n += 1
    return n


def test_bench_integrator_restart_gap_spread_and_drain(benchmark):
    it = Integrator()
    r = new_reading()
    r[R_PRESENT] = HAS_IMPORT
    r[R_IMP_EXP] = -3
    out = [0] * REC_LEN
    it.feed(r, DAY, 0, out)
    it.feed(r, DAY + 1, 0, out)
    n = benchmark(_restart_gap, it.save(), r, out)
    assert n == 48 and out[0] == (DAY + 86400) // 1800 - 1
