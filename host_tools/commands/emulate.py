"""`smeter emulate`: a Modbus device (PV inverter, EV charger, meter) on TCP or an RTU pty."""
import argparse
import asyncio
import json
import os
import signal
import sys

from host_tools.emulator.device import DEFAULT_INITIAL_WH, DEFAULT_MAP, KINDS, DeviceError
from host_tools.emulator.faults import FaultSpecError, parse_duration_ms
from host_tools.emulator.profiles import DEFAULT_PROFILE, PROFILES, ProfileError
from host_tools.pty_link import PtyLinkError
from host_tools import cli_args
from host_tools.emulator.simclock import SimClock, parse_start, speed_ratio, wall_ms_now, _EDGE_EPOCH_UNIX
from host_tools.exit_codes import ENVIRONMENT, OK, USAGE

DESCRIPTION = """\
Run an emulated Modbus device: a real pymodbus server showing the register map from hw/maps/,
fed by an exact energy model of a power profile in (accelerated) simulated time.

  inverter  PV power conditioner (パワコン), default map sunspec_inverter_103, profile pv
  charger   EV charger with a DIN-rail meter, default map eastron_sdm630, profile ev
  meter     bidirectional meter, default map sunspec_meter_203, profile v2h

Prints one JSON line {"ready": ...} on stdout once serving, and a {"summary": ...} line at exit
(SIGINT/SIGTERM or --duration). Formats: docs/emulators.md; command: docs/commands/emulate.md.
"""

EPILOG = """\
examples:
  smeter emulate inverter --tcp 127.0.0.1:5020 --speed 2000 --truth pv.jsonl
  smeter emulate charger --pty-link /tmp/sdm630 --unit 2 --faults crc=0.05,timeout=0.02
  smeter emulate meter --tcp 127.0.0.1:0 --clock run.clock --faults rollover=500,replace=6h
  smeter emulate meter --tcp 127.0.0.1:0 --speed 600 --plan jemic_basic \
      --meter samples/declarations/meter_bench.json --plan-truth truth.csv --plan-fault I20-50Hz=gain:1.05
"""


