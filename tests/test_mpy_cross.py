"""Byte-compile every edge module with mpy-cross, so syntax MicroPython rejects fails here."""
import os

import pytest

from conftest import ROOT
from host_tools import micropython

EDGE = os.path.join(ROOT, "edge")
FIRMWARE = os.path.join(ROOT, "firmware")


def portable_sources():
    for base in (EDGE, FIRMWARE):
        for dirpath, _, files in os.walk(base):
            for f in sorted(files):
                if f.endswith(".py"):
                    yield os.path.relpath(os.path.join(dirpath, f), ROOT)


@pytest.mark.parametrize("path", sorted(portable_sources()))
def test_mpy_cross_compiles(path, tmp_path):
    out = tmp_path / "m.mpy"
    micropython.compile_mpy(os.path.join(ROOT, path), str(out))  # raises with mpy-cross's message
    assert out.stat().st_size > 0
