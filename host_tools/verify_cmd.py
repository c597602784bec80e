"""`smeter verify`: replay a trace through the edge core and prove every 30-minute value
against the exact host reference (host_tools/verify/), with a certifier's report."""
import argparse
import datetime
import functools
import hashlib
import os
import shlex
import subprocess
import sys
import time

from host_tools import replay_cmd
from host_tools.trace import TraceError
from host_tools.verify import compare as cmp
from host_tools.verify import reference as ref

ROOT = replay_cmd.ROOT
INTEGRATOR_OPTS = (  # (option, attribute, help); defaults from replay_cmd.DEFAULTS
    ("--max-power-w", "max_power_w", "device maximum power (W): power range and register plausibility bound"),
    ("--power-exp", "power_exp", "power resolution 10**N W in the integrator (-1..3)"),
    ("--max-gap-s", "max_gap_s", "sample intervals longer than this are not integrated, by the device "
     "nor by the reference (the slot is then excluded)"),
    ("--missing-ms", "missing_ms", "uncovered time in a slot above which the device flags it missing"),
    ("--margin-pct", "margin_pct", "register delta above max power x elapsed x this %% is a reset"),
    ("--mismatch-wh", "mismatch_wh", "device register vs power tolerance, absolute part (Wh)"),
    ("--mismatch-pct", "mismatch_pct", "device register vs power tolerance, relative part (%% of register)"),
)


def register(subparsers):
    classes = cmp.load_classes()
    comp = classes["comparison"]
    p = subparsers.add_parser(
        "verify",
        help="certify a meter: compare every 30-minute value with an exact reference, write a report",
        description="Replay TRACE.csv (docs/trace-format.md) through the edge core on either runtime "
        "and compare every 30-minute value (30分値), import and export, with an exact reference "
        "computed independently on the host in rational arithmetic (the trapezoid power integral, "
        "or the register delta where the trace has a register), or with an independent reference "
        "meter's trace (--reference). A slot passes when |device - reference| <= tolerance x "
        "max(|reference|, --min-energy-wh) + one Wh digit; the day totals must pass the same rule; "
        "slots the device flagged or the reference cannot cover are excluded and listed with "
        "reasons. Exit status: 0 pass, 1 fail, 2 usage or input error. See docs/certification.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("trace", metavar="TRACE.csv", help="the device's recorded trace")
    p.add_argument("--class", dest="cls", default="n3", choices=sorted(classes["classes"]),
                   help="declared accuracy class (精度階級) of the specified-metering scheme "
                   "(hw/accuracy_classes.json; unconfirmed classes need --tolerance)")
    p.add_argument("--stage", default="before-use", choices=sorted(cmp.STAGES),
                   help="which tolerance of the class: before use (使用前公差) or in use (使用中公差)")
    p.add_argument("--tolerance", default=None, metavar="PCT",
                   help="tolerance in %% of the reference, e.g. 2%%; overrides --class/--stage")
    p.add_argument("--runtime", choices=("cpython", "micropython"), default="cpython",
                   help="interpreter the edge core runs in")
    p.add_argument("--heap", default="32K", help="MicroPython heap (-X heapsize)")
    p.add_argument("--reference", metavar="TRACE_OR_CSV", default=None,
                   help="an independent reference meter's readings to compare with instead of "
                   "the reference computed from TRACE.csv: a trace (same format) or a per-slot "
                   "CSV with slot_start and import_wh/export_wh (e.g. `smeter replay` output)")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="write index.html, slots.csv and PNG charts into DIR")
    p.add_argument("--min-energy-wh", type=float, default=comp["min_energy_wh"],
                   help="below this reference energy per slot the tolerance applies to this "
                   "energy (an absolute bound)")
    p.add_argument("--fail-on-flags", default="mismatch", metavar="FLAGS",
                   help="device quality flags (joined by |) whose slots, though excluded from "
                   "the comparison, fail the verdict: the device's own register and power "
                   "disagreeing is a sign of inaccuracy, not missing data; '' for none")
    p.add_argument("--max-excluded", type=int, default=None, metavar="N",
                   help="fail when more than N slots are excluded (default: no limit)")
    for opt, attr, hlp in INTEGRATOR_OPTS:
        p.add_argument(opt, dest=attr, type=int, default=replay_cmd.DEFAULTS[attr], help=hlp)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the verdict line")
    p.set_defaults(func=run_cmd)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def tool_version():
    """Package version plus the git commit of this checkout (and whether the code differs)."""
    try:
        from importlib.metadata import version
        v = version("smeter")
    except Exception:  # not installed: the checkout is all we know
        v = "unknown"
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "edge", "host_tools", "hw"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "", ""
    if head:
        v += " (git %s%s)" % (head, ", with local changes in edge/, host_tools/ or hw/" if dirty else "")
    return v


