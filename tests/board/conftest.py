"""The board lane: the MPS2-AN385 firmware (Cortex-M3) built from source and run under
qemu-system-arm. Skips with a loud reason where the toolchain, QEMU or the MicroPython
sources are missing (bash scripts/install-debian-deps.sh installs the packages); under CI
(CI=true) it fails instead."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="session")
def board_elf():
    from host_tools.firmware import build as fw
    from host_tools.firmware import qemu

    why = qemu.available()
    if why:
        reason = "BOARD LANE NOT RUN: " + why
        if os.environ.get("CI"):
            pytest.fail(reason + " -- CI must run this lane")
        pytest.skip(reason)
    return fw.build("mps2-an385")["firmware"]
