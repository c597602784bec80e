"""`smeter firmware build`: MicroPython with the agent frozen, for the MPS2-AN385 board
(Cortex-M3, run by qemu-system-arm) or the unix port (docs/commands/firmware.md)."""
import argparse
import json
import sys

from host_tools import cli_args, exit_codes
from host_tools.firmware import build as fw

DESCRIPTION = """\
Build MicroPython v1.28.0 from source with the agent frozen through firmware/manifest.py,
out of tree: objects go to .cache/firmware/<board>-<input hash>/ (or --out DIR), never into
the source trees. A second build of the same inputs is a cache hit; two builds give the same
image (same SHA-256).

Sources: --micropython/--lib, else $SMETER_MICROPYTHON / $SMETER_MICROPYTHON_LIB, else
../shared/vendor/micropython and ../shared/vendor/micropython-lib beside the project.
Elsewhere: git clone --depth 1 -b v1.28.0 https://github.com/micropython/micropython
           git clone --depth 1 -b v1.28.0 https://github.com/micropython/micropython-lib
"""
EPILOG = """\
Prints board, firmware path, SHA-256 of the image, text/data/bss bytes, frozen bytecode
bytes and the configured heap. Exit 0 built (or cached), 4 the compile failed (log named),
2 bad option, 4 a missing tool or source tree (bash scripts/install-debian-deps.sh).
"""


def register(subparsers):
    p = subparsers.add_parser("firmware", help="build MicroPython firmware with the agent frozen",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="firmware_command", metavar="ACTION")
    sub.required = True
    b = sub.add_parser("build", help="build (or find cached) firmware", description=DESCRIPTION,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--board", required=True, choices=fw.BOARDS,
                   help="mps2-an385: Cortex-M3 image for qemu-system-arm; unix: the host port")
    b.add_argument("--out", metavar="DIR", help="build folder (default .cache/firmware/<board>-<hash>)")
    b.add_argument("--heap", type=cli_args.board_heap, metavar="SIZE",
                   help="MICROPY_HEAP_SIZE of the board image (default 48K: a whole simulated day runs there, docs/flashing.md#memory; the agent's whole heap)")
    b.add_argument("--micropython", metavar="DIR", help="MicroPython source tree (v1.28.0)")
    b.add_argument("--lib", metavar="DIR", help="micropython-lib tree (v1.28.0)")
    b.add_argument("--json", action="store_true", help="print the report as one JSON object")
    b.set_defaults(func=run_build)
    return p


def run_build(args):
    def progress(msg):
        print("smeter firmware: " + msg, file=sys.stderr, flush=True)

    try:
        rep = fw.build(args.board, args.micropython, args.lib, args.heap, args.out, progress)
    except fw.BuildError as e:
        print("smeter firmware: %s" % e, file=sys.stderr)
        return e.exit_code
    if args.json:
        print(json.dumps(rep, sort_keys=True))
        return exit_codes.OK
    heap = "%d" % rep["heap_size"] if rep["heap_size"] else "set at run time (-X heapsize)"
    print("board          %s%s" % (rep["board"], " (cached)" if rep["cached"] else ""))
    print("firmware       %s" % rep["firmware"])
    print("sha256         %s  (%s)" % (rep["sha256"], rep["image"]))
    print("text/data/bss  %d / %d / %d bytes" % (rep["text"], rep["data"], rep["bss"]))
    print("frozen         %d bytes of bytecode" % rep["frozen_bytes"])
    print("heap           %s" % heap)
    return exit_codes.OK
