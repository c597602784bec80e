"""Replaying a recorded trace through the edge core (edge/replay_core.py), on CPython or inside
the real MicroPython unix port: the compact input lines, the .mpy modules, the slot CSV out.

Used by `smeter replay` and `smeter verify` (host_tools/commands/); both runtimes give
byte-identical output.
"""
import io
import json
import os
import subprocess
import tempfile
import threading
import time

from edge import replay_core
from edge.reading import HAS_EXPORT, HAS_IMPORT, HAS_POWER, R_PRESENT
from host_tools import ROOT, micropython
from host_tools.micropython import MissingTool  # noqa: F401  (raised by replay_micropython)
from host_tools.trace import read_trace

# Modules replay_core imports inside MicroPython (precompiled to .mpy, as boards freeze them).
MP_MODULES = ("__init__", "compat", "errors", "reading", "timebase", "flags", "slots",
              "int31", "integrator", "replay_core")

# Defaults mirror edge.integrator.Integrator; see docs/integrator.md for their basis.
DEFAULTS = {
    "max_power_w": 20000,
    "power_exp": -1,
    "max_gap_s": 60,
    "missing_ms": 90000,
    "margin_pct": 150,
    "mismatch_wh": 2,
    "mismatch_pct": 5,
}


# The replay's MicroPython heap: the integrator's code is on the heap here (a board runs it
# frozen from flash), on the 64-bit unix port, where objects are twice a 32-bit board's; the
# smallest heap the sample replay needs is measured in docs/integrator.md ("Memory and speed").
MP_HEAP = "36K"

def config_line(args, max_power_w):
    return "C %d %d %d %d %d %d %d\n" % (
        max_power_w, args.power_exp, args.max_gap_s, args.missing_ms, args.margin_pct,
        args.mismatch_wh, args.mismatch_pct)


def compact_lines(trace_path, config, lenient=False, counter=None, mask=7):
    """The compact input of edge/replay_core.py for a trace (a generator of str lines).

    mask: HAS_* bits to keep (a register map's quantities)."""
    yield config
    n = 0
    for row in read_trace(trace_path, lenient):
        n += 1
        row.reading[R_PRESENT] &= mask
        yield "S %d %d %d %s\n" % (row.line, row.s, row.ms, " ".join(map(str, row.reading)))
    if counter is not None:
        counter.append(n)
    yield "E\n"


def replay_cpython(lines):
    """Run edge/replay_core.py in this interpreter; returns the slot CSV (str)."""
    out = io.StringIO()
    try:
        replay_core.run(io.BytesIO("".join(lines).encode()), out)
    except replay_core.ReplayError as e:
        raise RuntimeError("line %s: %s" % (e.detail, e.message))
    return out.getvalue()


class UnknownMap(ValueError):
    """--map names no file under hw/maps/ (exit 2)."""


def build_mpy(dest):
    """Precompile the edge modules replay_core needs into dest/edge/*.mpy (what boards freeze).

    Compiling integrator.py from source alone needs ~80 KB of heap, more than the board budget."""
    os.makedirs(os.path.join(dest, "edge"), exist_ok=True)
    for m in MP_MODULES:
        # relative: the name is stored for tracebacks. -O3: no line-number tables (about 1 KB
        # of RAM for the integrator); replay_core reports errors by trace line, not by traceback.
        micropython.compile_mpy("edge/" + m + ".py", os.path.join(dest, "edge", m + ".mpy"), "-O3")


def replay_micropython(lines, heap=MP_HEAP, exe=None, mpy_dir=None, report=None):
    """Run edge/replay_core.py inside the MicroPython unix port; returns the slot CSV (str).

    mpy_dir: a directory already filled by build_mpy() (else a temporary one is built).
    report: a callable taking a progress line; then the samples are fed in chunks and it is
    told how many the edge core has taken (the pipe holds little, so sent is close to consumed)."""
    exe = exe or micropython.require()
    if report is not None:
        lines = list(lines)  # a bad trace stops before the compile
    if mpy_dir is None:
        with tempfile.TemporaryDirectory(prefix="smeter-mpy-") as tmp:
            if report is not None:
                report("compiling the edge core for MicroPython (mpy-cross)")
            build_mpy(tmp)
            return _run_mp(exe, heap, tmp, lines, report)
    return _run_mp(exe, heap, mpy_dir, lines, report)


def _run_mp(exe, heap, mpy_dir, lines, report):
    argv = micropython.argv(exe, heap, "-m", "edge.replay_core")
    env = micropython.path_env([mpy_dir, ROOT])
    if report is None:
        proc = subprocess.run(argv, input="".join(lines).encode(), capture_output=True, env=env,
                              cwd=mpy_dir)
        out, err = proc.stdout, proc.stderr
    else:
        out, err, proc = _stream_mp(argv, env, mpy_dir, list(lines), heap, report)
    if proc.returncode != 0:
        msg = err.decode(errors="replace").strip().splitlines()
        raise RuntimeError("micropython (heap %s) failed: %s"
                           % (heap, msg[-1] if msg else "exit %d" % proc.returncode))
    return out.decode()


def _stream_mp(argv, env, cwd, lines, heap, report):
    """Feed lines in tenths, reporting each; -> (stdout bytes, stderr bytes, finished proc)."""
    n = len(lines) - 2
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=cwd)
    out = {}

    def drain(name, stream):
        out[name] = stream.read()

    ths = [threading.Thread(target=drain, args=(k, s), daemon=True)
           for k, s in (("out", proc.stdout), ("err", proc.stderr))]
    for th in ths:
        th.start()
    step = max(1, n // 10)
    t0 = time.monotonic()
    try:
        for i in range(0, len(lines), step):
            proc.stdin.write("".join(lines[i:i + step]).encode())
            done = min(n, i + step)
            report("replaying in MicroPython (heap %s): %d %% (%d of %d samples, %.0f s)"
                   % (heap, done * 100 // max(1, n), done, n, time.monotonic() - t0))
        proc.stdin.close()
    except BrokenPipeError:
        pass
    proc.wait()
    for th in ths:
        th.join()
    return out.get("out", b""), out.get("err", b""), proc


def summarize(csv_text):
    """(slots, import Wh, export Wh, flagged slots, first slot_start, last slot_start)."""
    rows = [r.split(",") for r in csv_text.splitlines()[1:] if r]
    imp = sum(int(r[2]) for r in rows if r[2])
    exp = sum(int(r[3]) for r in rows if r[3])
    flagged = sum(1 for r in rows if r[4])
    first = rows[0][0] if rows else "-"
    last = rows[-1][0] if rows else "-"
    return len(rows), imp, exp, flagged, first, last


def map_mask(name):
    """HAS_* bits of the quantities register map NAME provides."""
    path = os.path.join(ROOT, "hw", "maps", name + ".json")
    if not os.path.exists(path):
        known = sorted(f[:-5] for f in os.listdir(os.path.dirname(path)) if f.endswith(".json"))
        raise UnknownMap("unknown map %r (known: %s)" % (name, ", ".join(known)))
    with open(path, encoding="utf-8") as f:
        qs = json.load(f).get("quantities", {})
    return ((HAS_POWER if "power" in qs else 0) | (HAS_IMPORT if "import" in qs else 0)
            | (HAS_EXPORT if "export" in qs else 0))
