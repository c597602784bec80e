"""Per-slot comparison of the device's 30-minute values with the reference, and the verdict.

Definitions (docs/certification.md):
  error      e = device - reference (Wh), per slot and direction (import, export)
  relative   e / reference, in % of the reference; undefined when the reference is 0
  allowed    tol * max(|reference|, min_energy_wh) + resolution_wh
             - tol: the class tolerance for the stage (or --tolerance), as a fraction
             - below min_energy_wh the tolerance applies to min_energy_wh: an absolute bound,
               because a relative error of a near-empty slot says nothing about accuracy
             - resolution_wh: one digit of the reported value (whole Wh, remainder carried)
  guard      w = u_rel * |reference| + u_abs: the reference's expanded uncertainty (k=2), the
             guard band of the decision rule (decision.py, ILAC-G8:09/2019); 0 for an exact
             (computed or emulated) reference
  decision   per direction, from |e| against allowed and w (decision.decide): pass,
             conditional-pass, conditional-fail or fail; the slot takes the worst.
  day total  the same rule on the sums over the included slots.
Slots are excluded from the comparison (listed with reasons) when the device flagged them,
when the reference does not cover them fully, or when either side has no value. A slot
flagged with one of fail_flags (default: mismatch) still fails the verdict, and so do more
than max_excluded exclusions.
"""
import json
import os
from fractions import Fraction

from edge.flags import names as flag_names
from edge.slots import slot_iso, slot_of_day
from host_tools.trace import parse_ts

from . import decision as dec
from .reference import SLOT_MS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSES_PATH = os.path.join(ROOT, "hw", "accuracy_classes.json")
DIRECTIONS = ("imp", "exp")
DIR_NAME = {"imp": "import", "exp": "export"}
STAGES = {"before-use": "before_use_pct", "in-use": "in_use_pct"}

FLAG_MEANING = {
    "partial": "the device's integrated intervals do not cover the whole slot",
    "missing": "too much of the slot is uncovered, or no usable interval (欠測)",
    "reset": "a register went backwards or jumped (reset/replacement); a delta was dropped",
    "clock_step": "time went backwards; the slot's time attribution is doubtful",
    "mismatch": "the device's register and power integral disagree beyond its tolerance",
    "invalid": "a reading was out of range and was ignored",
    "estimated": "(推定) a time-proportional share of a register delta whose placement is unknown: "
                 "the total is exact, the split across slots is estimated",
}
# Not an exclusion: the total is complete, and the comparison with the exact reference
# measures the slot's error including any misattribution (the device's stated attribution
# bound is reported, not added to the guard band: the guard band is the uncertainty of the
# measured error, which comes from the reference, not from the meter under test).
ESTIMATED = "estimated"


class VerifyError(Exception):
    """Bad configuration or input for the comparison (exit status 2)."""


def load_classes(path=CLASSES_PATH):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def parse_tolerance(text):
    """'2%', '2' (both percent) or '0.9 %' -> Fraction(2, 100) etc."""
    t = text.strip().rstrip("%").strip()
    try:
        v = Fraction(t)
    except (ValueError, ZeroDivisionError):
        raise VerifyError("--tolerance %r is not a percentage like 2%%" % text)
    if not 0 < v < 100:
        raise VerifyError("--tolerance %r must be above 0 %% and below 100 %%" % text)
    return v / 100


def resolve_tolerance(classes, cls, stage, tolerance):
    """(tolerance as a Fraction, human description). --tolerance wins over --class."""
    if stage not in STAGES:
        raise VerifyError("unknown stage %r (before-use or in-use)" % stage)
    if tolerance is not None:
        tol = parse_tolerance(tolerance)
        return tol, "%s %% (--tolerance%s)" % (pct(tol * 100), ", overrides --class " + cls
                                                 if cls else "")
    table = classes["classes"]
    if cls not in table:
        raise VerifyError("unknown class %r (known: %s)" % (cls, ", ".join(sorted(table))))
    v = table[cls].get(STAGES[stage])
    if v is None:
        raise VerifyError("class %s has no confirmed %s tolerance in hw/accuracy_classes.json "
                          "(%s); give the notified figure with --tolerance"
                          % (cls, stage, table[cls].get("note", "unconfirmed")))
    tol = Fraction(str(v)) / 100
    return tol, "class %s, %s: %s %%" % (cls, stage, pct(tol * 100))


def pct(x):
    """A Fraction percentage as short text: 2, 5.5, 0.9."""
    s = "%.4f" % float(x)
    return s.rstrip("0").rstrip(".")


class DevSlot:
    __slots__ = ("slot", "imp", "exp", "flags", "order", "bound")

    def __init__(self, slot, imp, exp, flags, order, bound=None):
        self.slot = slot
        self.imp = imp
        self.exp = exp
        self.flags = flags
        self.order = order
        self.bound = bound  # the device's attribution bound in Wh (flags bits 8..12), if given

    def value(self, d):
        return self.imp if d == "imp" else self.exp


