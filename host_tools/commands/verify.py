"""`smeter verify`: two different checks, named differently (docs/commands/verify.md).

- Integration check (no --reference): do the 30-minute values follow from the device's own
  readings? The edge core's values against the exact reference computed from the same trace,
  and the device's register against its own power integral. Never an accuracy verdict.
- Accuracy verification (--reference with --reference-meter): the device's 30-minute values
  against a separate, declared, calibrated reference meter, per slot or per test-plan point
  (--plan), with the reference's uncertainty as guard band (verify/decision.py).

The run itself is host_tools/verify/verification.py; this module parses and prints.
"""
import argparse
import os
import sys

from host_tools import exit_codes
from host_tools.replay import DEFAULTS, MP_HEAP
from host_tools.trace import TraceError
from host_tools.verify import compare as cmp
from host_tools.verify.verification import INTEGRATOR_OPTS, summary, verify


def register(subparsers):
    classes = cmp.load_classes()
    comp = classes["comparison"]
    p = subparsers.add_parser(
        "verify",
        help="integration check of a trace, or accuracy verification against a declared "
        "reference meter (per slot or per test-plan point), with a report a lab can sign",
        description="Without --reference: an INTEGRATION CHECK of TRACE.csv (docs/trace-format.md): "
        "the 30-minute values (30分値) the edge core makes from the trace, on either runtime, "
        "against an exact reference computed from the same trace, and the device's registers "
        "against its own power integral. It never gives an accuracy verdict: exit 3 when "
        "consistent (0 with --integration-only), 1 when not. With --reference and "
        "--reference-meter: ACCURACY VERIFICATION against a separate, calibrated reference meter "
        "(a reference derived from the device trace is refused), per 30-minute slot, or per "
        "test-plan point with --plan, using the reference's stated uncertainty as guard band "
        "(ILAC-G8:09/2019). TRACE.csv may also be the 30-minute values the agent reported (a "
        "slot CSV like `smeter replay` output). Exit status: 0 pass, 1 fail, 2 usage or input "
        "error, 3 incomplete / conditional pass / integration check only. See "
        "docs/certification.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("trace", metavar="TRACE.csv", nargs="?",
                   help="the device's recorded trace, or its reported 30-minute values (slot CSV)")
    p.add_argument("--class", dest="cls", default="n3", choices=sorted(classes["classes"]),
                   help="declared accuracy class (精度階級) of the specified-metering scheme "
                   "(hw/accuracy_classes.json; unconfirmed classes need --tolerance)")
    p.add_argument("--stage", default="before-use", choices=sorted(cmp.STAGES),
                   help="which tolerance of the class: before use (使用前公差) or in use (使用中公差)")
    p.add_argument("--tolerance", default=None, metavar="PCT",
                   help="tolerance in %% of the reference, e.g. 2%%; overrides --class/--stage")
    p.add_argument("--runtime", choices=("cpython", "micropython"), default="cpython",
                   help="interpreter the edge core runs in")
    p.add_argument("--heap", default=MP_HEAP, help="MicroPython heap (-X heapsize)")
    p.add_argument("--reference", metavar="TRACE_OR_CSV", default=None,
                   help="a separate reference meter's readings: a trace (same format) or a "
                   "per-slot CSV with slot_start and import_wh/export_wh (decimal or N/D), "
                   "optionally a point column; needs --reference-meter")
    p.add_argument("--reference-meter", metavar="REF.json", default=None,
                   help="the reference meter's declaration: identity, calibration certificate "
                   "id and date, expanded uncertainty (docs/certification.md#declarations)")
    p.add_argument("--meter", metavar="METER.json", default=None,
                   help="the meter under test: maker, model, serial, firmware version and "
                   "image SHA-256, rating (needed by --plan)")
    p.add_argument("--lab", metavar="LAB.json", default=None,
                   help="laboratory, operator, where and when the traces were recorded")
    p.add_argument("--plan", metavar="NAME_OR_JSON", default=None,
                   help="test plan (hw/test_plans/NAME.json or a path): a verdict per load point, "
                   "starting-current and no-load test; needs --reference and --meter")
    p.add_argument("--plan-start", metavar="TS", default=None,
                   help="when the plan's first point started (ISO 8601, a slot start); default: "
                   "the reference's point column")
    p.add_argument("--integration-only", action="store_true",
                   help="an integration check is all that is wanted: exit 0 when consistent "
                   "(still no accuracy verdict)")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="write index.html (one self-contained file), report.json and slots.csv "
                   "into DIR")
    p.add_argument("--sign-key", metavar="KEY.json", default=None,
                   help="sign the report's data (ES256) with this key file {signer, key_hex}; "
                   "needs --report")
    p.add_argument("--check-report", metavar="INDEX.html", default=None,
                   help="instead of verifying a trace: check a report page's data SHA-256 and "
                   "signature (exit 0 intact, 1 changed)")
    p.add_argument("--seal", metavar="EXPORT.json", default=None,
                   help="the device-day's daily seal as written by `smeter seal export`: the report "
                   "checks the seal and that the verified values are the ones the device signed "
                   "(docs/seals.md); a failed seal fails the report")
    p.add_argument("--seal-pubkeys", metavar="REGISTRY", default=None,
                   help="public-key registry to check --seal with (default: the export file's "
                   "own public_keys, which are not independent of the file)")
    p.add_argument("--json", action="store_true",
                   help="print the report data (verdict per point and slot) as JSON on stdout")
    p.add_argument("--min-energy-wh", type=float, default=comp["min_energy_wh"],
                   help="below this reference energy per slot the tolerance applies to this "
                   "energy (an absolute bound)")
    p.add_argument("--min-coverage-pct", type=float, default=comp["min_coverage_pct"],
                   help="accuracy per slot: fewer compared slots than this share of all slots is "
                   "INCOMPLETE")
    p.add_argument("--fail-on-flags", default="mismatch", metavar="FLAGS",
                   help="device quality flags (joined by |) whose slots, though excluded from "
                   "the comparison, fail the verdict: the device's own register and power "
                   "disagreeing is a sign of inaccuracy, not missing data; '' for none")
    p.add_argument("--max-excluded", type=int, default=None, metavar="N",
                   help="fail when more than N slots are excluded (default: no limit)")
    for opt, attr, hlp in INTEGRATOR_OPTS:
        p.add_argument(opt, dest=attr, type=int, default=DEFAULTS[attr], help=hlp)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the verdict line")
    p.set_defaults(func=run_cmd)




