"""Cost of the exact reference of `smeter verify`: parsing a trace into exact integers and
integrating it into slots, on the shipped EV-charger trace (2,059 samples, register
deltas split across boundaries) and the same trace as power only."""
import os

from conftest import ROOT
from host_tools.verify import reference as R

CHARGER = os.path.join(ROOT, "samples", "charger_evening_7s.csv")


def test_bench_reference_parse(benchmark):
    s = benchmark(R.read_samples, CHARGER)
    assert len(s) == 2059


def test_bench_reference_registers(benchmark):
    s = R.read_samples(CHARGER)
    ref = benchmark(R.reference, s, 60000)
    assert len(ref) == 8 and sum(r.imp for r in ref.values()) == R.Fraction(155468, 10)


def test_bench_reference_power(benchmark):
    s = R.read_samples(CHARGER)
    s.imp = [None] * len(s)  # power only: trapezoids, split at boundaries
    imp, exp = benchmark(R.power_integral, s, 60000)
    assert len(imp) == 8 and all(v[0] == 0 for v in exp.values())
