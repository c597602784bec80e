"""Signed reports: `smeter verify --sign-key` signs the report data (ES256, edge/p256.py) and
`--check-report` finds any change to the data, the closing SHA-256 or the signature."""
import json
import re

from host_tools.cli import main
from test_verify_plan import EMUREF, METER, bench

KEY = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"  # RFC 6979 A.2.5


def test_signed_report_checks_and_any_change_is_found(tmp_path, capsys):
    truth, dev = bench().make(str(tmp_path), faults=("I20-50Hz=gain:1.05",))
    key = tmp_path / "lab-key.json"
    key.write_text(json.dumps({"signer": "A. Example, Example lab", "key_hex": KEY}))
    rep = tmp_path / "rep"
    assert main(["verify", dev, "--reference", truth, "--meter", METER, "--plan", "jemic_basic",
                 "--report", str(rep), "--sign-key", str(key), "-q"] + EMUREF) == 1
    capsys.readouterr()
    page = rep / "index.html"
    assert main(["verify", "--check-report", str(page)]) == 0
    out = capsys.readouterr().out
    assert "INTACT" in out and "signature by A. Example, Example lab valid" in out
    text = page.read_text()
    assert KEY not in text  # the private key never reaches the page
    edits = {
        "verdict": lambda t: t.replace('"verdict":"fail"', '"verdict":"pass"', 1),
        "a point's energy": lambda t: t.replace('"device_wh":"525"', '"device_wh":"505"', 1),
        "hash re-made": lambda t: re.sub(
            r'id="data-sha256">[0-9a-f]{64}<', 'id="data-sha256">%s<' % ("0" * 64), t),
        "signature": lambda t: re.sub(r'("signature":")([0-9a-f])',
                                      lambda m: m.group(1) + ("1" if m.group(2) == "0" else "0"),
                                      t, count=1),
    }
    for name, edit in edits.items():
        changed = edit(text)
        assert changed != text, name
        bad = tmp_path / "bad.html"
        bad.write_text(changed)
        assert main(["verify", "--check-report", str(bad)]) == 1, name
        assert "CHANGED" in capsys.readouterr().out, name


def test_unsigned_report_and_bad_inputs(tmp_path, capsys):
    truth, dev = bench().make(str(tmp_path))
    rep = tmp_path / "rep"
    args = ["verify", dev, "--reference", truth, "--meter", METER, "--plan", "jemic_basic"] + EMUREF
    assert main(args + ["--report", str(rep), "-q"]) == 0
    capsys.readouterr()
    assert main(["verify", "--check-report", str(rep / "index.html")]) == 0
    assert "not signed" in capsys.readouterr().out
    key = tmp_path / "k.json"
    key.write_text(json.dumps({"signer": "x", "key_hex": "00" * 32}))
    assert main(args + ["--report", str(rep), "--sign-key", str(key)]) == 2
    assert "not a valid P-256 private key" in capsys.readouterr().err
    assert main(args + ["--sign-key", str(key)]) == 2
    assert "--sign-key needs --report" in capsys.readouterr().err
    assert main(["verify", "--check-report", str(truth)]) == 2
    assert "not a smeter verify report" in capsys.readouterr().err
    assert main(["verify"]) == 2
    assert "TRACE.csv is required" in capsys.readouterr().err
