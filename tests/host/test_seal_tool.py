"""Daily seals on the host: the encoding against cbor2, an independent verifier (cryptography +
cbor2 + struct, no edge code) against `smeter seal verify`, export from a real collector
store, tampering in the database, and `smeter keys`."""
import hashlib
import json
import os
import sqlite3
import stat
import struct
import subprocess
import sys

import cbor2
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from edge import config, p256, seal, slots
from host_tools import cli, exit_codes
from host_tools.collector.store import Store
from host_tools.seal import check, pubkeys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRIV = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
PUB = p256.public_key(PRIV)
DEV = 1001
DAY = 20261203


def _values():
    return {s: (s * 10, 5000 - s, 66 if s == 9 else 0) for s in range(1, 49) if s not in (5, 6)}


# ------------------------------------------------------------ an independent verifier


def independent_verify(doc, pub_sec1):
    """Verdict per slot from the export document, written from docs/seals.md alone:
    cbor2 for the body, struct for the entries, cryptography (OpenSSL) for ECDSA.
    Returns (ok, {slot: verdict}) with verdicts ok/changed/missing/extra/unverified."""
    values = {r["slot"]: (r["import_wh"], r["export_wh"], r["flags"]) for r in doc["values"]}
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub_sec1)
    ok = bool(doc["seals"])
    verdicts = {}
    for h in doc["seals"]:
        raw = bytes.fromhex(h)
        if len(raw) < 64:
            return False, {}
        body, sig = raw[:-64], raw[-64:]
        try:
            m = cbor2.loads(body)
        except Exception:
            return False, {}
        if not isinstance(m, dict) or cbor2.dumps(m, canonical=True) != body or set(m) != set(range(9)):
            return False, {}
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            key.verify(der, body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            ok = False
            for i in range(m[6]):
                verdicts[m[5] + i] = "unverified"
            continue
        if m[1] != doc["device_id"] or "%04d-%02d-%02d" % (m[2] // 10000, m[2] // 100 % 100, m[2] % 100) != doc["day"]:
            ok = False
        ents = b""
        for i in range(m[6]):
            s = m[5] + i
            if s in values:
                e = struct.pack(">BBIIH", 1, s, *values[s])
            else:
                e = struct.pack(">BBIIH", 0, s, 0, 0, 0)
            ents += e
            fp = m[8][4 * i:4 * i + 4]
            if hashlib.sha256(e).digest()[:4] == fp:
                v = "ok"
            elif s not in values:
                v = "missing"
            elif hashlib.sha256(struct.pack(">BBIIH", 0, s, 0, 0, 0)).digest()[:4] == fp:
                v = "extra"
            else:
                v = "changed"
            if verdicts.get(s, "ok") == "ok":
                verdicts[s] = v
        if hashlib.sha256(ents).digest() != m[7]:
            ok = False
    for s in values:
        verdicts.setdefault(s, "unsealed")
    return ok, verdicts


# ------------------------------------------------------------ fixtures


def _doc(values=None, seals=None):
    v = _values() if values is None else values
    if seals is None:
        seals = [seal.make_seal(DEV, PRIV, 0, DAY, 1, 48, _values()).hex()]
    return {
        "format": "smeter-seal-export/1", "device_id": DEV, "day": "2026-12-03",
        "values": [{"slot": s, "import_wh": a, "export_wh": b, "flags": f}
                   for s, (a, b, f) in sorted(v.items())],
        "seals": seals,
        "public_keys": [{"device_id": DEV, "key_no": 0, "alg": "ES256", "public_key_hex": PUB.hex()}],
    }


def _verify(tmp_path, doc, capsys, *extra):
    p = tmp_path / "day.json"
    p.write_text(json.dumps(doc))
    rc = cli.main(["seal", "verify", str(p), "--json"] + list(extra))
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if out else None), err


def _slots(res):
    return {s["slot"]: s["verdict"] for s in res["slots"]}


# ------------------------------------------------------------ encoding


def test_body_is_canonical_cbor_that_cbor2_reads_back():
    raw = seal.make_seal(DEV, PRIV, 0, DAY, 1, 48, _values())
    s = seal.parse(raw)
    m = cbor2.loads(s.body)
    assert cbor2.dumps(m, canonical=True) == s.body
    ent = b"".join(struct.pack(">BBIIH", 1, k, *_values()[k]) if k in _values()
                   else struct.pack(">BBIIH", 0, k, 0, 0, 0) for k in range(1, 49))
    assert m == {0: 1, 1: DEV, 2: DAY, 3: 0, 4: 1, 5: 1, 6: 48, 7: hashlib.sha256(ent).digest(),
                 8: b"".join(hashlib.sha256(ent[i:i + 12]).digest()[:4] for i in range(0, 576, 12))}
    assert len(raw) == 316  # device id 1001; 318 with a 32-bit id (edge test)


def test_worked_example_in_the_docs_is_what_the_code_makes():
    """docs/seals.md shows a 2-slot seal byte for byte; it must stay true."""
    raw = seal.make_seal(1001, PRIV, 0, 20261203, 1, 2, {1: (120, 0, 0), 2: (95, 10, 1)})
    with open(os.path.join(ROOT, "docs", "seals.md"), encoding="utf-8") as f:
        text = f.read()
    assert "seal (%d bytes): %s" % (len(raw), raw.hex()) in text.replace("\n", "")


# ------------------------------------------------------------ verify: ours vs independent


def test_valid_day_passes_in_both_verifiers(tmp_path, capsys):
    doc = _doc()
    rc, res, err = _verify(tmp_path, doc, capsys)
    assert rc == exit_codes.OK and res["verdict"] == "PASS", err
    ok, verdicts = independent_verify(doc, PUB)
    assert ok and _slots(res) == verdicts
    assert set(verdicts.values()) == {"ok"} and len(verdicts) == 48


@pytest.mark.parametrize("field", ["import_wh", "export_wh", "flags"])
@pytest.mark.parametrize("slot_index", [0, 7, 45])
@pytest.mark.parametrize("shift", [0, 8, 24])
def test_one_changed_byte_of_a_value_fails_on_exactly_that_slot(tmp_path, capsys, field, slot_index, shift):
    if field == "flags" and shift > 8:
        return
    doc = _doc()
    row = doc["values"][slot_index]
    row[field] ^= 1 << shift
    rc, res, _ = _verify(tmp_path, doc, capsys)
    ok, verdicts = independent_verify(doc, PUB)
    assert rc == exit_codes.FAILED and not ok
    assert res["failed_slots"] == [row["slot"]]
    assert _slots(res) == verdicts
    assert verdicts[row["slot"]] == "changed"


def test_every_byte_of_the_seal_matters_and_both_verifiers_agree(tmp_path, capsys):
    """Every byte of the seal changed, checked by the day check `smeter seal verify` runs
    (check_day) and by the independent verifier; the command itself on one byte per field."""
    doc = _doc()
    raw = bytes.fromhex(doc["seals"][0])
    values = {r["slot"]: (r["import_wh"], r["export_wh"], r["flags"]) for r in doc["values"]}
    lookup = check.registry_lookup(pubkeys.Registry([pubkeys.PubKey(DEV, 0, PUB)]))
    body_len = len(seal.parse(raw).body)
    for off in range(len(raw)):
        bad = bytearray(raw)
        bad[off] ^= 0x10
        d = dict(doc, seals=[bytes(bad).hex()])
        res = check.check_day(DEV, DAY, values, [bytes(bad)], lookup)
        ok, verdicts = independent_verify(d, PUB)
        assert res.verdict == "FAIL" and not ok, off
        whats = {w for w, _ in res.problems}
        assert whats & {"seal", "signature", "key"}, (off, res.problems)
        if verdicts and "seal" not in whats:  # both could parse it: same per-slot verdicts
            assert res.slots == verdicts, off
        if off in (2, 5, 10, 20, 60, body_len - 1, body_len, len(raw) - 1):
            rc, out, _ = _verify(tmp_path, d, capsys)
            assert rc == exit_codes.FAILED and out["verdict"] == "FAIL", off


def test_missing_extra_and_unsealed_slots(tmp_path, capsys):
    v = _values()
    del v[7]
    v[5] = (1, 2, 0)
    doc = _doc(values=v)
    rc, res, _ = _verify(tmp_path, doc, capsys)
    ok, verdicts = independent_verify(doc, PUB)
    assert rc == exit_codes.FAILED and not ok
    assert res["failed_slots"] == [5, 7]
    assert _slots(res) == verdicts and verdicts[5] == "extra" and verdicts[7] == "missing"
    part = seal.make_seal(DEV, PRIV, 0, DAY, 1, 20, _values()).hex()
    doc = _doc(seals=[part])
    rc, res, _ = _verify(tmp_path, doc, capsys)
    assert rc == exit_codes.INCOMPLETE and res["unsealed_slots"] == list(range(21, 49))
    assert _slots(res) == independent_verify(doc, PUB)[1]
    rc, res, _ = _verify(tmp_path, _doc(seals=[]), capsys)
    assert rc == exit_codes.INCOMPLETE and res["verdict"] == "INCOMPLETE"


def test_wrong_key_from_the_registry_fails(tmp_path, capsys):
    other = p256.public_key((7).to_bytes(32, "big"))
    reg = tmp_path / "reg.json"
    reg.write_text(json.dumps({"format": "smeter-pubkeys/1", "keys": [
        {"device_id": DEV, "key_no": 0, "public_key_hex": other.hex()}]}))
    rc, res, _ = _verify(tmp_path, _doc(), capsys, "--pubkeys", str(reg))
    assert rc == exit_codes.FAILED and {p["what"] for p in res["problems"]} == {"signature"}
    reg.write_text(json.dumps({"format": "smeter-pubkeys/1", "keys": [
        {"device_id": DEV, "key_no": 1, "public_key_hex": PUB.hex()}]}))
    rc, res, _ = _verify(tmp_path, _doc(), capsys, "--pubkeys", str(reg))
    assert rc == exit_codes.FAILED and {p["what"] for p in res["problems"]} == {"key"}
    reg.write_text(json.dumps({"format": "smeter-pubkeys/1", "keys": [
        {"device_id": DEV, "key_no": 0, "public_key_hex": PUB.hex(), "retired": "2026-12-02"}]}))
    rc, res, _ = _verify(tmp_path, _doc(), capsys, "--pubkeys", str(reg))
    assert rc == exit_codes.FAILED and "retired" in res["problems"][0]["message"]


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.update(format="x"), "format"),
    (lambda d: d.update(day="2026-13-01"), "day"),
    (lambda d: d["values"][3].update(flags=-1), "values[3].flags"),
    (lambda d: d["values"].append(dict(d["values"][0])), "appears twice"),
    (lambda d: d.update(seals=["zz"]), "seals[0]"),
    (lambda d: d.pop("public_keys"), "--pubkeys"),
    (lambda d: d["public_keys"][0].update(public_key_hex="04" + "00" * 64), "public_keys[0]"),
])
def test_bad_export_files_are_usage_errors_on_one_line(tmp_path, capsys, mutate, needle):
    doc = _doc()
    mutate(doc)
    rc, res, err = _verify(tmp_path, doc, capsys)
    assert rc == exit_codes.USAGE and res is None
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


