"""`smeter verify --seal`: the certification report checks the device-day's daily seal and
that the values it verifies are the ones the device signed
(docs/certification.md#the-daily-seal-in-the-report)."""
import json
import os

from conftest import ROOT
from edge import p256, seal
from host_tools.cli import main

SAMPLE = os.path.join(ROOT, "samples", "charger_evening_7s.csv")
PRIV = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
DEV = 7


def _verified_values(capsys):
    """{slot_of_day: import Wh} the report verifies, and the JST day, from verify's own JSON."""
    assert main(["verify", SAMPLE, "--integration-only", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = [s for s in doc["slots"] if s["import"]["device_wh"] is not None]
    day = rows[0]["slot_start"][:10]
    assert all(s["slot_start"][:10] == day for s in rows)
    return {s["slot"]: s["import"]["device_wh"] for s in rows}, day


def _export(tmp_path, values, day, sealed_values=None):
    code = int(day.replace("-", ""))
    sealed = {k: (v, 0, 0) for k, v in (sealed_values or values).items()}
    raw = seal.make_seal(DEV, PRIV, 0, code, 1, 48, sealed)
    doc = {"format": "smeter-seal-export/1", "device_id": DEV, "day": day,
           "values": [{"slot": k, "import_wh": v, "export_wh": 0, "flags": 0}
                      for k, v in sorted(values.items())],
           "seals": [raw.hex()],
           "public_keys": [{"device_id": DEV, "key_no": 0, "alg": "ES256",
                            "public_key_hex": p256.public_key(PRIV).hex()}]}
    path = tmp_path / "seal.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_a_good_seal_is_reported_and_keeps_the_verdict(tmp_path, capsys):
    values, day = _verified_values(capsys)
    path = _export(tmp_path, values, day)
    rc = main(["verify", SAMPLE, "--integration-only", "--seal", path, "--json",
               "--report", str(tmp_path / "rep")])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    sl = doc["seal"]
    assert sl["verdict"] == "PASS" and not sl["failed"]
    assert sl["verified_slots_compared"] == len(values) and sl["verified_slots_differing"] == []
    html = (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
    assert 'id="seal"' in html and "Daily seal" in html


def test_a_tampered_stored_value_fails_the_report_on_that_slot(tmp_path, capsys):
    values, day = _verified_values(capsys)
    k = sorted(values)[1]
    stored = dict(values)
    stored[k] += 1  # changed in the collector after the device sealed it
    path = _export(tmp_path, stored, day, sealed_values=values)
    rc = main(["verify", SAMPLE, "--integration-only", "--seal", path])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert out.startswith("smeter verify: INTEGRATION CHECK CONSISTENT")
    assert "DAILY SEAL CHECK FAILED" in out.splitlines()[0]
    assert "daily seal: FAIL" in out and "slot %d: verified import" % k in out


def test_verified_values_that_differ_from_a_valid_seal_fail(tmp_path, capsys):
    """The export is self-consistent (values as sealed) but not what the report verifies."""
    values, day = _verified_values(capsys)
    other = {k: v + 5 for k, v in values.items()}
    path = _export(tmp_path, other, day)
    rc = main(["verify", SAMPLE, "--integration-only", "--seal", path, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert doc["seal"]["verdict"] == "PASS"
    assert len(doc["seal"]["verified_slots_differing"]) == len(values)


def test_a_seal_of_another_day_is_not_silently_accepted(tmp_path, capsys):
    values, day = _verified_values(capsys)
    path = _export(tmp_path, values, "2021-01-01")
    rc = main(["verify", SAMPLE, "--integration-only", "--seal", path])
    out = capsys.readouterr().out
    assert rc == 1 and "shares no slot with the verified values" in out


def test_an_unreadable_seal_file_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["verify", SAMPLE, "--seal", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "--seal" in err and "bad.json" in err and "Traceback" not in err
