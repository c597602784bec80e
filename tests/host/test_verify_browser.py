"""The certification report in a real browser: headless Chromium (Debian package `chromium`,
scripts/debian-packages.txt) opens the single HTML file, logs no console message, renders the
per-point table and a non-empty screenshot. Skips loudly without Chromium; fails under CI."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT
from host_tools.cli import main
from test_verify_plan import EMUREF, METER, bench

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]
CONSOLE = re.compile(r":CONSOLE[:(]")


def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        reason = ("headless Chromium not found: the browser check of the certification report "
                  "cannot run (apt-get install chromium, or bash scripts/install-debian-deps.sh)")
        if os.environ.get("CI"):
            pytest.fail(reason + " -- CI must run this lane")
        pytest.skip(reason)
    return exe


def browse(exe, url, tmp, *extra):
    """Run Chromium once on url -> (stdout, console lines)."""
    profile = tmp / ("profile%d" % len(os.listdir(tmp)))
    proc = subprocess.run([exe] + FLAGS + ["--user-data-dir=%s" % profile] + list(extra) + [url],
                          capture_output=True, text=True, timeout=120)
    console = [ln for ln in proc.stderr.splitlines() if CONSOLE.search(ln)]
    return proc.stdout, console, proc


@pytest.fixture(scope="module")
def plan_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser")
    truth, dev = bench().make(str(d), faults=("I20-50Hz=gain:1.05", "noload-50Hz=creep:4",
                                              "start-50Hz=dead"))
    rep = d / "report"
    assert main(["verify", dev, "--reference", truth, "--meter", METER, "--plan", "jemic_basic",
                 "--lab", os.path.join(ROOT, "samples", "declarations", "lab.json"), "--report",
                 str(rep), "-q"] + EMUREF) == 1
    return rep / "index.html"


def test_console_errors_are_caught(tmp_path):
    """The check below can fail: a page with a script error shows up in the console lines."""
    exe = chromium()
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><script>nosuchfunction();</script>"
                   "</body></html>")
    _, console, _ = browse(exe, bad.as_uri(), tmp_path, "--dump-dom")
    assert any("nosuchfunction" in ln for ln in console), console


def test_report_opens_cleanly_and_shows_the_point_table(plan_report, tmp_path):
    exe = chromium()
    dom, console, proc = browse(exe, plan_report.as_uri(), tmp_path, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert console == [], console
    table = re.search(r'<table id="point-table">(.*?)</table>', dom, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    assert len(rows) == 9  # header + 8 points
    verdicts = {re.search(r"<td class=\"l\">(.*?)</td>", r).group(1):
                re.findall(r"<td class=\"l (\S+)\">", r)[0] for r in rows[1:]}
    assert verdicts == {"I100-50Hz": "pass", "I50-50Hz": "pass", "I20-50Hz": "fail",
                        "I100-60Hz": "pass", "I50-60Hz": "pass", "I20-60Hz": "pass",
                        "start-50Hz": "fail", "noload-50Hz": "fail"}
    assert 'id="data-sha256"' in dom and "<svg" in dom
    shot = tmp_path / "shot.png"
    _, console, proc = browse(exe, plan_report.as_uri(), tmp_path, "--window-size=1280,1400",
                              "--screenshot=%s" % shot)
    assert console == [], console
    from PIL import Image
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 1400)
    colours = img.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, tables, colours: not a blank page
    red = sum(n for n, (r, g, b) in colours if r > 150 and g < 80 and b < 80)
    assert red > 200  # the FAIL verdicts are drawn


def test_report_prints_to_pdf(plan_report, tmp_path):
    exe = chromium()
    pdf = tmp_path / "report.pdf"
    _, console, proc = browse(exe, plan_report.as_uri(), tmp_path, "--no-pdf-header-footer",
                              "--print-to-pdf=%s" % pdf)
    assert console == [], console
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and len(data) > 20000
    assert len(re.findall(rb"/Type\s*/Page\b", data)) >= 2  # the whole report, paged


def test_missing_browser_skips_loudly_and_fails_under_ci(monkeypatch):
    import test_verify_browser as me
    monkeypatch.setattr(me.shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="headless Chromium not found"):
        chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run this lane"):
        chromium()