def parse_device_csv(text):
    """The slot CSV of `smeter replay` -> [DevSlot] in output order. An optional sixth column
    bound_wh holds the device's attribution bound per slot (edge/flags.py bits 8..12; empty:
    unknown), as the collector stores it."""
    lines = text.splitlines()
    head = lines[0] if lines else ""
    if head not in ("slot_start,slot,import_wh,export_wh,flags",
                    "slot_start,slot,import_wh,export_wh,flags,bound_wh"):
        raise VerifyError("device output is not a replay slot CSV")
    out = []
    for i, line in enumerate(lines[1:]):
        if not line:
            continue
        f = line.split(",")
        s, _ = parse_ts(f[0])
        bound = Fraction(f[5]) if len(f) > 5 and f[5] else None
        out.append(DevSlot(s // (SLOT_MS // 1000), int(f[2]) if f[2] else None,
                           int(f[3]) if f[3] else None, f[4], i, bound))
    return out


class Row:
    """One slot of the comparison. Per direction d: dev[d] (int Wh or None), ref[d]
    (Fraction or None), err[d], rel[d] (Fraction % or None), allowed[d]; status 'pass',
    'fail' or 'excluded'; reasons: why excluded or failed."""

    def __init__(self, slot):
        self.slot = slot
        self.start = slot_iso(slot)
        self.slot_of_day = slot_of_day(slot)
        self.flags = ""
        self.dev = {}
        self.ref = {}
        self.err = {}
        self.rel = {}
        self.allowed = {}
        self.ok = {}
        self.guard = {}
        self.decision = {}
        self.status = "pass"
        self.reasons = []
        self.flag_fail = False  # excluded, but carries a flag that fails the verdict
        self.bound = None  # the device's stated attribution bound (Wh) of an estimated slot

    @property
    def quality(self):
        """`exact` or `estimated` (推定: the device flagged its split across slots as an
        estimate, docs/integrator.md "Attribution bound"); None when the device has no value for the slot."""
        if all(v is None for v in self.dev.values()):
            return None
        return ESTIMATED if ESTIMATED in (self.flags or "").split("|") else "exact"


class Result:
    def __init__(self):
        self.rows = []
        self.directions = []
        self.tol = None
        self.min_energy_wh = None
        self.resolution_wh = None
        self.totals = {}  # d -> dict(dev, ref, err, rel, allowed, ok)
        self.worst = None  # (row, d, utilisation = |err| / allowed)
        self.worst_rel = None  # (row, d) with the largest |rel| among slots >= min energy
        self.verdict = "fail"
        self.verdict_reasons = []

    @property
    def compared(self):
        return [r for r in self.rows if r.status != "excluded"]

    @property
    def excluded(self):
        return [r for r in self.rows if r.status == "excluded"]

    @property
    def estimated(self):
        """Compared slots whose device value is an estimate (quality `estimated`)."""
        return [r for r in self.compared if r.quality == ESTIMATED]


def allowed_wh(tol, ref, min_energy_wh, resolution_wh):
    return tol * max(abs(ref), min_energy_wh) + resolution_wh