def progress(msg):
    print("smeter verify: " + msg, file=sys.stderr, flush=True)


def check_report(path):
    from host_tools.verify import signature
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        ok, lines = signature.check_page(text)
    except (OSError, UnicodeDecodeError) as e:
        print("smeter verify: --check-report %s: cannot read (%s)" % (path, e), file=sys.stderr)
        return exit_codes.USAGE
    except cmp.VerifyError as e:
        print("smeter verify: --check-report %s: %s" % (path, e), file=sys.stderr)
        return exit_codes.USAGE
    print("smeter verify: report %s %s" % (path, "INTACT" if ok else "CHANGED"))
    for ln in lines:
        print("  " + ln)
    return exit_codes.OK if ok else exit_codes.FAILED


def run_cmd(args):
    if args.check_report:
        if args.trace:
            print("smeter verify: --check-report takes no TRACE.csv", file=sys.stderr)
            return exit_codes.USAGE
        return check_report(args.check_report)
    if not args.trace:
        print("smeter verify: TRACE.csv is required (or --check-report INDEX.html)",
              file=sys.stderr)
        return exit_codes.USAGE
    signing = None
    if args.sign_key:
        from host_tools.verify import signature
        if not args.report:
            print("smeter verify: --sign-key needs --report DIR", file=sys.stderr)
            return exit_codes.USAGE
        try:
            signing = signature.load_key(args.sign_key)
        except cmp.VerifyError as e:
            print("smeter verify: %s" % e, file=sys.stderr)
            return exit_codes.USAGE
    from host_tools.verify import output
    written = output.Written()
    report = progress if (args.runtime == "micropython" and not args.quiet) else None
    try:
        run = verify(args, report)
    except KeyboardInterrupt:
        print("smeter verify: interrupted before the verdict; nothing was written",
              file=sys.stderr)
        return exit_codes.INTERRUPTED
    except TraceError as e:
        print("smeter verify: bad trace: %s" % e, file=sys.stderr)
        return exit_codes.USAGE
    except cmp.VerifyError as e:
        print("smeter verify: %s" % e, file=sys.stderr)
        return exit_codes.USAGE
    except (OSError, RuntimeError) as e:
        print("smeter verify: cannot run the device replay: %s" % e, file=sys.stderr)
        return exit_codes.ENVIRONMENT
    lines = summary(run)
    if args.report:
        from host_tools.verify import report as rep
        try:
            os.makedirs(args.report, exist_ok=True)
            path = rep.write_report(run, args.report, written, signing)
        except KeyboardInterrupt:
            print("smeter verify: interrupted while writing the report; %s"
                  % written.summary(), file=sys.stderr)
            return exit_codes.INTERRUPTED
        except OSError as e:
            print("smeter verify: cannot write the report in %s: %s (%s)"
                  % (args.report, e.strerror or e, written.summary()), file=sys.stderr)
            return exit_codes.USAGE
        lines.append("  report: " + path)
    if args.json:
        from host_tools.verify.report import canonical_json
        print(canonical_json(run.doc, indent=True))
        print("\n".join(lines[:1]), file=sys.stderr)
    else:
        print("\n".join(lines[:1] if args.quiet else lines))
    return run.exit_status
