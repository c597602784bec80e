"""Conventions every subcommand gets from host_tools/cli.py and host_tools/cli_args.py
(docs/commands/conventions.md), run through the real `smeter` entry point."""
import socket
import subprocess
import sys

import pytest

from conftest import ROOT
from host_tools.cli import COMMANDS, build_parser

CLI = [sys.executable, "-m", "host_tools.cli"]


def smeter(*args, timeout=60):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def test_version():
    r = smeter("--version")
    assert r.returncode == 0 and r.stdout.startswith("smeter ") and r.stdout.split()[1][0].isdigit()


def subparsers():
    p = build_parser()
    return p._subparsers._group_actions[0].choices


def test_every_parser_refuses_abbreviations_and_has_v_and_q():
    subs = subparsers()
    assert len(subs) >= len(COMMANDS)
    for name, p in subs.items():
        assert p.allow_abbrev is False, name
        assert "-v" in p._option_string_actions and "-q" in p._option_string_actions, name


def test_an_abbreviated_option_is_refused_not_guessed():
    r = smeter("emulate", "inverter", "--tc", "127.0.0.1:0")
    assert r.returncode == 2
    assert "usage: smeter emulate" in r.stderr and "--tc" in r.stderr


def test_an_unknown_option_prints_the_subcommands_usage():
    r = smeter("purge", "--db", "x.db", "--bogus")
    assert r.returncode == 2
    assert r.stderr.startswith("usage: smeter purge") and "unrecognized arguments: --bogus" in r.stderr


@pytest.mark.parametrize("argv", [
    ["emulate", "inverter", "--tcp", "127.0.0.1:99999"],
    ["wisun-emulator", "--pty-link", "/tmp/x", "--collector", "127.0.0.1:99999"],
    ["emulate", "inverter", "--tcp", "127.0.0.1:0", "--speed", "1e308"],
    ["emulate", "inverter", "--tcp", "127.0.0.1:0", "--profile", "pv:peak=-5"],
    ["emulate", "inverter", "--tcp", "127.0.0.1:0", "--start", "2019-06-01"],
    ["wisun-emulator", "--pty-link", "/tmp/x", "--collector", "127.0.0.1:9", "--duration", "-5"],
])
def test_out_of_range_values_are_one_line_and_status_2(argv):
    r = smeter(*argv)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(("smeter ", "emulate:", "wisun-emulator:"))


def test_emulate_on_a_port_in_use_is_an_environment_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = smeter("emulate", "inverter", "--tcp", "127.0.0.1:%d" % port)
    assert r.returncode == 4, r.stderr
    assert "Traceback" not in r.stderr
    assert "cannot listen on 127.0.0.1:%d: Address already in use" % port in r.stderr

