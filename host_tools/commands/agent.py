"""`smeter agent`: run the metering agent on this host, under MicroPython's unix port or CPython."""
import argparse
import os
import sys

from host_tools import cli_args
from host_tools.agent_process import command
from host_tools.exit_codes import ENVIRONMENT, USAGE

# Below this the agent cannot even build its buffers with the example config (MemoryError
# at start); 26K is also the smallest data heap that ran a full day (docs/agent.md).
MIN_DATA_HEAP = 26 * 1024

DESCRIPTION = """\
Run the special-meter agent (特例計量器エージェント) as a host process: poll the device over
Modbus TCP or RTU, integrate 30-minute slots, persist them to the config's data_dir, and
send them through the Wi-SUN module on its serial port to the collector.

The process becomes the agent (exec): its pid is the agent's pid, SIGKILL kills the agent
itself (the kill-safety tests rely on that), and its stdout carries the structured log
lines (`t=EDGE_S ev=EVENT key=value ...`, docs/agent.md). `smeter status` reads the status
file it keeps. Exit codes: 0 after --until/--for, 2 for a bad option or config (every bad
field is named on stdout as ev=config_error), 4 when `micropython` is not installed.
"""

EPILOG = """\
examples:
  smeter agent --config firmware/unix/agent.example.json
  smeter agent --config run/agent.json --clock run/clock --runtime micropython --data-heap 32K
  smeter agent --config run/agent.json --clock run/clock --for 86400   # one simulated day
  smeter agent --config run/agent.json --runtime qemu   # the Cortex-M3 firmware (RTU only)
"""


def register(subparsers):
    p = subparsers.add_parser(
        "agent", help="run the metering agent on this host (MicroPython unix port or CPython)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, metavar="FILE", help="agent config JSON (docs/config.md)")
    p.add_argument("--runtime", choices=("auto", "micropython", "cpython", "qemu"), default="auto",
                   help="interpreter: the real MicroPython unix port, CPython, or qemu: the "
                   "MPS2-AN385 firmware (Cortex-M3) under qemu-system-arm, built by `smeter "
                   "firmware build` (default: micropython when installed)")
    p.add_argument("--heap", default="512K", metavar="SIZE", type=cli_args.byte_size(64 * 1024),
                   help="micropython -X heapsize (default 512K: the unix port keeps bytecode in the heap; "
                   "about 200K of it is the agent's code)")
    p.add_argument("--data-heap", metavar="SIZE", type=cli_args.byte_size(MIN_DATA_HEAP),
                   help="leave only SIZE free heap after the imports, like a board with frozen code "
                   "(e.g. 32K; at least %dK, the smallest that ran a day: docs/agent.md)"
                   % (MIN_DATA_HEAP // 1024))
    p.add_argument("--clock", metavar="FILE",
                   help="shared simulated clock file (smeter emulate --clock) instead of the system clock")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--until", type=cli_args.nonnegative_int, metavar="EDGE_S",
                      help="stop at this edge second")
    stop.add_argument("--for", dest="for_s", type=cli_args.positive_int, metavar="SECONDS",
                      help="stop after this much metering-clock time")
    p.set_defaults(func=run)
    return p


def run(args):
    if not os.path.exists(args.config):
        print("smeter agent: no config file %s" % args.config, file=sys.stderr)
        return USAGE
    try:
        argv, env = command(args.config, args.runtime, args.heap, args.data_heap, args.clock,
                            args.until, args.for_s)
    except FileNotFoundError as e:
        print("smeter agent: %s" % e, file=sys.stderr)
        return ENVIRONMENT
    except ValueError as e:
        print("smeter agent: %s: %s" % (args.config, e), file=sys.stderr)
        return USAGE
    except Exception as e:  # the firmware could not be built (qemu runtime)
        from host_tools.firmware.build import BuildError

        if not isinstance(e, BuildError):
            raise
        print("smeter agent: %s" % e, file=sys.stderr)
        return e.exit_code
    sys.stdout.flush()
    os.execve(argv[0], argv, env)
