"""`smeter seal`: export a device-day with its seals, and verify one offline (the transparency
tool, 透明性ツール): the values, the device's signed seal and its public key are all it needs."""
import argparse
import datetime
import json
import sqlite3
import sys

from host_tools import exit_codes
from host_tools.seal import check, export, pubkeys, write_json

HELP = """\
A special meter signs each JST day of its 30-minute values with its own private key (a daily
seal, docs/seals.md). `export` writes one device-day from the collector's store: the values as
stored, the seals the device sent, and (with --pubkeys) the device's public keys. `verify`
checks such a file with no access to the collector or its secrets and prints a verdict per
slot: ok, changed, missing, extra, unsealed, or unverified when the seal itself is bad.

Exit status (docs/commands/exit-codes.md): 0 PASS, 1 FAIL (a seal or a slot failed),
2 usage or unreadable input, 3 INCOMPLETE (no seal, or values outside every seal)."""


def register(subparsers):
    p = subparsers.add_parser("seal", help="export and verify daily signed seals (transparency tool)",
                              description=HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="seal_command", metavar="ACTION")
    sub.required = True
    v = sub.add_parser("verify", help="check an exported device-day offline, verdict per slot",
                       description="Check the seals in FILE (written by `smeter seal export`) "
                       "against its values. Exit 0 PASS, 1 FAIL, 2 bad input, 3 INCOMPLETE.")
    v.add_argument("file", metavar="FILE", help="export file (smeter-seal-export/1)")
    v.add_argument("--pubkeys", metavar="REGISTRY",
                   help="public-key registry (smeter-pubkeys/1) to take the key from instead of "
                   "the file's own public_keys (recommended: a key shipped inside the file proves "
                   "only that the file is self-consistent)")
    v.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    v.set_defaults(func=run_verify)
    e = sub.add_parser("export", help="write one device-day from the collector store",
                       description="Write the values, seals and public keys of one device-day "
                       "from the collector's SQLite store into a file `smeter seal verify` reads.")
    e.add_argument("--db", required=True, metavar="FILE", help="collector SQLite store")
    e.add_argument("--device", required=True, type=int, metavar="ID", help="device id")
    e.add_argument("--day", required=True, metavar="YYYY-MM-DD", help="JST day")
    e.add_argument("--pubkeys", metavar="REGISTRY",
                   help="public-key registry: the device's keys are copied into the file")
    e.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout)")
    e.set_defaults(func=run_export)


def _fail(msg):
    print("smeter seal: %s" % msg, file=sys.stderr)
    return exit_codes.USAGE


def _day_code(text):
    try:
        d = datetime.date.fromisoformat(text)
        if len(text) != 10:
            raise ValueError
    except ValueError:
        raise ValueError("--day: expected YYYY-MM-DD, got %r" % text)
    return d.year * 10000 + d.month * 100 + d.day


def run_export(args):
    from host_tools.collector.store import Store

    try:
        day = _day_code(args.day)
        reg = pubkeys.load(args.pubkeys) if args.pubkeys else None
        st = Store(args.db, readonly=True)
    except (ValueError, OSError, pubkeys.RegistryError, sqlite3.Error) as x:
        return _fail(str(x) if not isinstance(x, sqlite3.Error) else "%s: %s" % (args.db, x))
    try:
        doc = export.build(st, args.device, day, reg)
    except sqlite3.Error as x:
        return _fail("%s: %s" % (args.db, x))
    finally:
        st.db.close()
    if not doc["values"] and not doc["seals"]:
        return _fail("%s: no values and no seal for device %d on %s" % (args.db, args.device, args.day))
    if args.output:
        try:
            write_json(args.output, doc)
        except OSError as x:
            return _fail("cannot write %s: %s" % (args.output, x))
        print("smeter seal: wrote %s: device %d, %s, %d value(s), %d seal(s)"
              % (args.output, args.device, args.day, len(doc["values"]), len(doc["seals"])),
              file=sys.stderr)
    else:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    return exit_codes.OK


def run_verify(args):
    try:
        ex = export.load(args.file)
        if args.pubkeys:
            reg, source = pubkeys.load(args.pubkeys), args.pubkeys
        elif ex.registry is not None:
            reg, source = ex.registry, "the file's public_keys (not independent of the file)"
        else:
            raise ValueError("%s: no public_keys in the file; give --pubkeys REGISTRY" % args.file)
    except (OSError, ValueError, export.ExportError, pubkeys.RegistryError) as x:
        return _fail(str(x))
    res = check.check_day(ex.device_id, ex.day, ex.values, ex.seals, check.registry_lookup(reg))
    if args.json:
        doc = res.to_json()
        doc["key_source"] = source
        doc["slots"] = [{"slot": s, "verdict": v} for s, v in sorted(res.slots.items())]
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print_report(res, reg, source)
    return {check.PASS: exit_codes.OK, check.FAIL: exit_codes.FAILED}.get(
        res.verdict, exit_codes.INCOMPLETE)


def _print_report(res, reg, source):
    out = sys.stdout.write
    out("seal check: device %d, %s (JST), %d seal(s); public keys from %s\n"
        % (res.device_id, check.day_iso(res.day), len(res.seals), source))
    for i, sr in enumerate(res.seals):
        r = sr.report
        if r is None or r.seal is None:
            out("seal %d: %s\n" % (i + 1, "; ".join(m for _, m in sr.problems)))
            continue
        s = r.seal
        k = reg.get(s.device_id, s.key_no)
        out("seal %d: key %d %s %s, slots %d-%d, signature %s\n"
            % (i + 1, s.key_no, "ES256", k.fingerprint() if k else "?", s.first, s.last(),
               "ok" if not any(w in ("signature", "public_key") for w, _ in r.problems) else "INVALID"))
    out("slot  start (JST)  import_wh  export_wh  flags  verdict\n")
    for slot in range(1, 49):
        v = res.slots.get(slot)
        if v is None:
            continue
        val = res.values.get(slot)
        k = slot - 1
        when = "%02d:%02d" % (k // 2, (k % 2) * 30)
        if val is None:
            out("%4d  %-11s  %9s  %9s  %5s  %s\n" % (slot, when, "-", "-", "-", v + " (no value)"))
        else:
            out("%4d  %-11s  %9d  %9d  %5d  %s\n" % (slot, when, val[0], val[1], val[2], v))
    if res.verdict == check.PASS:
        out("VERDICT PASS: every sealed slot matches its seal\n")
    else:
        out("VERDICT %s: %s\n" % (res.verdict, "; ".join("%s: %s" % p for p in res.problems)))
