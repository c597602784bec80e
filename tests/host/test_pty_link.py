"""`--pty-link PATH` (smeter emulate, smeter wisun-emulator) as real processes: only a free
path or a stale link into /dev/pts/ is taken; anything else at PATH is refused and left
untouched; the link is removed on a normal end, SIGINT and SIGTERM."""
import os
import select
import signal
import stat
import subprocess
import sys

import pytest

from conftest import ROOT

CLI = [sys.executable, "-m", "host_tools.cli"]


def command(kind, link):
    if kind == "emulate":
        return CLI + ["emulate", "charger", "--pty-link", link, "--speed", "1"]
    return CLI + ["wisun-emulator", "--pty-link", link, "--collector", "127.0.0.1:9",
                  "--time-scale", "0.01"]


def start(kind, link, extra=()):
    proc = subprocess.Popen(command(kind, link) + list(extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    r, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if r else ""
    if not line:
        proc.kill()
        raise AssertionError("did not start: " + proc.stderr.read())
    return proc


def refused(kind, link):
    proc = subprocess.run(command(kind, link), capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "refusing to replace" in proc.stderr and link in proc.stderr
    return proc.stderr


KINDS = ("emulate", "wisun-emulator")


@pytest.mark.parametrize("kind", KINDS)
def test_a_users_file_is_refused_and_kept(kind, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("my data\n")
    assert "regular file" in refused(kind, str(path))
    assert path.read_text() == "my data\n"


@pytest.mark.parametrize("kind", KINDS)
def test_directories_fifos_and_other_links_are_refused(kind, tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    assert "directory" in refused(kind, str(d))
    assert d.is_dir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert "device node or special file" in refused(kind, str(fifo))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    other = tmp_path / "other"
    os.symlink("/dev/null", other)
    assert "symlink to /dev/null" in refused(kind, str(other))
    assert os.readlink(other) == "/dev/null"


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a character device needs root")
def test_a_device_node_is_refused_as_root(tmp_path):
    node = tmp_path / "ttyUSB0"
    os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
    assert "device node" in refused("emulate", str(node))
    assert stat.S_ISCHR(os.lstat(node).st_mode)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sig", (signal.SIGINT, signal.SIGTERM))
def test_a_stale_pty_link_is_replaced_and_removed_on_signal(kind, sig, tmp_path):
    link = str(tmp_path / "port")
    os.symlink("/dev/pts/4095", link)  # left by a run that was SIGKILLed
    proc = start(kind, link)
    try:
        target = os.readlink(link)
        assert target.startswith("/dev/pts/") and target != "/dev/pts/4095"
        assert os.path.exists(target)
    finally:
        proc.send_signal(sig)
        proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert not os.path.lexists(link)


@pytest.mark.parametrize("kind", KINDS)
def test_the_link_is_removed_at_a_normal_end(kind, tmp_path):
    link = str(tmp_path / "port")
    extra = ["--duration", "1s"] if kind == "emulate" else ["--duration", "0.5"]
    proc = start(kind, link, extra)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert not os.path.lexists(link)
