"""A portable test that cannot fail on a runtime shows as skipped there, with its reason
(tests/portable/runtime.py): under pytest as SKIPPED, under tests/mp_runner.py as SKIP."""
import os
import subprocess
import sys

from conftest import PORTABLE_TESTS, ROOT

ALLOCATION_TESTS = [
    "test_compat.py::test_heap_lock_catches_an_allocation_on_micropython",
    "test_modbus_heap.py::test_heap_lock_is_real_here",
    "test_modbus_heap.py::test_tcp_poll_path_allocates_nothing",
    "test_integrator.py::test_steady_state_feed_and_close_allocate_nothing",
]


def test_allocation_proofs_are_skipped_on_cpython_with_the_reason():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
        + [os.path.join(PORTABLE_TESTS, t) for t in ALLOCATION_TESTS],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "%d skipped" % len(ALLOCATION_TESTS) in out and "passed" not in out, out
    assert "heap_lock() is a no-op on CPython" in out, out


def test_mp_runner_reports_a_skip_with_its_reason():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, PORTABLE_TESTS]))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "mp_runner.py"), "test_compat"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert ("SKIP test_compat.test_heap_lock_catches_an_allocation_on_micropython: allocation is "
            "proven only on MicroPython") in out, out
    assert "PASS test_compat.test_small_int_bounds_are_31_bit" in out
    assert "mp_runner: 2 passed, 1 skipped, 0 failed" in out, out
