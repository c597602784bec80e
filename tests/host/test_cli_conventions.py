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
    r = smeter("complete", "--da", "x", "--out", "y")
    assert r.returncode == 2
    assert "usage: smeter complete" in r.stderr and "--da" in r.stderr


def test_an_unknown_option_prints_the_subcommands_usage():
    r = smeter("purge", "--db", "x.db", "--bogus")
    assert r.returncode == 2
    assert r.stderr.startswith("usage: smeter purge") and "unrecognized arguments: --bogus" in r.stderr


@pytest.mark.parametrize("argv", [
    ["emulate", "inverter", "--tcp", "127.0.0.1:99999"],
    ["collect", "--db", "x.db", "--keys", "k.json", "--listen", "127.0.0.1:99999"],
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


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "garbage.db").write_bytes(bytes(range(256)) * 12)
    (d / "keys.json").write_text('{"format": "smeter-keys/1", "keys": []}')
    (d / "a_file").write_text("x")
    from host_tools.collector.store import Store

    Store(str(d / "store.db")).close()
    r = smeter("gen-tso-data", "--resources", "60", "--out", str(d / "set"), "-q")
    assert r.returncode == 0, r.stderr
    return d


def _one_line_usage_error(r):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stdout == ""
    return r.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("argv,msg", [
    (["collect", "--db", "{d}/garbage.db", "--timeliness"], "not a collector database"),
    (["status", "--file", "{d}/keys.json"], "not an agent status file (no field 'counters')"),
    (["purge", "--db", "{d}/store.db", "--now", "nan"], "not between 1970 and 9999"),
    (["complete", "--db", "{d}/store.db", "--now", "1e30"], "not between 1970 and 9999"),
    (["agent", "--config", "{d}/keys.json", "--data-heap", "1K"], "below the minimum 26K"),
    (["demo", "--hours", "1e9", "--out", "{d}/demo"], "--hours must be at most"),
    (["demo", "--start", "2019-12-31", "--out", "{d}/demo"], "outside the edge time base"),
    (["demo", "--out", "{d}/a_file"], "exists and is not a directory"),
    (["emulate", "inverter", "--tcp", "127.0.0.1:0", "--truth", "{d}"], "is a directory"),
    (["wisun-emulator", "--pty-link", "{d}/l", "--collector", "127.0.0.1:9",
      "--stats-json", "{d}/no/stats.json"], "does not exist"),
    (["gen-tso-data", "--resources", "5", "--out", "{d}/a_file"], "not a directory"),
    (["correct", "--data", "{d}/set", "--pattern", "1", "--out", "{d}"], "is a directory"),
    (["settle", "--data", "{d}/set", "--out", "{d}/no/x.csv"], "does not exist"),
    (["complete", "--data", "{d}/set", "--out", "{d}/a_file"], "not a directory"),
    (["replay", "{d}/no_such_trace.csv"], "no_such_trace.csv"),
])
def test_bad_inputs_and_outputs_are_one_line_before_any_work(files, argv, msg):
    r = smeter(*[a.format(d=files) for a in argv])
    assert msg in _one_line_usage_error(r)
    assert "loaded" not in r.stderr and "generated" not in r.stderr  # no work was done


def test_json_reports_parse_and_data_stays_on_stdout(files):
    import json

    d = str(files)
    r = smeter("complete", "--db", d + "/store.db", "--now", "1800000000", "--json")
    assert r.returncode == 0 and set(json.loads(r.stdout)) >= {"counts", "timeliness"}
    r = smeter("complete", "--db", d + "/store.db", "--now", "1800000000")
    assert r.stdout.startswith("date,due,on_time")  # CSV only: the prose went to stderr
    assert "preliminary values issued" in r.stderr
    r = smeter("collect", "--db", d + "/store.db", "--timeliness", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == []
    r = smeter("correct", "--data", d + "/set", "--pattern", "2", "--json", "-q")
    assert r.returncode == 0 and r.stderr == ""
    assert json.loads(r.stdout)["days"][0]["bgs"]
    r = smeter("settle", "--data", d + "/set", "--json")
    assert r.returncode == 0
    day = json.loads(r.stdout)["days"][0]
    assert sum(b["charge_sen"] for b in day["bgs"]) == day["total"]["charge_sen"]
