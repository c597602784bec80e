"""`smeter wisun-emulator`: a Wi-SUN module on a pseudo-terminal, bridged to the collector."""
import argparse
import json
import signal
import sys
import threading

from host_tools.wisun_emulator import (
    FaultSpecError, WisunEmulator, load_profile, open_pty, parse_faults, profile_ids,
)


def _hostport(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    try:
        return host, int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("bad port in %r" % text)


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
                   help="symlink to create, pointing at the pty's slave end (the agent's port)")
    p.add_argument("--collector", required=True, type=_hostport, metavar="HOST:PORT",
                   help="UDP address of the collector (loopback)")
    p.add_argument("--faults", default="", metavar="SPEC", help="fault injection, see below")
    p.add_argument("--module", default="bp35a1", metavar="ID|FILE",
                   help="module profile: %s, or a JSON file (default bp35a1)"
                   % ", ".join(profile_ids()))
    p.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                   help="multiply latencies and fault times by X (0.01 = 100x faster)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this many real seconds (default: until SIGTERM/SIGINT)")
    p.add_argument("--stats-json", default=None, metavar="FILE",
                   help="write counters (forwarded, dropped, joins, ...) here on exit")
    p.set_defaults(func=run)


def run(args):
    try:
        faults = parse_faults(args.faults)
        profile = load_profile(args.module)
    except (FaultSpecError, OSError, ValueError) as e:
        print("wisun-emulator: %s" % e, file=sys.stderr)
        return 2
    if args.time_scale <= 0:
        print("wisun-emulator: --time-scale must be > 0", file=sys.stderr)
        return 2
    master, slave, path = open_pty(args.pty_link)
    emu = WisunEmulator(profile, args.collector, faults, args.time_scale, master_fd=master)
    emu.slave, emu.slave_path = slave, path
    done = threading.Event()

    def _stop(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    emu.start()
    print("wisun-emulator: %s -> %s, module %s, collector %s:%d"
          % (args.pty_link, path, profile["id"], args.collector[0], args.collector[1]), flush=True)
    done.wait(args.duration)
    emu.stop()
    stats = dict(emu.stats, flash_writes=emu.flash_writes)
    text = json.dumps(stats, sort_keys=True)
    if args.stats_json:
        with open(args.stats_json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text, file=sys.stderr)
    return 0