@functools.lru_cache(maxsize=None)
def runtime_version(runtime):
    if runtime == "cpython":
        return "CPython " + sys.version.split()[0]
    exe = replay_cmd.find_micropython()
    if exe is None:
        return "micropython (not found)"
    try:
        out = subprocess.run([exe, "-c", "import sys; v = sys.implementation.version; "
                              "print('%d.%d.%d' % v[:3] + ('-' + v[3] if len(v) > 3 and v[3] else ''))"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = "?"
    return "MicroPython %s unix port (%s)" % (out, exe)


def command_line(args):
    """The canonical command that reproduces this run, every effective setting spelled out."""
    argv = ["smeter", "verify", args.trace]
    if args.tolerance is not None:
        argv += ["--tolerance", args.tolerance]
    else:
        argv += ["--class", args.cls, "--stage", args.stage]
    argv += ["--runtime", args.runtime]
    if args.runtime == "micropython":
        argv += ["--heap", args.heap]
    if args.reference:
        argv += ["--reference", args.reference]
    argv += ["--min-energy-wh", "%g" % args.min_energy_wh, "--fail-on-flags", args.fail_on_flags]
    if args.max_excluded is not None:
        argv += ["--max-excluded", str(args.max_excluded)]
    for opt, attr, _ in INTEGRATOR_OPTS:
        argv += [opt, str(getattr(args, attr))]
    if args.report:
        argv += ["--report", args.report]
    return shlex.join(argv)


def replay_device(args):
    """The device's slot CSV (str), from the edge core on args.runtime."""
    lines = replay_cmd.compact_lines(args.trace, replay_cmd.config_line(args, args.max_power_w))
    if args.runtime == "micropython":
        return replay_cmd.replay_micropython(lines, args.heap)
    return replay_cmd.replay_cpython(lines)


def verify(args):
    """Run the whole verification for parsed args; returns (Result, meta dict, (the trace's
    Samples if they were read anyway, the reference meter trace's Samples), None where not).

    Raises TraceError / cmp.VerifyError (input) or RuntimeError / OSError (runtime)."""
    t0 = time.monotonic()
    for path in (args.trace, args.reference):
        if path is not None and not os.path.isfile(path):
            raise cmp.VerifyError("no such file: %s" % path)
    classes = cmp.load_classes()
    tol, tol_text = cmp.resolve_tolerance(classes, args.cls, args.stage, args.tolerance)
    if not args.min_energy_wh >= 0:
        raise cmp.VerifyError("--min-energy-wh must be >= 0")
    min_e = cmp.Fraction(str(args.min_energy_wh))
    fail_flags = tuple(f for f in args.fail_on_flags.split("|") if f)
    for f in fail_flags:
        if f not in cmp.FLAG_MEANING:
            raise cmp.VerifyError("--fail-on-flags: unknown flag %r (known: %s)"
                                  % (f, ", ".join(cmp.FLAG_MEANING)))
    if args.max_excluded is not None and args.max_excluded < 0:
        raise cmp.VerifyError("--max-excluded must be >= 0")
    dev_text = replay_device(args)
    samples = ref_samples = None
    if args.reference and ref.is_slot_csv(args.reference):
        ref_slots, dirs = ref.read_slot_csv(args.reference)
        srcs = {d: ("slot values" if d in dirs else None) for d in cmp.DIRECTIONS}
        n_samples = "(slot CSV reference)"
    else:
        ref_path = args.reference or args.trace
        samples = ref.read_samples(ref_path)
        srcs = ref.sources(samples)
        ref_slots = ref.reference(samples, args.max_gap_s * 1000)
        dirs = [d for d in cmp.DIRECTIONS if srcs[d] is not None]
        n_samples = str(len(samples))
        if args.reference:
            ref_samples, samples = samples, None  # the power chart shows the device's trace
    res = cmp.compare(cmp.parse_device_csv(dev_text), ref_slots, tol, min_e,
                      classes["comparison"]["resolution_wh"], dirs, fail_flags, args.max_excluded)
    meta = {
        "tool_version": tool_version(),
        "trace": args.trace,
        "trace_sha256": sha256(args.trace),
        "reference": ("independent reference meter trace %s" % args.reference if args.reference
                      else "computed from the trace (exact, host_tools/verify/reference.py)"),
        "reference_sha256": sha256(args.reference) if args.reference else "",
        "reference_sources": ", ".join("%s: %s" % (cmp.DIR_NAME[d], srcs[d] or "none")
                                       for d in cmp.DIRECTIONS),
        "runtime": runtime_version(args.runtime) + (" heap " + args.heap
                                                    if args.runtime == "micropython" else ""),
        "tolerance": tol_text,
        "class": args.cls if args.tolerance is None else "",
        "stage": args.stage if args.tolerance is None else "",
        "min_energy_wh": "%g" % args.min_energy_wh,
        "fail_on_flags": args.fail_on_flags or "(none)",
        "max_excluded": "no limit" if args.max_excluded is None else str(args.max_excluded),
        "resolution_wh": str(classes["comparison"]["resolution_wh"]),
        "classes_checked": classes.get("checked", ""),
        "integrator": " ".join("%s=%s" % (a, getattr(args, a)) for _, a, _ in INTEGRATOR_OPTS),
        "command": command_line(args),
        "cwd": os.getcwd(),
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": "%.1f" % (time.monotonic() - t0),
        "reference_samples": n_samples,
    }
    return res, meta, (samples, ref_samples)


def summary(res, meta):
    """The verdict and its key figures as text lines (what the command prints)."""
    w = res.worst
    out = ["smeter verify: %s  %s on %s, %s" % (res.verdict.upper(), meta["trace"],
                                                meta["runtime"].split(" (")[0], meta["tolerance"])]
    out.append("  %d slots: %d compared, %d excluded; reference %s (%s)"
               % (len(res.rows), len(res.compared), len(res.excluded),
                  "meter trace" if meta["reference_sha256"] else "computed", meta["reference_sources"]))
    if w is not None:
        r, d, u = w
        out.append("  worst slot %d (%s) %s: device %s Wh, reference %s Wh, error %s Wh (%s), "
                   "%.0f %% of the allowed %s Wh"
                   % (r.slot_of_day, r.start, cmp.DIR_NAME[d], r.dev[d], cmp.wh(r.ref[d]),
                      cmp.wh(r.err[d], True), cmp.rel_text(r.rel[d]), float(u) * 100,
                      cmp.wh(r.allowed[d])))
    for d in res.directions:
        t = res.totals[d]
        out.append("  day total %s: device %d Wh, reference %s Wh, error %s Wh (%s), allowed %s Wh"
                   % (cmp.DIR_NAME[d], t["dev"], cmp.wh(t["ref"]), cmp.wh(t["err"], True),
                      cmp.rel_text(t["rel"]), cmp.wh(t["allowed"])))
    for r in res.excluded:
        out.append("  excluded slot %d (%s): %s" % (r.slot_of_day, r.start, "; ".join(r.reasons)))
    for reason in res.verdict_reasons:
        out.append("  FAIL: " + reason)
    return out


def run_cmd(args):
    try:
        res, meta, samples = verify(args)
    except TraceError as e:
        print("smeter verify: bad trace: %s" % e, file=sys.stderr)
        return 2
    except cmp.VerifyError as e:
        print("smeter verify: %s" % e, file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as e:
        print("smeter verify: cannot run the device replay: %s" % e, file=sys.stderr)
        return 2
    lines = summary(res, meta)
    if args.report:
        from host_tools.verify import report
        try:
            path = report.write_report(res, meta, args.report, *samples)
        except OSError as e:
            print("smeter verify: cannot write the report: %s" % e, file=sys.stderr)
            return 2
        lines.append("  report: " + path)
    print("\n".join(lines[:1] if args.quiet else lines))
    return 0 if res.verdict == "pass" else 1
