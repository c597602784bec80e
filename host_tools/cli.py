"""`smeter`: one console command, one module per subcommand.

Each module named in COMMANDS has `register(subparsers)` which adds its parser and sets
`func` to a callable taking the parsed args and returning an exit code.
"""
import argparse
import importlib
import sys

COMMANDS = [
    "host_tools.read_cmd",
    "host_tools.replay_cmd", "host_tools.verify_cmd",
    "host_tools.emulate_cmd",
    "host_tools.collect_cmd",
    "host_tools.wisun_emulator_cmd",
    "host_tools.correct_cmd", "host_tools.gen_tso_data_cmd",
    "host_tools.agent_cmd", "host_tools.status_cmd",
    "host_tools.demo_cmd",
    "host_tools.firmware_cmd",
    "host_tools.settle_cmd", "host_tools.complete_cmd", "host_tools.purge_cmd",
    "host_tools.keys_cmd", "host_tools.seal_cmd",
]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="smeter",
        description="Special-meter (特例計量器) agent tools: read devices, replay traces, "
        "emulate, collect, verify and settle.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
