"""`smeter wisun-emulator`: a Wi-SUN module on a pseudo-terminal, bridged to the collector."""
import json
import signal
import sys
import threading

from host_tools import cli_args
from host_tools.atomic_output import write_text
from host_tools.exit_codes import OK, USAGE
from host_tools.pty_link import PtyLinkError, remove_link
from host_tools.emulator.wisun_faults import FaultSpecError, parse_faults
from host_tools.emulator.wisun_link import (
    START_PREFIX, WisunEmulator, emulator_clock, load_profile, open_pty, profile_ids,
)


def register(subparsers):
    p = subparsers.add_parser(
        "wisun-emulator",
        help="emulate a Wi-SUN module (SK commands) on a pty, forwarding UDP to a collector",
        description=(
            "Emulate a Wi-SUN radio module (ROHM BP35A1/BP35C0, Tessera RL7023 SKSTACK-IP "
            "command set) on a pseudo-terminal. The agent opens PATH as its serial port; "
            "payloads it sends with SKSENDTO go to the collector as UDP datagrams, and the "
            "collector's replies come back as ERXUDP lines. See docs/commands/wisun-emulator.md."
        ),
        epilog=(
            "fault SPEC (comma-separated): link_down=DUR@AT (repeatable), arib=DUR@AT "
            "(repeatable), drop=P, lose=P, garbage=P, truncate=P, session_expiry=DUR, "
            "join_fail=N, seed=N. DUR/AT: number with unit s, m or h, in emulated time. "
            "Example: link_down=600s@3600s,drop=0.05,garbage=0.01,session_expiry=7200s,seed=1"
        ),
    )
    p.add_argument("--pty-link", required=True, metavar="PATH",
                   help="symlink to create, pointing at the pty's slave end (the agent's port); "
                   "an existing PATH is replaced only if it is a stale link into /dev/pts/; "
                   "removed at exit")
    p.add_argument("--collector", required=True, type=cli_args.hostport, metavar="HOST:PORT",
                   help="UDP address of the collector (loopback)")
    p.add_argument("--faults", default="", metavar="SPEC", help="fault injection, see below")
    p.add_argument("--module", default="bp35a1", metavar="ID|FILE",
                   help="module profile: %s, or a JSON file (default bp35a1)"
                   % ", ".join(profile_ids()))
    p.add_argument("--time-scale", type=cli_args.positive_float, default=1.0, metavar="X",
                   help="multiply latencies and fault times by X (0.01 = 100x faster)")
    p.add_argument("--duration", type=cli_args.positive_float, default=None, metavar="SECONDS",
                   help="stop after this many real seconds (default: until SIGTERM/SIGINT)")
    p.add_argument("--stats-json", default=None, metavar="FILE", type=cli_args.output_file,
                   help="write counters (forwarded, dropped, joins, ...) here on exit")
    p.set_defaults(func=run)


def run(args):
    try:
        faults = parse_faults(args.faults)
        profile = load_profile(args.module)
        emulator_clock(args.time_scale)  # a scale the clock cannot run is a usage error
    except (FaultSpecError, OSError, ValueError) as e:
        print("wisun-emulator: %s" % e, file=sys.stderr)
        return USAGE
    done = threading.Event()
    signals = []

    def _stop(signum, frame):
        signals.append(signum)
        done.set()

    # handlers first: a SIGTERM between making the link and serving must still remove it
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        master, slave, path = open_pty(args.pty_link)
    except (PtyLinkError, OSError) as e:
        print("wisun-emulator: %s" % e, file=sys.stderr)
        return USAGE
    try:
        emu = WisunEmulator(profile, args.collector, faults, args.time_scale, master_fd=master)
        emu.slave, emu.slave_path = slave, path
        emu.start()
        # the clock field says exactly when emulated time 0 was (docs/commands/wisun-emulator.md)
        print(START_PREFIX + "%s -> %s, module %s, collector %s:%d, clock %s"
              % (args.pty_link, path, profile["id"], args.collector[0], args.collector[1],
                 emu.clock_line()), flush=True)
        done.wait(args.duration)
        emu.stop()
    finally:
        remove_link(args.pty_link, path)
    stats = dict(emu.stats, flash_writes=emu.flash_writes)
    text = json.dumps(stats, sort_keys=True)
    if args.stats_json:
        try:
            write_text(args.stats_json, text + "\n")
        except OSError as e:  # checked at start; it went away during the run
            print("wisun-emulator: cannot write %s: %s; counters: %s" % (args.stats_json, e, text),
                  file=sys.stderr)
            return USAGE
    print(text, file=sys.stderr)
    return OK
