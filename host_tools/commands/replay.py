"""`smeter replay`: feed a recorded trace through the edge integrator, on CPython or
inside the real MicroPython unix port, and write one CSV row per JST 30-minute slot."""
import argparse
import sys
import time

from edge.reading import HAS_EXPORT, HAS_IMPORT, HAS_POWER
from host_tools import atomic_output, cli_args
from host_tools.exit_codes import ENVIRONMENT, OK, USAGE
from host_tools.replay import (
    DEFAULTS, MP_HEAP, UnknownMap, compact_lines, config_line, map_mask, replay_cpython,
    replay_micropython, summarize,
)
from host_tools.trace import TraceError


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
