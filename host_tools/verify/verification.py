"""One verification run of `smeter verify` (host_tools/commands/verify.py parses and prints):
trace or slot CSV in; the integration check or the accuracy verification (per slot or per
test-plan point) as docs/commands/verify.md defines them; out the verdict, the report
document (what --json prints and the report page embeds) and the summary lines."""
import datetime
import functools
import hashlib
import os
import shlex
import subprocess
import sys
import time
from fractions import Fraction

from host_tools import ROOT, exit_codes, micropython, replay
from host_tools.verify import compare as cmp
from host_tools.verify import consistency, declarations, decision as dec, derived, plan as planmod
from host_tools.verify import reference as ref
from host_tools.verify import seal_section

SOURCE_DIRS = ("edge", "host_tools", "hw")
INTEGRATOR_OPTS = (  # (option, attribute, help); defaults from replay.DEFAULTS
    ("--max-power-w", "max_power_w", "device maximum power (W): power range and register plausibility bound"),
    ("--power-exp", "power_exp", "power resolution 10**N W in the integrator (-1..3)"),
    ("--max-gap-s", "max_gap_s", "sample intervals longer than this are not integrated, by the device "
     "nor by the reference (the slot is then excluded)"),
    ("--missing-ms", "missing_ms", "uncovered time in a slot above which the device flags it missing"),
    ("--margin-pct", "margin_pct", "register delta above max power x elapsed x this %% is a reset"),
    ("--mismatch-wh", "mismatch_wh", "device register vs power tolerance, absolute part (Wh)"),
    ("--mismatch-pct", "mismatch_pct", "device register vs power tolerance, relative part (%% of register)"),
)
INTEGRATION = "integration"
ACCURACY = "accuracy"
CONSISTENT = "consistent"
INCONSISTENT = "inconsistent"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def source_sha256():
    """SHA-256 over the tool's own source (edge/, host_tools/, hw/: .py .c .json files, sorted
    by path, each as path NUL content NUL): what the report was produced by, git or not."""
    h = hashlib.sha256()
    files = []
    for top in SOURCE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for f in filenames:
                if f.endswith((".py", ".c", ".json")):
                    files.append(os.path.relpath(os.path.join(dirpath, f), ROOT))
    for rel in sorted(files):
        with open(os.path.join(ROOT, rel), "rb") as f:
            h.update(rel.encode() + b"\0" + f.read() + b"\0")
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
        dirty = subprocess.run(["git", "status", "--porcelain", "--"] + list(SOURCE_DIRS),
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
    exe = micropython.find()
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
    for opt, attr in (("--reference", "reference"), ("--reference-meter", "reference_meter"),
                      ("--meter", "meter"), ("--lab", "lab"), ("--plan", "plan"),
                      ("--plan-start", "plan_start")):
        if getattr(args, attr):
            argv += [opt, getattr(args, attr)]
    if args.integration_only:
        argv.append("--integration-only")
    argv += ["--min-energy-wh", "%g" % args.min_energy_wh,
             "--min-coverage-pct", "%g" % args.min_coverage_pct,
             "--fail-on-flags", args.fail_on_flags]
    if args.max_excluded is not None:
        argv += ["--max-excluded", str(args.max_excluded)]
    for opt, attr, _ in INTEGRATOR_OPTS:
        argv += [opt, str(getattr(args, attr))]
    if args.report:
        argv += ["--report", args.report]
    return shlex.join(argv)


def replay_device(args, report=None):
    """The device's slot CSV (str), from the edge core on args.runtime; report: a callable
    told the MicroPython replay's progress (host_tools/replay.py)."""
    lines = replay.compact_lines(args.trace, replay.config_line(args, args.max_power_w))
    if args.runtime == "micropython":
        return replay.replay_micropython(lines, args.heap, report=report)
    return replay.replay_cpython(lines)


def _check_args(args):
    for path in (args.trace, args.reference, args.reference_meter, args.meter, args.lab):
        if path is not None and not os.path.isfile(path):
            raise cmp.VerifyError("no such file: %s" % path)
    if args.reference and not args.reference_meter:
        raise cmp.VerifyError("--reference needs --reference-meter REF.json: an accuracy verdict "
                              "needs the reference meter's identity, calibration certificate and "
                              "uncertainty (docs/certification.md#declarations)")
    if args.reference_meter and not args.reference:
        raise cmp.VerifyError("--reference-meter without --reference: give the reference "
                              "meter's readings too")
    if args.plan and not (args.reference and args.meter):
        raise cmp.VerifyError("--plan needs --reference (with --reference-meter) and --meter "
                              "(the rating the plan's load points are percentages of)")
    if args.plan_start and not args.plan:
        raise cmp.VerifyError("--plan-start without --plan")
    if args.integration_only and args.reference:
        raise cmp.VerifyError("--integration-only and --reference exclude each other")
    if not args.min_energy_wh >= 0:
        raise cmp.VerifyError("--min-energy-wh must be >= 0")
    if not 0 <= args.min_coverage_pct <= 100:
        raise cmp.VerifyError("--min-coverage-pct must be in 0..100")
    if args.max_excluded is not None and args.max_excluded < 0:
        raise cmp.VerifyError("--max-excluded must be >= 0")
    fail_flags = tuple(f for f in args.fail_on_flags.split("|") if f)
    for f in fail_flags:
        if f not in cmp.FLAG_MEANING:
            raise cmp.VerifyError("--fail-on-flags: unknown flag %r (known: %s)"
                                  % (f, ", ".join(cmp.FLAG_MEANING)))
    return fail_flags


def _span(samples):
    if samples is None or not len(samples):
        return None
    from edge.timebase import EDGE_EPOCH_UNIX
    f = (lambda ms: datetime.datetime.fromtimestamp(EDGE_EPOCH_UNIX + ms / 1000,
                                                    datetime.timezone(datetime.timedelta(hours=9)))
         .isoformat(timespec="seconds"))
    return [f(samples.t[0]), f(samples.t[-1])]


class Run:
    """Everything one verification produced: the comparison, the plan points, the document."""

    def __init__(self):
        self.res = None
        self.points = None
        self.check = INTEGRATION
        self.verdict = None
        self.exit_status = None
        self.reasons = []
        self.samples = None
        self.ref_samples = None
        self.consistency = None
        self.per_class = []
        self.seal = None
        self.doc = None


def verify(args, report=None):
    """Run the whole verification for parsed args -> Run.

    Raises TraceError / cmp.VerifyError (input) or RuntimeError / OSError (runtime)."""
    t0 = time.monotonic()
    fail_flags = _check_args(args)
    classes = cmp.load_classes()
    tol, tol_text = cmp.resolve_tolerance(classes, args.cls, args.stage, args.tolerance)
    min_e = Fraction(str(args.min_energy_wh))
    res_wh = classes["comparison"]["resolution_wh"]
    meter = declarations.load_meter(args.meter) if args.meter else None
    refm = declarations.load_reference_meter(args.reference_meter) if args.reference_meter else None
    lab = declarations.load_lab(args.lab) if args.lab else None
    plan = planmod.load(args.plan) if args.plan else None
    sealed = seal_section.load(args.seal, args.seal_pubkeys) if args.seal else None
    if plan is not None and (meter.get("rated_power") is None):
        raise cmp.VerifyError("--meter %s: --plan needs rated_power_w or rated_voltage_v and "
                              "rated_current_a" % args.meter)
    run = Run()
    dev_is_slots = ref.is_slot_csv(args.trace)
    if dev_is_slots:
        if not args.reference:
            raise cmp.VerifyError("%s holds 30-minute values, not readings: there is nothing to "
                                  "integrate; give --reference to verify them" % args.trace)
        with open(args.trace, encoding="utf-8-sig") as f:
            text = f.read()
        if not text.startswith(derived.REPLAY_HEADER):
            raise cmp.VerifyError("%s: the device's 30-minute values must be a slot CSV in the "
                                  "`smeter replay` format (%s)" % (args.trace, derived.REPLAY_HEADER))
        try:
            dev_slots = cmp.parse_device_csv(text)
        except (ValueError, IndexError) as e:
            raise cmp.VerifyError("%s: bad slot CSV (%s)" % (args.trace, e))
        replay_text = None
    else:
        if report and args.runtime == "micropython":
            report("reading %s" % args.trace)
        replay_text = replay_device(args, report)
        dev_slots = cmp.parse_device_csv(replay_text)
    u_rel = u_abs = Fraction(0)
    if args.reference:
        run.check = ACCURACY
        u_rel, u_abs = refm["u_rel"], refm["u_abs"]
        if ref.is_slot_csv(args.reference):
            ref_slots, dirs = ref.read_slot_csv(args.reference)
            srcs = {d: ("slot values" if d in dirs else None) for d in cmp.DIRECTIONS}
            if not dev_is_slots:
                run.samples = ref.read_samples(args.trace)
            derived.check(args.trace, args.reference, True, dev_slots, replay_text,
                          ref_slots=ref_slots)
        else:
            run.ref_samples = ref.read_samples(args.reference)
            srcs = ref.sources(run.ref_samples)
            ref_slots = ref.reference(run.ref_samples, args.max_gap_s * 1000)
            dirs = [d for d in cmp.DIRECTIONS if srcs[d] is not None]
            if not dev_is_slots:
                run.samples = ref.read_samples(args.trace)
            derived.check(args.trace, args.reference, False, dev_slots, replay_text,
                          device_samples=run.samples)
    else:
        run.samples = ref.read_samples(args.trace)
        srcs = ref.sources(run.samples)
        ref_slots = ref.reference(run.samples, args.max_gap_s * 1000)
        dirs = [d for d in cmp.DIRECTIONS if srcs[d] is not None]
    compare = functools.partial(cmp.compare, dev_slots, ref_slots, min_energy_wh=min_e,
                                resolution_wh=res_wh, directions=dirs, fail_flags=fail_flags,
                                max_excluded=args.max_excluded, u_rel=u_rel, u_abs=u_abs)
    res = run.res = compare(tol=tol)
    sched = None
    if plan is not None:
        if args.plan_start:
            try:
                s, ms = ref.parse_ts(args.plan_start)
            except ValueError as e:
                raise cmp.VerifyError("--plan-start: %s" % e)
            if ms or s % (ref.SLOT_MS // 1000):
                raise cmp.VerifyError("--plan-start %s is not the start of a half hour"
                                      % args.plan_start)
            sched = planmod.schedule(plan, s * 1000 // ref.SLOT_MS)
        else:
            sched = planmod.schedule_from_reference(plan, ref_slots)
        direction = "imp" if meter.get("direction", "import") == "import" else "exp"
        if direction not in dirs:
            raise cmp.VerifyError("the reference measures no %s energy, the direction the meter "
                                  "declares" % cmp.DIR_NAME[direction])
        run.points, run.verdict = planmod.evaluate(plan, res, sched, direction,
                                                   meter["rated_power"], tol, u_rel, u_abs)
        run.reasons = ["point %s: %s: %s" % (p.id, p.decision, "; ".join(p.reasons))
                       for p in run.points if p.decision != dec.PASS]
    elif run.check == ACCURACY:
        run.verdict, run.reasons = slot_verdict(res, args.min_coverage_pct)
    else:
        run.consistency = consistency.check(run.samples, args.max_gap_s * 1000, tol, min_e,
                                            res_wh)
        from edge.slots import slot_iso, slot_of_day
        reasons = list(res.verdict_reasons)
        reasons += ["the device's own measurements disagree: " + x.text(slot_iso, slot_of_day)
                    for x in run.consistency[2]]
        run.reasons = reasons
        run.verdict = INCONSISTENT if reasons else CONSISTENT
    if sealed is not None:
        run.seal, seal_reasons = seal_section.evaluate(*sealed, dev_slots)
        run.reasons += seal_reasons
    run.exit_status = exit_status(run, args)
    if run.check == ACCURACY:
        run.per_class = per_class(classes, args, compare, plan, sched, meter, u_rel, u_abs,
                                  run.points)
    run.doc = document(run, args, dict(
        tol=tol, tol_text=tol_text, classes=classes, meter=meter, refm=refm, lab=lab, plan=plan,
        srcs=srcs, dev_is_slots=dev_is_slots, seconds=time.monotonic() - t0))
    return run


def slot_verdict(res, min_coverage_pct):
    """The accuracy verdict per slot: the comparison's, but INCOMPLETE (never a pass) when fewer
    than min_coverage_pct of the slots were compared. -> (verdict, reasons)."""
    verdict, reasons = res.verdict, list(res.verdict_reasons)
    n = len(res.rows)
    if verdict in (dec.PASS, dec.COND_PASS) and n and len(res.compared) * 100 < min_coverage_pct * n:
        verdict = dec.INCOMPLETE
        reasons.append("coverage: %d of %d slots compared, %g %% required (--min-coverage-pct)"
                       % (len(res.compared), n, min_coverage_pct))
    return verdict, reasons


def exit_status(run, args):
    if run.seal is not None and run.seal["failed"]:
        return exit_codes.FAILED
    if run.check == INTEGRATION:
        if run.verdict == INCONSISTENT:
            return exit_codes.FAILED
        return exit_codes.OK if args.integration_only else exit_codes.INCOMPLETE
    return dec.EXIT[run.verdict]


def per_class(classes, args, compare, plan, sched, meter, u_rel, u_abs, points):
    """The verdict against every confirmed class and stage: [(class, stage, pct, verdict,
    {point id: decision} or None)]."""
    out = []
    for name in sorted(classes["classes"]):
        for stage, key in sorted(cmp.STAGES.items()):
            v = classes["classes"][name].get(key)
            if v is None:
                continue
            tol = Fraction(str(v)) / 100
            r = compare(tol=tol)
            if plan is not None:
                d = "imp" if meter.get("direction", "import") == "import" else "exp"
                pts, verdict = planmod.evaluate(plan, r, sched, d, meter["rated_power"], tol,
                                                u_rel, u_abs)
                out.append((name, stage, cmp.pct(tol * 100), verdict,
                            {p.id: p.decision for p in pts}))
            else:
                out.append((name, stage, cmp.pct(tol * 100),
                            slot_verdict(r, args.min_coverage_pct)[0], None))
    return out


def headline(run):
    text = _headline(run)
    if run.seal is not None and run.seal["failed"]:
        text += "; DAILY SEAL CHECK FAILED"
    return text


def _headline(run):
    if run.check == INTEGRATION:
        if run.verdict == INCONSISTENT:
            return "INTEGRATION CHECK FAILED (no accuracy verdict: no independent reference)"
        return "INTEGRATION CHECK CONSISTENT (no accuracy verdict: no independent reference)"
    what = "ACCURACY %s" % dec.TEXT[run.verdict]
    return what + (" per test plan" if run.points is not None else "")


def _s(x):
    return None if x is None else str(x)


def document(run, args, ctx):
    """The report data (JSON-able, exact numbers as strings): what --json prints, what the
    HTML shows and what its closing SHA-256 covers."""
    res = run.res
    classes = ctx["classes"]
    refm, meter = ctx["refm"], ctx["meter"]
    u_pct = None if refm is None else refm["u_rel"] * 100
    tol_pct = ctx["tol"] * 100
    tur = None if refm is None else dec.tur(tol_pct, u_pct)
    rule = classes["decision_rule"]
    slots = []
    for r in res.rows:
        s = {"slot_start": r.start, "slot": r.slot_of_day, "status": r.status, "flags": r.flags,
             "quality": r.quality, "attribution_bound_wh": _s(r.bound), "reasons": list(r.reasons)}
        for d in res.directions:
            n = cmp.DIR_NAME[d]
            s[n] = {"device_wh": r.dev.get(d), "reference_wh": _s(r.ref.get(d)),
                    "error_wh": _s(r.err.get(d)), "allowed_wh": _s(r.allowed.get(d)),
                    "guard_band_wh": _s(r.guard.get(d)), "decision": r.decision.get(d)}
        slots.append(s)
    doc = {
        "format": "smeter-verify/2",
        "check": run.check,
        "headline": headline(run),
        "verdict": run.verdict,
        "accuracy_verdict": None if run.check == INTEGRATION else run.verdict,
        "exit_status": run.exit_status,
        "exit_meaning": exit_codes.NAMES[run.exit_status],
        "reasons": run.reasons,
        "tolerance": {"text": ctx["tol_text"], "pct": str(tol_pct),
                      "class": None if args.tolerance else args.cls,
                      "stage": None if args.tolerance else args.stage,
                      "min_energy_wh": "%g" % args.min_energy_wh,
                      "resolution_wh": str(classes["comparison"]["resolution_wh"]),
                      "classes_checked": classes.get("checked", "")},
        "uncertainty": None if refm is None else {
            "reference_expanded_pct": str(u_pct), "coverage_factor": str(refm["k"]),
            "reference_absolute_wh": str(refm["u_abs"]),
            "tur": None if tur is None else "%.2f" % float(tur),
            "tur_text": ("exact reference (no uncertainty): guard band 0" if tur is None else
                         "%.1f : 1 (tolerance %s %% / uncertainty %s %%)"
                         % (float(tur), cmp.pct(tol_pct), cmp.pct(u_pct))),
            "tur_below_minimum": bool(tur is not None and tur < Fraction(str(rule["min_tur"]))),
            "min_tur": rule["min_tur"]},
        "decision_rule": rule,
        "meter": _meter_decl(meter),
        "reference_meter": _decl(refm, declarations.REFERENCE_FIELDS),
        "lab": _decl(ctx["lab"], declarations.LAB_FIELDS),
        "plan": None if ctx["plan"] is None else {
            "name": ctx["plan"]["name"], "title": ctx["plan"].get("title"),
            "path": ctx["plan"]["path"], "sha256": sha256(ctx["plan"]["path"]),
            "sources": ctx["plan"]["sources"], "unconfirmed": ctx["plan"].get("unconfirmed"),
            "coverage_pct": str(ctx["plan"]["coverage_pct"]),
            "min_energy_wh": str(ctx["plan"]["min_energy_wh"])},
        "points": None if run.points is None else [p.as_dict() for p in run.points],
        "classes": [{"class": c, "stage": s, "tolerance_pct": t, "verdict": v, "points": pts}
                    for c, s, t, v, pts in run.per_class],
        "consistency": None if run.consistency is None else {
            "directions": [cmp.DIR_NAME[d] for d in run.consistency[0]],
            "slots_checked": run.consistency[1],
            "disagreements": len(run.consistency[2])},
        "summary": {"slots": len(res.rows), "compared": len(res.compared),
                    "excluded": len(res.excluded), "estimated": len(res.estimated),
                    "directions": [cmp.DIR_NAME[d] for d in res.directions],
                    "reference_sources": {cmp.DIR_NAME[d]: ctx["srcs"][d] for d in cmp.DIRECTIONS},
                    "totals": {cmp.DIR_NAME[d]: {k: (v if isinstance(v, (bool, int, str)) else _s(v))
                                                 for k, v in res.totals[d].items()}
                               for d in res.directions}},
        "slots": slots,
        "seal": run.seal,
        "inputs": {"device": args.trace, "device_kind": ("30-minute values (slot CSV)"
                                                         if ctx["dev_is_slots"] else "trace"),
                   "device_sha256": sha256(args.trace), "device_span": _span(run.samples),
                   "reference": args.reference,
                   "reference_sha256": sha256(args.reference) if args.reference else None,
                   "reference_span": _span(run.ref_samples)},
        "provenance": {"tool_version": tool_version(), "source_sha256": source_sha256(),
                       "runtime": runtime_version(args.runtime) + (
                           " heap " + args.heap if args.runtime == "micropython" else ""),
                       "integrator": " ".join("%s=%s" % (a, getattr(args, a))
                                              for _, a, _ in INTEGRATOR_OPTS),
                       "command": command_line(args), "cwd": os.getcwd(),
                       "generated": datetime.datetime.now(datetime.timezone.utc)
                       .strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "seconds": "%.1f" % ctx["seconds"]},
    }
    return doc


def _meter_decl(meter):
    out = _decl(meter, declarations.METER_FIELDS)
    if out is not None and out["rated_power_w"] is None and meter.get("rated_power") is not None:
        out["rated_power_w"] = "%s (rated voltage x rated current)" % meter["rated_power"]
    return out


def _decl(d, fields):
    if d is None:
        return None
    return {k: (None if d.get(k) is None else str(d.get(k))) for k, _, _ in fields}


def summary(run):
    """The verdict and its key figures as text lines (what the command prints)."""
    res, doc = run.res, run.doc
    integ = run.check == INTEGRATION
    out = ["smeter verify: %s  %s on %s, %s%s" % (
        doc["headline"], doc["inputs"]["device"], doc["provenance"]["runtime"].split(" (")[0],
        "register vs power bound " if integ else "", doc["tolerance"]["text"])]
    rname = "computed" if integ else "reference"
    if run.check == INTEGRATION:
        c = doc["consistency"]
        out.append("  %d slots: %d compared with the values computed from the same trace, %d "
                   "excluded; register vs power integral checked in %d slot(s) (%s)"
                   % (len(res.rows), len(res.compared), len(res.excluded), c["slots_checked"],
                      ", ".join(c["directions"]) or "the trace has no register with power"))
        out.append("  an accuracy verdict needs --reference (a separate meter's readings) and "
                   "--reference-meter (its calibration)")
    else:
        u = doc["uncertainty"]
        out.append("  reference %s (%s %s, certificate %s): uncertainty %s %% (k=%s); TUR %s"
                   % (doc["inputs"]["reference"], doc["reference_meter"]["maker"],
                      doc["reference_meter"]["model"], doc["reference_meter"]["certificate_id"],
                      cmp.pct(Fraction(u["reference_expanded_pct"])), u["coverage_factor"],
                      u["tur_text"]))
        if u["tur_below_minimum"]:
            out.append("  warning: TUR below %s : 1 (%s)" % (u["min_tur"],
                                                            doc["decision_rule"]["min_tur_basis"]))
        out.append("  %d slots: %d compared, %d excluded; %d compared value(s) estimated "
                   "(device flag `estimated`, quality column)" % (
                       len(res.rows), len(res.compared), len(res.excluded), len(res.estimated)))
    if run.points is not None:
        for p in run.points:
            c = p.point
            out.append("  point %-12s %-9s I %s %% V %s %% %s Hz: device %s Wh, reference %s Wh, "
                       "error %s Wh, allowed %s Wh: %s"
                       % (p.id, p.kind, c.get("current_pct"), c.get("voltage_pct"),
                          c.get("frequency_hz"), "-" if p.dev is None else p.dev,
                          cmp.wh(p.ref) or "-", cmp.wh(p.err, True) or "-",
                          cmp.wh(p.allowed) or "-", dec.TEXT[p.decision]))
    else:
        w = res.worst
        if w is not None:
            r, d, u = w
            out.append("  worst slot %d (%s) %s: device %s Wh, %s %s Wh, error %s Wh "
                       "(%s), %.0f %% of the allowed %s Wh"
                       % (r.slot_of_day, r.start, cmp.DIR_NAME[d], r.dev[d], rname,
                          cmp.wh(r.ref[d]),
                          cmp.wh(r.err[d], True), cmp.rel_text(r.rel[d]), float(u) * 100,
                          cmp.wh(r.allowed[d])))
        for d in res.directions:
            t = res.totals[d]
            out.append("  day total %s: device %d Wh, %s %s Wh, error %s Wh (%s), "
                       "allowed %s Wh" % (cmp.DIR_NAME[d], t["dev"], rname, cmp.wh(t["ref"]),
                                          cmp.wh(t["err"], True), cmp.rel_text(t["rel"]),
                                          cmp.wh(t["allowed"])))
        for r in res.excluded:
            out.append("  excluded slot %d (%s): %s" % (r.slot_of_day, r.start,
                                                        "; ".join(r.reasons)))
    if run.seal is not None:
        sl = run.seal
        out.append("  daily seal: %s (device %d, %s, %d seal(s), key from %s); %d verified slot(s) "
                   "compared with the sealed values, %d differ"
                   % (sl["verdict"], sl["device_id"], sl["day"], sl["seals"], sl["key_source"],
                      sl["verified_slots_compared"], len(sl["verified_slots_differing"])))
    word = {dec.FAIL: "FAIL", dec.COND_FAIL: "FAIL", INCONSISTENT: "FAIL"}.get(run.verdict, "NOTE")
    if run.seal is not None and run.seal["failed"]:
        word = "FAIL"
    for reason in run.reasons:
        out.append("  %s: %s" % (word, reason))
    if run.per_class:
        out.append("  per class: " + ", ".join("%s %s %s %%: %s" % (c, s, t, dec.TEXT[v])
                                               for c, s, t, v, _ in run.per_class))
    out.append("  exit status %d (%s)" % (run.exit_status, exit_codes.NAMES[run.exit_status]))
    return out