def compare(dev_slots, ref_slots, tol, min_energy_wh, resolution_wh, directions=None,
            fail_flags=("mismatch",), max_excluded=None, u_rel=Fraction(0), u_abs=Fraction(0)):
    """Compare device slots with reference slots ({slot: RefSlot}); returns a Result.

    directions: which of 'imp'/'exp' the reference measures (default: those it has).
    fail_flags: device flags that fail the verdict although their slot is excluded (the
    device says its own measurements disagree: a meter-accuracy sign, not missing data).
    max_excluded: more excluded slots than this fail the verdict (None: no limit).
    u_rel, u_abs: the reference's expanded uncertainty (fraction of the reading, Wh), the
    guard band of the decision rule."""
    res = Result()
    res.u_rel, res.u_abs = Fraction(u_rel), Fraction(u_abs)
    res.tol = tol
    res.min_energy_wh = Fraction(min_energy_wh)
    res.resolution_wh = Fraction(resolution_wh)
    if directions is None:
        directions = [d for d in DIRECTIONS if any(r.value(d) is not None for r in ref_slots.values())]
    res.directions = list(directions)
    seen = {}
    rows = []
    bounds = {}
    for ds in dev_slots:
        row = Row(ds.slot)
        row.flags = ds.flags
        bounds[ds.slot] = ds.bound
        if ds.slot in seen:
            row.reasons.append("slot repeated in the device output (clock step)")
            seen[ds.slot].reasons.append("slot repeated in the device output (clock step)")
            seen[ds.slot].status = "excluded"
        seen[ds.slot] = row
        for d in directions:
            row.dev[d] = ds.value(d)
        rows.append(row)
    for k in sorted(ref_slots):
        if k not in seen:
            row = Row(k)
            row.reasons.append("no device value for this slot")
            for d in directions:
                row.dev[d] = None
            seen[k] = row
            rows.append(row)
    for row in rows:
        if row.flags:
            for f in row.flags.split("|"):
                if f == ESTIMATED:
                    row.bound = bounds.get(row.slot)
                    continue
                row.reasons.append("device flag %s: %s" % (f, FLAG_MEANING.get(f, "unknown flag")))
        r = ref_slots.get(row.slot)
        if r is not None:
            row.reasons.extend(r.notes)
        for d in directions:
            rv = r.value(d) if r is not None else None
            row.ref[d] = rv
            if rv is None:
                row.reasons.append("no reference %s value" % DIR_NAME[d])
            elif r.cover(d) < SLOT_MS:
                row.reasons.append("reference covers only %d of 1800 s (%s)"
                                   % (r.cover(d) // 1000, DIR_NAME[d]))
            dv = row.dev[d]
            if dv is None and not any(x.startswith("no device") for x in row.reasons):
                row.reasons.append("no device %s value" % DIR_NAME[d])
            if rv is not None and dv is not None:
                e = dv - rv
                row.err[d] = e
                row.rel[d] = e * 100 / rv if rv else None
                row.allowed[d] = allowed_wh(tol, rv, res.min_energy_wh, res.resolution_wh)
                row.ok[d] = abs(e) <= row.allowed[d]
                row.guard[d] = res.u_rel * abs(rv) + res.u_abs
                row.decision[d] = dec.decide(e, row.allowed[d], row.guard[d])
        if row.reasons:
            row.status = "excluded"
        else:
            row.status = dec.worst(row.decision[d] for d in directions)
            for d in directions:
                if not row.ok[d]:
                    row.reasons.append("%s error %s Wh (%s) exceeds the allowed %s Wh"
                                       % (DIR_NAME[d], wh(row.err[d], sign=True),
                                          rel_text(row.rel[d]), wh(row.allowed[d])))
                elif row.decision[d] != dec.PASS:
                    row.reasons.append("%s error %s Wh is within the allowed %s Wh but inside "
                                       "the guard band %s Wh (reference uncertainty)"
                                       % (DIR_NAME[d], wh(row.err[d], sign=True),
                                          wh(row.allowed[d]), wh(row.guard[d])))
    rows.sort(key=lambda x: x.slot)
    res.rows = rows
    comp = res.compared
    for d in directions:
        sd = sum((r.dev[d] for r in comp), 0)
        sr = sum((r.ref[d] for r in comp), Fraction(0))
        e = sd - sr
        al = allowed_wh(tol, sr, res.min_energy_wh, res.resolution_wh)
        g = res.u_rel * abs(sr) + res.u_abs
        res.totals[d] = {"dev": sd, "ref": sr, "err": e, "rel": e * 100 / sr if sr else None,
                         "allowed": al, "ok": abs(e) <= al, "guard": g,
                         "decision": dec.decide(e, al, g)}
        for r in comp:
            u = abs(r.err[d]) / r.allowed[d]
            if res.worst is None or u > res.worst[2]:
                res.worst = (r, d, u)
            if r.rel[d] is not None and abs(r.ref[d]) >= res.min_energy_wh:
                if res.worst_rel is None or abs(r.rel[d]) > abs(res.worst_rel[0].rel[res.worst_rel[1]]):
                    res.worst_rel = (r, d)
    reasons = []
    if not directions:
        reasons.append("the reference measures neither import nor export")
    if not comp:
        reasons.append("no slot could be compared (all excluded)")
    for r in res.excluded:
        bad = [f for f in r.flags.split("|") if f and f in fail_flags]
        if bad:
            r.flag_fail = True
            reasons.append("slot %d (%s): flagged %s by the device, which fails the verdict "
                           "(--fail-on-flags)" % (r.slot_of_day, r.start, "|".join(bad)))
    if max_excluded is not None and len(res.excluded) > max_excluded:
        reasons.append("%d slot(s) excluded, more than --max-excluded %d"
                       % (len(res.excluded), max_excluded))
    for r in comp:
        if r.status in (dec.FAIL, dec.COND_FAIL):
            reasons.append("slot %d (%s): %s" % (r.slot_of_day, r.start, "; ".join(r.reasons)))
    for d in directions:
        t = res.totals[d]
        if comp and not t["ok"]:
            reasons.append("day total %s error %s Wh exceeds the allowed %s Wh"
                           % (DIR_NAME[d], wh(t["err"], sign=True), wh(t["allowed"])))
    res.verdict_reasons = reasons
    if reasons:
        res.verdict = dec.FAIL
    else:  # no reason to fail: pass, or conditional pass where a slot sits in the guard band
        res.verdict = dec.worst([r.status for r in comp] + [res.totals[d]["decision"]
                                                            for d in directions] or [dec.PASS])
        for r in comp:
            if r.status == dec.COND_PASS:
                res.verdict_reasons.append("slot %d (%s): %s" % (r.slot_of_day, r.start,
                                                                "; ".join(r.reasons)))
    return res


def wh(x, sign=False):
    """Fraction Wh as text with 3 decimals ('' for None)."""
    if x is None:
        return ""
    return ("%+.3f" if sign else "%.3f") % float(x)


def rel_text(x):
    return "n/a" if x is None else "%+.3f %%" % float(x)
