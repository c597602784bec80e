"""Interrupted and failed runs never leave new outputs beside old ones that look current
(docs/commands/conventions.md#outputs): real processes, real SIGINT/SIGTERM."""
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT

CLI = [sys.executable, "-m", "host_tools.cli"]


def _old_demo(out):
    (out / "run").mkdir(parents=True)
    (out / "run" / "collector.log").write_text("old run")
    (out / "summary.json").write_text('{"wh_lost": 0, "old": true}')
    (out / "demo.png").write_bytes(b"old chart")
    (out / "notes.txt").write_text("the user's")


def _wait_stderr(proc, text, timeout=90):
    """Read stderr unbuffered (os.read: select sees no data already in a file's buffer)."""
    buf = b""
    fd = proc.stderr.fileno()
    while text.encode() not in buf:
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            raise AssertionError("no %r on stderr: %s" % (text, buf))
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError("exited before %r: %s" % (text, buf))
        buf += chunk
    return buf.decode()


@pytest.mark.parametrize("sig", (signal.SIGINT, signal.SIGTERM))
def test_an_interrupted_demo_rerun_leaves_the_previous_results_whole(sig, tmp_path):
    out = tmp_path / "demo"
    _old_demo(out)
    proc = subprocess.Popen(CLI + ["demo", "--hours", "4", "--devices", "inverter", "--faults",
                                   "none", "--runtime", "cpython", "--speed", "720",
                                   "--no-chart", "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_stderr(proc, "JST")  # the simulated run is under way
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted; nothing written to %s" % out in err
    assert "Traceback" not in err
    assert sorted(os.listdir(out)) == ["demo.png", "notes.txt", "run", "summary.json"]
    assert (out / "summary.json").read_text() == '{"wh_lost": 0, "old": true}'
    assert os.listdir(out / "run") == ["collector.log"]
    assert sorted(os.listdir(tmp_path)) == ["demo"]  # no temporary left behind


def test_an_interrupted_gen_tso_data_leaves_the_previous_set(tmp_path):
    out = tmp_path / "set"
    out.mkdir()
    (out / "resources.parquet").write_bytes(b"old")
    proc = subprocess.Popen(CLI + ["gen-tso-data", "--resources", "200000", "--days", "8",
                                   "--format", "csv", "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_stderr(proc, "generating")
    time.sleep(1.0)  # generating or writing: either way nothing may reach the output yet
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "nothing written to %s" % out in err
    assert os.listdir(out) == ["resources.parquet"]
    assert (out / "resources.parquet").read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["set"]