def register(subparsers):
    p = subparsers.add_parser(
        "emulate",
        help="run an emulated Modbus inverter, charger or meter (pymodbus, TCP or RTU pty)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=KINDS, help="device to emulate")
    link = p.add_mutually_exclusive_group(required=True)
    link.add_argument("--tcp", type=cli_args.hostport, metavar="HOST:PORT", help="Modbus TCP server address (port 0: any)")
    link.add_argument("--pty-link", metavar="PATH",
                      help="Modbus RTU on a pseudo-terminal; PATH becomes a symlink to the client end "
                      "(an existing PATH is replaced only if it is a stale link into /dev/pts/; "
                      "removed at exit)")
    p.add_argument("--profile", metavar="NAME[:k=v,...]",
                   help="power profile: %s (default per kind: %s)" % (
                       ", ".join(sorted(PROFILES)), ", ".join("%s=%s" % kv for kv in DEFAULT_PROFILE.items())))
    p.add_argument("--seed", type=int, default=1, help="profile seed: same seed, same days (default 1)")
    p.add_argument("--speed", metavar="X", type=cli_args.checked_by(speed_ratio),
                   help="simulated seconds per real second, e.g. 2000 or 0.5 (default 1; ignored with an existing --clock)")
    p.add_argument("--start", metavar="WHEN", type=cli_args.checked_by(parse_start),
                   help="simulated start, ISO 8601 (JST if no offset) or @EDGE_SECONDS (default: now); "
                        "ignored with an existing --clock")
    p.add_argument("--clock", metavar="FILE",
                   help="shared clock file: read it if it exists, else create it and own it (see docs/emulators.md)")
    p.add_argument("--faults", metavar="SPEC", default="",
                   help="fault spec, e.g. timeout=0.02,crc=0.02,exception=0.01:6,rollover=3000,replace=6h,"
                        "sf=12h:1,jump=3h:+10m,seed=7, or 'standard' (grammar in docs/emulators.md)")
    p.add_argument("--unit", type=cli_args.int_range(1, 247), default=1, help="Modbus unit id 1..247 (default 1)")
    p.add_argument("--map", dest="map_name", metavar="NAME",
                   help="register map in hw/maps/ or a JSON path (default per kind: %s)" % (
                       ", ".join("%s=%s" % kv for kv in DEFAULT_MAP.items())))
    p.add_argument("--initial-wh", type=cli_args.nonnegative_int, default=DEFAULT_INITIAL_WH, metavar="WH",
                   help="lifetime energy counters at start, in Wh (default %d; 'rollover' overrides)" % DEFAULT_INITIAL_WH)
    p.add_argument("--truth", metavar="FILE", type=cli_args.output_file, help="write the ground truth (JSONL, or CSV if FILE ends in .csv)")
    p.add_argument("--duration", metavar="DUR", type=cli_args.checked_by(parse_duration_ms), help="stop after this much simulated time (e.g. 24h)")
    plan = p.add_argument_group("playing a test plan (a bench run rehearsed; docs/certification.md)")
    plan.add_argument("--plan", metavar="NAME_OR_JSON",
                      help="play hw/test_plans/NAME.json (or a path) instead of --profile")
    plan.add_argument("--meter", metavar="METER.json",
                      help="the meter declaration: rating and direction the plan's points refer to")
    plan.add_argument("--plan-start", metavar="WHEN", default="first-read",
                      help="when the first point starts: a slot start (ISO 8601 or @EDGE_S), or "
                           "first-read: the first slot boundary at least an hour after the meter "
                           "is first read (the device under test is online) (default)")
    plan.add_argument("--plan-truth", metavar="FILE", type=cli_args.output_file,
                      help="write the reference: per played plan slot, the exact energy that flowed")
    plan.add_argument("--plan-fault", action="append", default=[], metavar="POINT=FAULT",
                      help="meter fault during a point: gain:F, creep:W or dead (repeatable)")
    p.set_defaults(func=run)
    return p


def _clock(args):
    """(clock, owner, start_ms or None) from the options."""
    if args.clock and os.path.exists(args.clock):
        if args.speed is not None or args.start is not None:
            print("emulate: --clock %s exists; its speed and start apply, --speed/--start ignored" % args.clock,
                  file=sys.stderr)
        return SimClock.open(args.clock), False, None
    speed = args.speed if args.speed is not None else "1"
    speed_ratio(speed)
    start = parse_start(args.start) if args.start else (wall_ms_now() - _EDGE_EPOCH_UNIX * 1000) // 1000 * 1000
    if args.clock:
        return SimClock.create(args.clock, start, speed), True, start
    return SimClock.private(start, speed), True, start


async def _serve(args):
    from host_tools.emulator.runner import Emulator
    from host_tools.emulator.server import quiet_pymodbus

    quiet_pymodbus()
    clock, owner, start_ms = _clock(args)
    plan = _plan_profile(args)
    em = Emulator(args.kind, clock, map_name=args.map_name, profile=plan or args.profile,
                  seed=args.seed, faults=args.faults, unit=args.unit, truth_path=args.truth,
                  clock_owner=owner, initial_wh=args.initial_wh, start_ms=start_ms)
    plan_truth = _bind_plan(args, plan, em)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready = {"ready": True, "device": args.kind, "map": em.device.rmap["name"], "unit": args.unit,
             "profile": em.device.profile.describe(), "start_ms": em.device.start_ms,
             "speed": list(clock.speed), "clock_owner": owner}
    if plan is not None:
        ready["plan"] = {"name": plan.plan["name"], "start": plan.start_s, "end": plan.end_s(),
                         "slots": sum(p["slots"] for p in plan.plan["points"])}
    try:
        if args.tcp:
            host, port = await em.start_tcp(*args.tcp)
            ready["tcp"] = [host, port]
        else:
            ready["rtu"] = await em.start_rtu(args.pty_link)
        print(json.dumps(ready), flush=True)
        if args.duration:
            end = em.device.start_ms + parse_duration_ms(args.duration)
            em.until_ms = end
            while not stop.is_set() and clock.now_ms() < end:
                try:
                    await asyncio.wait_for(stop.wait(), 0.05)
                except asyncio.TimeoutError:
                    pass
        else:
            await stop.wait()
    finally:
        await em.stop()
        if plan_truth is not None:
            plan_truth.close()
    print(json.dumps({"summary": em.summary()}), flush=True)
    if stop.is_set():
        print("emulate: stopped by signal; %s" % (
            "truth written to %s" % args.truth if args.truth else "no truth file"), file=sys.stderr)
    return OK


def _plan_profile(args):
    """The PlanProfile for --plan (None without it); ValueError subclasses on bad input."""
    plan_opts = (args.meter, args.plan_start != "first-read", args.plan_truth, args.plan_fault)
    if not args.plan:
        if any(plan_opts):
            raise ValueError("--meter, --plan-start, --plan-truth and --plan-fault need --plan")
        return None
    if args.profile:
        raise ValueError("--plan replaces --profile: give one of them")
    if not args.meter:
        raise ValueError("--plan needs --meter METER.json (the rating its points refer to)")
    from host_tools.emulator.plan_play import PlanProfile, parse_fault
    from host_tools.verify import declarations, plan as planmod
    from host_tools.verify.compare import VerifyError

    try:
        plan = planmod.load(args.plan)
        meter = declarations.load_meter(args.meter)
    except VerifyError as e:
        raise ValueError(str(e))
    if meter.get("rated_power") is None:
        raise ValueError("--meter %s: needs rated_power_w or rated_voltage_v and rated_current_a"
                         % args.meter)
    ids = [p["id"] for p in plan["points"]]
    faults = [parse_fault(f, ids) for f in args.plan_fault]
    return PlanProfile(plan, meter["rated_power"], meter.get("direction", "import"), faults)


def _bind_plan(args, plan, em):
    """Start the plan at --plan-start, or arm it to start after the meter's first read, and
    open the --plan-truth writer; returns the writer or None."""
    if plan is None:
        return None
    if args.plan_start != "first-read":
        plan.bind(parse_start(args.plan_start) // 1000)
    else:
        served = em.server.on_read

        def on_read(function, address, count):
            if plan.start_s is None:  # the device under test is online: start at a boundary
                plan.bind(((em.now_ms() // 1000 + 3600) // 1800 + 1) * 1800)
                print(json.dumps({"plan_start": plan.start_s, "plan_end": plan.end_s()}),
                      flush=True)
            return served(function, address, count)

        em.server.on_read = on_read
    if not args.plan_truth:
        return None
    from host_tools.emulator.plan_play import PlanTruthWriter

    w = PlanTruthWriter(args.plan_truth, plan)
    em.device.on_row.append(w.on_row)
    return w


def run(args):
    try:
        return asyncio.run(_serve(args))
    except (DeviceError, ProfileError, FaultSpecError, PtyLinkError, ValueError) as exc:
        print("emulate: %s" % exc, file=sys.stderr)
        return USAGE
    except OSError as exc:  # port in use, address not local, truth file vanished
        print("emulate: %s" % exc, file=sys.stderr)
        return ENVIRONMENT
