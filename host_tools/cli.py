"""`smeter`: one console command, one module per subcommand.

Each module named in COMMANDS has `register(subparsers)` which adds its parser and sets
`func` to a callable taking the parsed args and returning an exit code (host_tools/exit_codes.py).
Conventions every subcommand gets from here (docs/commands/conventions.md): `--version`,
`-v/-q` log levels, no abbreviated options, an unknown option answered with the
subcommand's own usage, Ctrl-C/SIGTERM -> 130.
"""
import argparse
import importlib
import signal
import sys
import threading

from host_tools import cli_log, exit_codes

COMMANDS = [
    "host_tools.commands.read",
    "host_tools.commands.replay",
    "host_tools.commands.verify",
    "host_tools.commands.emulate",
    "host_tools.commands.collect",
    "host_tools.commands.wisun_emulator",
    "host_tools.commands.correct",
    "host_tools.commands.gen_tso_data",
    "host_tools.commands.agent",
    "host_tools.commands.status",
    "host_tools.commands.demo",
    "host_tools.commands.firmware",
    "host_tools.commands.settle",
    "host_tools.commands.complete",
    "host_tools.commands.purge",
    "host_tools.commands.keys",
    "host_tools.commands.seal",
]


class Parser(argparse.ArgumentParser):
    """No silent abbreviation (`--out` must not quietly mean `--out-dir`), and a subcommand
    names its own usage when it meets an option it does not know."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        self.is_subcommand = kwargs.pop("is_subcommand", True)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        if extras and self.is_subcommand:
            self.error("unrecognized arguments: %s" % " ".join(extras))
        return ns, extras


def version():
    try:
        from importlib.metadata import version as dist_version

        return dist_version("smeter")
    except Exception:  # running from a source tree that was never installed
        return "unknown"


def _add_verbosity(p, default):
    if "-v" not in p._option_string_actions:
        p.add_argument("-v", "--verbose", action="count", default=default,
                       help="more log lines on stderr (-vv: debug, including libraries)")
    if "-q" not in p._option_string_actions:
        p.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="only errors on stderr (no progress or info lines)")


def build_parser():
    parser = Parser(
        prog="smeter", is_subcommand=False,
        description="Special-meter (特例計量器) agent tools: read devices, replay traces, "
        "emulate, collect, verify and settle. Exit statuses: docs/commands/exit-codes.md.",
    )
    parser.add_argument("--version", action="version", version="smeter %s" % version())
    _add_verbosity(parser, 0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    for p in sub.choices.values():
        # SUPPRESS: `smeter -v demo` keeps its -v when the subparser's own default is applied
        _add_verbosity(p, argparse.SUPPRESS)
    return parser


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cli_log.configure(getattr(args, "verbose", 0) or 0, bool(getattr(args, "quiet", False)))
    previous = None
    if threading.current_thread() is threading.main_thread():
        # commands clean up on SIGTERM as on Ctrl-C (finally blocks, temporary outputs)
        previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        # every output file is written atomically (host_tools/atomic_output.py)
        print("smeter %s: interrupted; outputs not finished were not written (previous "
              "versions left unchanged)" % args.command, file=sys.stderr)
        return exit_codes.INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
