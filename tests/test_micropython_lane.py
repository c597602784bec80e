"""Every dual-runtime test module under tests/portable/ also runs inside MicroPython.

A module may declare its heap with a line `# mp-heap: 64K` (default 32K, the board budget).
"""
import os
import re

import pytest

from conftest import PORTABLE_TESTS, run_micropython

MODULES = sorted(
    f[:-3] for f in os.listdir(PORTABLE_TESTS) if f.startswith("test_") and f.endswith(".py")
)


def declared_heap(module):
    with open(os.path.join(PORTABLE_TESTS, module + ".py"), encoding="utf-8") as f:
        m = re.search(r"^# mp-heap: (\w+)$", f.read(), re.M)
    return m.group(1) if m else "32K"


@pytest.mark.micropython
@pytest.mark.parametrize("module", MODULES)
def test_edge_module_under_micropython(module):
    proc = run_micropython(["tests/mp_runner.py", module], heap=declared_heap(module))
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 0, out
    assert " 0 failed" in out, out
    # what CPython skips as MicroPython's alone (tests/portable/runtime.py) runs here
    assert "only on MicroPython" not in out, out