# ------------------------------------------------------------ export from a collector store


def _store_with_day(path):
    st = Store(str(path))
    n = seal.day_number(DAY)
    st.begin()
    st.insert_values([(DEV, slots.slot_from_day(n, s), a, b, f, 0, s, 1000, 5)
                      for s, (a, b, f) in _values().items()])
    raw = seal.make_seal(DEV, PRIV, 0, DAY, 1, 48, _values())
    st.put_seal(DEV, DAY, 1, 48, 0, 2000, raw, "verified")
    st.commit()
    st.close()


def test_export_then_verify_then_tamper_one_byte_in_the_db(tmp_path):
    db = tmp_path / "head.db"
    _store_with_day(db)
    reg = tmp_path / "pub.json"
    pubkeys.write(str(reg), pubkeys.Registry([pubkeys.PubKey(DEV, 0, PUB)]))
    out = tmp_path / "day.json"
    smeter = [sys.executable, "-m", "host_tools.cli"]
    r = subprocess.run(smeter + ["seal", "export", "--db", str(db), "--device", str(DEV),
                                 "--day", "2026-12-03", "--pubkeys", str(reg), "-o", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(smeter + ["seal", "verify", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VERDICT PASS" in r.stdout
    # one byte of one stored value changes after the fact
    con = sqlite3.connect(str(db))
    slot17 = slots.slot_from_day(seal.day_number(DAY), 17)
    con.execute("UPDATE slot_values SET export_wh = export_wh + 256 WHERE slot=? AND device_id=?",
                (slot17, DEV))
    con.commit()
    con.close()
    assert cli.main(["seal", "export", "--db", str(db), "--device", str(DEV), "--day", "2026-12-03",
                     "--pubkeys", str(reg), "-o", str(out)]) == 0
    r = subprocess.run(smeter + ["seal", "verify", str(out), "--pubkeys", str(reg)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == exit_codes.FAILED, r.stdout
    bad = [ln for ln in r.stdout.splitlines() if ln.rstrip().endswith("changed")]
    assert len(bad) == 1 and bad[0].split()[0] == "17", r.stdout
    assert "VERDICT FAIL" in r.stdout and "slots 17)" in r.stdout
    # and the store-level check the certification report uses says the same
    st = Store(str(db), readonly=True)
    res = check.check_store(st, pubkeys.load(str(reg)))
    assert [(x.device_id, x.day, x.verdict, x.failed_slots()) for x in res] == [(DEV, DAY, "FAIL", [17])]


def test_export_errors(tmp_path, capsys):
    db = tmp_path / "head.db"
    _store_with_day(db)
    for argv, needle in (
        (["--db", str(db), "--device", "5", "--day", "2026-12-03"], "no values and no seal"),
        (["--db", str(db), "--device", str(DEV), "--day", "2026-12-3"], "--day"),
        (["--db", str(tmp_path / "none.db"), "--device", "1", "--day", "2026-12-03"], "none.db"),
        (["--db", str(db), "--device", str(DEV), "--day", "2026-12-03", "-o", str(tmp_path / "no" / "x")], "cannot write"),
    ):
        assert cli.main(["seal", "export"] + argv) == exit_codes.USAGE
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err


# ------------------------------------------------------------ smeter keys


def test_keys_generate_rotate_retire_list(tmp_path, capsys):
    cfg = tmp_path / "agent.json"
    base = {"device_id": DEV, "key": "00" * 16, "data_dir": "d",
            "device": {"map": "m", "transport": "tcp", "host": "h", "port": 1},
            "wisun": {"module": "bp35a1", "serial": "/dev/x", "rbid": "0" * 32, "pwd": "p",
                      "channel": 33, "pan_id": 1, "coordinator": "FE80::1"}}
    cfg.write_text(json.dumps(base))
    reg = tmp_path / "pub.json"
    args = ["keys", "generate", "--device", str(DEV), "--config", str(cfg), "--registry", str(reg)]
    assert cli.main(args) == 0
    c1 = json.loads(cfg.read_text())
    assert c1["seal_key_no"] == 0 and stat.S_IMODE(os.stat(cfg).st_mode) == 0o600
    r = pubkeys.load(str(reg))
    assert r.get(DEV, 0).public_key == p256.public_key(bytes.fromhex(c1["seal_key"]))
    assert config.validate(c1)["seal_key"] == bytes.fromhex(c1["seal_key"])
    assert cli.main(args) == 0  # rotation: a new number, the old public key stays
    c2 = json.loads(cfg.read_text())
    assert c2["seal_key_no"] == 1 and c2["seal_key"] != c1["seal_key"]
    assert {k: c2[k] for k in base} == base
    assert [k.key_no for k in pubkeys.load(str(reg)).for_device(DEV)] == [0, 1]
    assert cli.main(args + ["--key-no", "1"]) == exit_codes.USAGE
    assert "already has key 1" in capsys.readouterr().err
    assert cli.main(["keys", "retire", "--registry", str(reg), "--device", str(DEV), "--key-no", "0",
                     "--after", "2026-12-02"]) == 0
    assert pubkeys.load(str(reg)).get(DEV, 0).retired == "2026-12-02"
    capsys.readouterr()
    assert cli.main(["keys", "list", "--registry", str(reg)]) == 0
    out = capsys.readouterr().out
    assert "key 0" in out and "retired after 2026-12-02" in out and "key 1" in out
    cfg.write_text(json.dumps(dict(base, device_id=7)))
    assert cli.main(args) == exit_codes.USAGE
    assert "device_id is 7" in capsys.readouterr().err


def test_status_shows_the_sealing_job_only_when_there_is_one():
    from host_tools.commands.status import format_status

    c = {k: 1 for k in ("polls", "polls_ok", "slots_closed", "frames_sent", "frames_acked",
                        "joins")}
    c.update(faults=0, frames_send_failed=0, ack_timeouts=0, session_losses=0, seals_made=2,
             seals_acked=1)
    st = {"counters": c, "faults": {}, "device_id": 5, "map": "m", "last_slot": -1,
          "queue_depth": 0, "queue_head": 0, "queue_tail": 0, "overflow_slots": 0,
          "uplink": "idle", "seq_next": 3, "wisun_state": "ready", "wisun_session": 1,
          "wisun_rate": 1, "seal": None}
    assert "seals" not in format_status(st, 0)
    st["seal"] = {"seal_last_day": seal.day_number(DAY), "seal_outbox": 1, "seal_phase": "idle",
                  "seals_made": 2, "seal_days_skipped": 0}
    last = format_status(st, 0).splitlines()[-1]
    assert last.split() == ["seals", "last", "sealed", "day", "20261203,", "idle,", "outbox",
                            "waiting,", "2", "made,", "1", "acked"]
