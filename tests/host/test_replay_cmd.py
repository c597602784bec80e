"""`smeter replay` end to end on the shipped sample, on both runtimes, and on bad traces."""
import csv
import io
import os
import subprocess
import sys

import pytest

from conftest import ROOT, micropython_or_fail
from host_tools import micropython
from host_tools.cli import main

SAMPLE = os.path.join(ROOT, "samples", "pv_day_1s.csv")


def smeter(*argv):
    """Run `smeter` in a subprocess (stdout, stderr as text, exit code)."""
    proc = subprocess.run([sys.executable, "-m", "host_tools.cli"] + list(argv),
                          capture_output=True, cwd=ROOT, timeout=300)
    return proc.stdout.decode(), proc.stderr.decode(), proc.returncode


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory):
    """The sample replayed on both runtimes at once (two processes, so the slow one overlaps).

    The MicroPython half is None where the unix port cannot exist (see micropython_or_fail)."""
    mp_out = tmp_path_factory.mktemp("mp") / "slots.csv"
    cmd = [sys.executable, "-m", "host_tools.cli", "replay", SAMPLE]
    mp = None
    if micropython.find() is not None:
        mp = subprocess.Popen(cmd + ["--runtime", "micropython", "--out", str(mp_out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    cp = subprocess.run(cmd, capture_output=True, cwd=ROOT, timeout=300)
    mp_result = None
    if mp is not None:
        mo, me = mp.communicate(timeout=300)
        mp_result = (mp.returncode, mo, mp_out.read_bytes() if mp_out.exists() else b"", me.decode())
    return (cp.stdout.decode(), cp.stderr.decode(), cp.returncode), mp_result


@pytest.fixture(scope="module")
def sample_cpython(sample_runs):
    return sample_runs[0]


@pytest.fixture(scope="module")
def sample_micropython(sample_runs):
    micropython_or_fail()
    rc, stdout, out_bytes, err = sample_runs[1]
    assert rc == 0, err
    assert stdout == b""
    return out_bytes, err


def sample_register_totals():
    with open(SAMPLE, newline="") as f:
        rows = list(csv.DictReader(f))
    return (int(rows[-1]["import_wh"]) - int(rows[0]["import_wh"]),
            int(rows[-1]["export_wh"]) - int(rows[0]["export_wh"]))


def test_sample_gives_48_clean_slots_matching_the_registers(sample_cpython):
    out, err, rc = sample_cpython
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["slot"]) for r in rows] == list(range(1, 49))
    assert rows[0]["slot_start"] == "2026-05-15T00:00:00+09:00"
    assert rows[47]["slot_start"] == "2026-05-15T23:30:00+09:00"
    assert all(r["flags"] == "" for r in rows)
    imp, exp = sample_register_totals()
    assert sum(int(r["import_wh"]) for r in rows) == imp
    assert sum(int(r["export_wh"]) for r in rows) == exp
    # daylight export only, standby import at night
    assert all(int(r["export_wh"]) == 0 for r in rows[:9])
    assert "48 slots" in err and "export %.3f kWh" % (exp / 1000) in err


def test_sample_is_byte_identical_on_micropython_at_the_default_heap(sample_cpython, sample_micropython):
    mp_bytes, err = sample_micropython
    assert mp_bytes == sample_cpython[0].encode()
    assert "on micropython" in err


def test_map_without_import_register_uses_the_power_integral(tmp_path):
    # 10 minutes at 1 s: 360 W import with a matching import register, export register flat.
    lines = ["ts,power_w,import_wh,export_wh"]
    lines += ["2026-05-15T00:%02d:%02d+09:00,360,%d.%03d,5" % (i // 60, i % 60, (i // 10), (i % 10) * 100)
              for i in range(601)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    out = tmp_path / "s.csv"
    assert main(["replay", path, "--map", "sunspec_inverter_103", "--out", str(out), "-q"]) == 0
    row = next(csv.DictReader(out.open()))
    assert row["import_wh"] == "60" and row["export_wh"] == "0"
    assert main(["replay", path, "--out", str(out), "-q"]) == 0
    assert next(csv.DictReader(out.open()))["import_wh"] == "60"
    # a register the map lacks must not sneak in: with an inconsistent register, power wins
    lines = [ln.replace(",360,", ",720,") if i else ln for i, ln in enumerate(lines)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert main(["replay", path, "--map", "sunspec_inverter_103", "--out", str(out), "-q"]) == 0
    assert next(csv.DictReader(out.open()))["import_wh"] == "120"
    assert main(["replay", path, "--out", str(out), "-q"]) == 0
    row = next(csv.DictReader(out.open()))
    assert row["import_wh"] == "60" and "mismatch" in row["flags"]


def write(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_bad_trace_exits_2_with_line_number(tmp_path):
    path = write(tmp_path, "ts,power_w\n2026-05-15T00:00:01+09:00,1\n2026-05-15T00:00:00+09:00,1\n")
    o, e, rc = smeter("replay", path)
    assert rc == 2 and "t.csv:3:" in e and "backwards" in e


def test_lenient_flags_the_clock_step_instead(tmp_path):
    lines = ["ts,power_w"] + ["2026-05-15T00:%02d:00+09:00,100" % m for m in range(10)]
    lines.append("2026-05-15T00:05:30+09:00,100")
    path = write(tmp_path, "\n".join(lines) + "\n")
    o, e, rc = smeter("replay", path, "--lenient", "-q")
    assert rc == 0, e
    rows = list(csv.DictReader(io.StringIO(o)))
    assert "clock_step" in rows[0]["flags"]


def test_gap_slots_are_listed_as_missing(tmp_path):
    lines = ["ts,power_w"] + ["2026-05-15T00:%02d:00+09:00,1800" % m for m in range(0, 31)]
    lines += ["2026-05-15T02:%02d:00+09:00,1800" % m for m in range(0, 31)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    o, e, rc = smeter("replay", path, "--max-gap-s", "60")
    assert rc == 0, e
    rows = list(csv.DictReader(io.StringIO(o)))
    assert [r["slot"] for r in rows] == ["1", "2", "3", "4", "5"]  # 02:30 alone: not written
    assert rows[0]["import_wh"] == "900" and rows[0]["flags"] == ""
    assert rows[2]["import_wh"] == "" and rows[2]["flags"] == "missing"
    assert rows[4]["import_wh"] == "900" and rows[4]["flags"] == ""
    assert rows[1]["flags"] == "partial|missing"  # only the 00:30 sample, no interval


def test_too_small_heap_fails_cleanly(tmp_path):
    micropython_or_fail()
    path = write(tmp_path, "ts,power_w\n2026-05-15T00:00:00+09:00,1\n2026-05-15T00:00:01+09:00,1\n")
    o, e, rc = smeter("replay", path, "--runtime", "micropython", "--heap", "4K")
    assert rc == 4 and "MemoryError" in e and "4K" in e  # the child process died


def test_unwritable_out_is_a_clean_error(tmp_path):
    path = write(tmp_path, "ts,power_w\n2026-05-15T00:00:00+09:00,1\n2026-05-15T00:00:01+09:00,1\n")
    o, e, rc = smeter("replay", path, "--out", str(tmp_path / "no" / "such" / "dir.csv"))
    assert rc == 2 and "cannot write" in e and "Traceback" not in e
