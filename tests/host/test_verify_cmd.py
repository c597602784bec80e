"""`smeter verify` end to end: the shipped sample on both runtimes, injected meter errors,
flagged slots, the report's reproducibility fields, exit codes."""
import csv
import hashlib
import html
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import threading

import pytest

from conftest import ROOT, micropython_or_fail
from host_tools.cli import build_parser, main
from host_tools.verify import compare as cmp
from host_tools.verify import reference as R
from host_tools.verify import report
from host_tools.verify import verification

SAMPLE = os.path.join(ROOT, "samples", "pv_day_1s.csv")
DECL = os.path.join(ROOT, "samples", "declarations")
REFM = ["--reference-meter", os.path.join(DECL, "reference_meter.json")]
CHARGER = os.path.join(ROOT, "samples", "charger_evening_7s.csv")


def load_sample(name):
    """A script of samples/ (not a package) as a module."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "samples", name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_generator():
    return load_sample("make_meter_error")


def args_for(*argv):
    return build_parser().parse_args(["verify"] + list(argv))


@pytest.fixture(scope="module")
def sample_both():
    """The sample's device values on both runtimes (MicroPython in a thread meanwhile),
    and the exact reference computed once."""
    micropython_or_fail()
    out = {}

    def mp():
        out["micropython"] = verification.replay_device(args_for(SAMPLE, "--runtime", "micropython"))

    th = threading.Thread(target=mp)
    th.start()
    out["cpython"] = verification.replay_device(args_for(SAMPLE))
    samples = R.read_samples(SAMPLE)
    th.join()
    return out, samples, R.reference(samples, 60000)


def run(dev_text, ref_slots, tol, dirs=("imp", "exp")):
    classes = cmp.load_classes()
    return cmp.compare(cmp.parse_device_csv(dev_text), ref_slots, tol,
                       classes["comparison"]["min_energy_wh"],
                       classes["comparison"]["resolution_wh"], list(dirs))


def test_sample_passes_n3_identically_on_both_runtimes(sample_both):
    dev, samples, ref = sample_both
    assert dev["cpython"] == dev["micropython"]
    classes = cmp.load_classes()
    for stage in ("before-use", "in-use"):
        tol, text = cmp.resolve_tolerance(classes, "n3", stage, None)
        a = run(dev["cpython"], ref, tol)
        b = run(dev["micropython"], ref, tol)
        assert a.verdict == "pass", a.verdict_reasons
        assert report.csv_text(a) == report.csv_text(b)
        assert len(a.compared) == 48 and not a.excluded
    # Readings at every boundary: the register delta is exact, the device must hit it.
    assert all(r.err[d] == 0 for r in a.rows for d in a.directions)
    assert a.totals["exp"]["dev"] == 33654 and a.totals["imp"]["dev"] == 30


def test_register_reference_is_the_register_delta(sample_both):
    _, _, ref = sample_both
    with open(SAMPLE, newline="") as f:
        rows = list(csv.DictReader(f))
    k0 = min(ref)
    assert len(ref) == 48
    for i in range(48):
        a, b = rows[i * 1800], rows[(i + 1) * 1800]
        assert ref[k0 + i].imp == int(b["import_wh"]) - int(a["import_wh"])
        assert ref[k0 + i].exp == int(b["export_wh"]) - int(a["export_wh"])


def test_charger_register_trace_off_the_boundaries(tmp_path):
    """Readings every 7 s never hit a boundary: register deltas are split by time. The
    generator is deterministic and the committed sample is its output."""
    gen = tmp_path / "charger.csv"
    spec = importlib.util.spec_from_file_location(
        "make_charger_trace", os.path.join(ROOT, "samples", "make_charger_trace.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(str(gen))
    assert gen.read_bytes() == open(CHARGER, "rb").read()
    micropython_or_fail()
    dev = {rt: verification.replay_device(args_for(CHARGER, "--runtime", rt))
           for rt in ("cpython", "micropython")}
    assert dev["cpython"] == dev["micropython"]
    samples = R.read_samples(CHARGER)
    ref = R.reference(samples, 60000)
    # Reference = the register delta between the (interpolated) boundary readings.
    t, v = samples.t, [samples.value("imp", i) for i in range(len(samples))]
    k0 = min(ref)

    def at(x):  # the register linearly interpolated at edge ms x
        j = max(j for j in range(len(t)) if t[j] <= x)
        if t[j] == x:
            return v[j]
        return v[j] + (v[j + 1] - v[j]) * (x - t[j]) / (t[j + 1] - t[j])

    for k in sorted(ref):
        assert ref[k].imp == at((k + 1) * R.SLOT_MS) - at(k * R.SLOT_MS), k - k0
    tol, _ = cmp.resolve_tolerance(cmp.load_classes(), "n3", "before-use", None)
    res = run(dev["micropython"], ref, tol)
    assert res.verdict == "pass" and len(res.compared) == 8
    errs = [abs(r.err["imp"]) for r in res.rows]
    assert max(errs) < 1 and any(e != 0 for e in errs)  # whole Wh with carry: under one digit
    assert abs(res.totals["imp"]["err"]) < 1


@pytest.fixture(scope="module")
def gain_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("gain")
    return load_generator().make(str(d), "gain", 26, "1.05", "11:00", "15:00", 10)


def test_gain_error_fails_with_the_faulty_slot(gain_pair, capsys):
    ref_path, dev_path = gain_pair
    rc = main(["verify", dev_path, "--reference", ref_path] + REFM)
    out = capsys.readouterr().out
    assert rc == 1, out
    assert out.startswith("smeter verify: ACCURACY FAIL")
    assert re.search(r"worst slot 26 \(2026-05-15T12:30:00\+09:00\) export: .*\(\+4\.9\d\d %\)", out)
    fails = [line for line in out.splitlines() if line.startswith("  FAIL")]
    assert len(fails) == 1 and fails[0].startswith("  FAIL: slot 26 "), out
    assert "8 slots: 8 compared, 0 excluded" in out
    # A wider declared tolerance accepts the same meter; the reference itself passes.
    assert main(["verify", dev_path, "--reference", ref_path, "--tolerance", "6%", "-q"]
                + REFM) == 0
    capsys.readouterr()
    # The reference trace on its own is only integration-checked: consistent, exit 3 (no
    # accuracy verdict), 0 only when an integration check is all that was asked for.
    assert main(["verify", ref_path, "-q"]) == 3
    assert main(["verify", ref_path, "-q", "--integration-only"]) == 0
    out = capsys.readouterr().out
    assert "INTEGRATION CHECK CONSISTENT (no accuracy verdict" in out and "PASS" not in out


def test_register_drift_fails_with_the_faulty_slot(tmp_path, capsys):
    ref_path, dev_path = load_generator().make(str(tmp_path), "drift", 29, "1.04", "12:00",
                                               "16:00", 10)
    rc = main(["verify", dev_path, "--reference", ref_path] + REFM)
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "worst slot 29 (2026-05-15T14:00:00+09:00) export" in out
    assert "8 slots: 8 compared, 0 excluded" in out  # 4 % stays under the 5 % mismatch check
    assert [line for line in out.splitlines() if line.startswith("  FAIL")][0].startswith(
        "  FAIL: slot 29 ")
    # The reference trace's registers and power agree: integration-consistent (exit 3).
    assert main(["verify", ref_path, "-q"]) == 3
    capsys.readouterr()


def test_a_drift_the_device_flags_still_fails(tmp_path, capsys):
    """8 % drift trips the device's 5 % register-vs-power check: the slot is flagged
    `mismatch` and excluded, and the flag itself fails the verdict (--fail-on-flags)."""
    ref_path, dev_path = load_generator().make(str(tmp_path), "drift", 29, "1.08", "13:00",
                                               "15:00", 10)
    rc = main(["verify", dev_path, "--reference", ref_path] + REFM)
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "excluded slot 29 (2026-05-15T14:00:00+09:00): device flag mismatch" in out
    assert "FAIL: slot 29 (2026-05-15T14:00:00+09:00): flagged mismatch by the device" in out
    assert main(["verify", dev_path, "--reference", ref_path, "--fail-on-flags", "", "-q",
                 "--min-coverage-pct", "75"] + REFM) == 0
    assert main(["verify", dev_path, "--reference", ref_path, "--fail-on-flags", "", "-q"]
                + REFM) == 3  # 3 of 4 slots compared: below the 90 % coverage
    assert main(["verify", dev_path, "--reference", ref_path, "--fail-on-flags", "bogus"]
                + REFM) == 2
    capsys.readouterr()


def test_slot_csv_of_a_reference_meter(gain_pair, tmp_path, capsys):
    ref_path, dev_path = gain_pair
    slots = tmp_path / "ref_slots.csv"
    assert main(["replay", ref_path, "--out", str(slots), "-q"]) == 0
    rc = main(["verify", dev_path, "--reference", str(slots)] + REFM)
    out = capsys.readouterr().out
    assert rc == 1 and "worst slot 26 " in out, out


@pytest.fixture(scope="module")
def gap_trace(gain_pair, tmp_path_factory):
    """The true trace with 120 s missing in slot 27 (13:10:00 -> 13:12:00)."""
    with open(gain_pair[0]) as f:
        lines = f.read().splitlines()
    keep = [ln for ln in lines if not ("T13:10:10" <= ln[10:19] <= "T13:11:50")]
    assert len(keep) == len(lines) - 11
    gap = tmp_path_factory.mktemp("gap") / "gap.csv"
    gap.write_text("\n".join(keep) + "\n")
    return str(gap)


def test_flagged_slots_are_excluded_with_reasons(gap_trace, capsys):
    rc = main(["verify", gap_trace])
    out = capsys.readouterr().out
    assert rc == 3, out
    assert "7 compared with the values computed from the same trace, 1 excluded" in out
    excl = [ln for ln in out.splitlines() if ln.startswith("  excluded")]
    assert len(excl) == 1 and excl[0].startswith("  excluded slot 27 (2026-05-15T13:00:00+09:00)")
    assert "device flag partial" in excl[0] and "device flag missing" in excl[0]
    assert "reference covers only 1680 of 1800 s" in excl[0]
    assert main(["verify", gap_trace, "--max-excluded", "0"]) == 1
    assert "1 slot(s) excluded, more than --max-excluded 0" in capsys.readouterr().out


def test_report_records_what_reproduces_it(gain_pair, gap_trace, tmp_path, capsys):
    ref_path, _ = gain_pair
    rep = tmp_path / "rep"
    assert main(["verify", gap_trace, "--reference", ref_path, "--class", "n5", "--stage",
                 "in-use", "--report", str(rep), "--runtime", "cpython",
                 "--min-coverage-pct", "80", "--meter", os.path.join(DECL, "meter_pv.json"),
                 "--lab", os.path.join(DECL, "lab.json")] + REFM) == 0
    capsys.readouterr()
    page = (rep / "index.html").read_text()
    sha = hashlib.sha256(open(gap_trace, "rb").read()).hexdigest()
    assert sha in page and hashlib.sha256(open(ref_path, "rb").read()).hexdigest() in page
    assert ">0.1.0" in page  # package version
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    if head:  # a git checkout: the commit is recorded
        assert "0.1.0 (git %s" % head in page
    assert verification.source_sha256() in page
    assert "CPython " in page and "class n5, in-use: 5 %" in page
    for text in ("EXAMPLE-CAL-2026-0001", "EXAMPLE-PV-0001", "A. Example", "50.0 : 1",
                 "ILAC-G8:09/2019", "device flag partial"):
        assert html.escape(text, quote=False) in page, text
    assert 'id="verdict">ACCURACY PASS<' in page
    cmdline = re.search(r"command line</th><td class=\"l\">(.*?)</td>", page).group(1)
    argv = shlex.split(html.unescape(cmdline))
    assert argv[:3] == ["smeter", "verify", gap_trace] and "--class" in argv and "n5" in argv
    # One self-contained file: charts inline, nothing fetched from beside it.
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r'(src|href)="(?!data:)', page)
    # The closing SHA-256 covers exactly the embedded report data, which is report.json.
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                     page).group(1)
    assert re.search(r'id="data-sha256">([0-9a-f]{64})<', page).group(1) == \
        hashlib.sha256(data.encode()).hexdigest()
    assert (rep / "report.json").read_text() == data + "\n"
    assert json.loads(data)["verdict"] == "pass"
    rows = list(csv.DictReader(io.StringIO((rep / "slots.csv").read_text())))
    assert [r["status"] for r in rows].count("excluded") == 1 and len(rows) == 8
    assert not [p for p in os.listdir(rep) if p.endswith(".tmp")]
    # Running the recorded command again gives the same per-slot CSV.
    again = tmp_path / "again"
    argv[argv.index("--report") + 1] = str(again)
    assert main(argv[1:]) == 0
    capsys.readouterr()
    assert (again / "slots.csv").read_bytes() == (rep / "slots.csv").read_bytes()


def test_usage_and_input_errors_exit_2(gain_pair, tmp_path, capsys):
    ref_path, _ = gain_pair
    assert main(["verify", ref_path, "--class", "n1"]) == 2
    assert "no confirmed before-use tolerance" in capsys.readouterr().err
    assert main(["verify", ref_path, "--class", "n6", "--stage", "in-use"]) == 2
    assert "class n6 has no confirmed in-use tolerance" in capsys.readouterr().err
    assert main(["verify", ref_path, "--tolerance", "abc"]) == 2
    assert main(["verify", ref_path, "--tolerance", "0%"]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,power_w\n2026-05-15T00:00:00+09:00,1\n2026-05-15T00:00:00+09:00,2\n")
    assert main(["verify", str(bad)]) == 2
    assert "bad trace" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["verify", ref_path, "--reference", str(tmp_path / "nope.csv")] + REFM) == 2
    bad.write_bytes(b"ts,power_w\n2026-05-15T00:00:00+09:00,\xff\n")
    assert main(["verify", str(bad)]) == 2
    assert "bad.csv:2: not UTF-8 text" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["verify", ref_path, "--stage", "later"])
    assert e.value.code == 2
    capsys.readouterr()


def test_tolerance_rule():
    tol = cmp.parse_tolerance("2%")
    assert tol == cmp.Fraction(1, 50) and cmp.parse_tolerance("0.9 %") == cmp.Fraction(9, 1000)
    # Below Emin the bound is absolute: tol * Emin + 1 Wh; above, relative + 1 Wh.
    assert cmp.allowed_wh(tol, cmp.Fraction(3, 2), 100, 1) == 3
    assert cmp.allowed_wh(tol, cmp.Fraction(-1000), 100, 1) == 21
    classes = cmp.load_classes()
    for name, c in classes["classes"].items():
        if c["confirmed"]:
            assert c["in_use_pct"] > c["before_use_pct"] > 0 and c["source"]
        else:
            assert c["in_use_pct"] is None and (c.get("note") or c.get("source"))
