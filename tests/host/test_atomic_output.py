"""host_tools/atomic_output.py: an output appears complete or not at all, also when the
writer is interrupted by a real SIGINT/SIGTERM in the middle."""
import os
import signal
import subprocess
import sys

import pytest

from conftest import ROOT
from host_tools.atomic_output import (
    OutputError, atomic_dir, atomic_file, atomic_path, check_dir, check_file,
)

# Writes its outputs slowly: "started" once the temporaries exist, then waits to be killed.
WRITER = r"""
import sys, time
from host_tools.atomic_output import atomic_dir, atomic_file
kind, path = sys.argv[1], sys.argv[2]
if kind == "file":
    with atomic_file(path) as f:
        f.write("new, half")
        print("started", flush=True)
        time.sleep(60)
else:
    with atomic_dir(path) as tmp:
        open(tmp + "/index.html", "w").write("new FAIL")
        print("started", flush=True)
        time.sleep(60)
"""


@pytest.mark.parametrize("sig", (signal.SIGINT, signal.SIGTERM))
@pytest.mark.parametrize("kind", ("file", "dir"))
def test_an_interrupted_writer_leaves_the_previous_output_whole(kind, sig, tmp_path):
    out = tmp_path / "report"
    if kind == "file":
        out.write_text("old PASS")
    else:
        out.mkdir()
        (out / "index.html").write_text("old PASS")
        (out / "slots.csv").write_text("old rows")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, kind, str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    # python's default SIGTERM kills without cleanup (smeter's main turns it into
    # KeyboardInterrupt): the temporary may stay, but never under the output's name
    proc.send_signal(sig)
    proc.communicate(timeout=20)
    assert proc.returncode != 0
    if kind == "file":
        assert out.read_text() == "old PASS"
    else:
        assert sorted(os.listdir(out)) == ["index.html", "slots.csv"]
        assert (out / "index.html").read_text() == "old PASS"
    if sig == signal.SIGINT:  # cleanup ran: no temporary left behind
        assert sorted(os.listdir(tmp_path)) == ["report"]


def test_complete_outputs_replace_the_previous_ones(tmp_path):
    f = tmp_path / "a.json"
    f.write_text("old")
    with atomic_file(str(f)) as fh:
        fh.write("new")
    assert f.read_text() == "new"
    with atomic_path(str(tmp_path / "b.bin")) as tmp:
        open(tmp, "wb").write(b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    d = tmp_path / "d"
    (d / "run").mkdir(parents=True)
    (d / "run" / "old.log").write_text("old")
    (d / "demo.png").write_text("old chart")
    (d / "notes.txt").write_text("the user's")
    with atomic_dir(str(d), owned=("run", "summary.json", "demo.png")) as tmp:
        open(os.path.join(tmp, "summary.json"), "w").write("{}")
        os.mkdir(os.path.join(tmp, "run"))
        open(os.path.join(tmp, "run", "new.log"), "w").write("new")
    # the new run's files, the stale chart of ours gone, the user's file kept
    assert sorted(os.listdir(d)) == ["notes.txt", "run", "summary.json"]
    assert os.listdir(d / "run") == ["new.log"]
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.bin", "d"]


def test_a_failed_block_keeps_the_partial_dir_only_when_asked(tmp_path):
    d = tmp_path / "out"
    with pytest.raises(RuntimeError) as ei:
        with atomic_dir(str(d), keep_partial=True) as tmp:
            open(os.path.join(tmp, "x"), "w").write("1")
            raise RuntimeError("boom")
    assert not d.exists() and os.path.exists(os.path.join(ei.value.partial_dir, "x"))


def test_unwritable_outputs_are_named_before_any_work(tmp_path):
    with pytest.raises(OutputError, match="is a directory"):
        check_file(str(tmp_path))
    with pytest.raises(OutputError, match="does not exist"):
        check_file(str(tmp_path / "no" / "x.csv"))
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="not a directory"):
        check_dir(str(tmp_path / "f"))
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(OutputError, match="not writable"):
            check_file(str(ro / "x"))
