"""Test plans (hw/test_plans/*.json, docs/certification.md#test-plans): load points, the
starting-current test and the no-load test, and the verdict per point.

A point lasts whole JST half-hours and is judged on the sum of the meter's 30-minute values
over it against the reference's sum. Which slot belongs to which point comes from the
reference (its `point` column: the bench, or `smeter emulate --plan`, knows what it ran) or
from the plan's start time and the points' lengths. A point that is missing, not fully
covered, too short or not run at its planned conditions is INCOMPLETE, never a pass.
"""
import json
import os
from fractions import Fraction

from edge.slots import slot_iso
from . import decision as dec
from .compare import DIR_NAME, ROOT, VerifyError, pct, wh

PLANS_DIR = os.path.join(ROOT, "hw", "test_plans")
KINDS = ("load", "starting", "no_load")
SLOT_H = Fraction(1, 2)


def resolve(name_or_path):
    """A plan name in hw/test_plans/ or a path -> path."""
    if os.path.sep in name_or_path or name_or_path.endswith(".json"):
        return name_or_path
    return os.path.join(PLANS_DIR, name_or_path + ".json")


def names():
    try:
        return sorted(f[:-5] for f in os.listdir(PLANS_DIR) if f.endswith(".json"))
    except OSError:
        return []


def _frac(v, where):
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise VerifyError("%s must be a number" % where)
    try:
        return Fraction(str(v))
    except (ValueError, ZeroDivisionError):
        raise VerifyError("%s %r is not a number" % (where, v))


def load(name_or_path):
    """Read and check a plan; numbers become Fractions. VerifyError names the field."""
    path = resolve(name_or_path)
    try:
        with open(path, encoding="utf-8") as f:
            plan = json.load(f)
    except OSError as e:
        raise VerifyError("--plan %s: cannot read (%s; plans here: %s)"
                          % (name_or_path, e.strerror or e, ", ".join(names()) or "none"))
    except ValueError as e:
        raise VerifyError("--plan %s: not JSON (%s)" % (path, e))
    where = "--plan %s" % path
    if not isinstance(plan, dict) or plan.get("format") != "smeter-test-plan/1":
        raise VerifyError("%s: not a test plan (format must be smeter-test-plan/1)" % where)
    if not plan.get("sources"):
        raise VerifyError("%s: a plan must cite its sources" % where)
    for k in ("coverage_pct", "min_energy_wh", "condition_tolerance_pct"):
        plan[k] = _frac(plan.get(k), "%s: %s" % (where, k))
    if not 0 < plan["coverage_pct"] <= 100:
        raise VerifyError("%s: coverage_pct must be in (0, 100]" % where)
    pts = plan.get("points")
    if not isinstance(pts, list) or not pts:
        raise VerifyError("%s: points must be a non-empty list" % where)
    seen = set()
    for i, p in enumerate(pts):
        w = "%s: points[%d]" % (where, i)
        if not isinstance(p, dict):
            raise VerifyError("%s must be an object" % w)
        pid = p.get("id")
        if not isinstance(pid, str) or not pid or pid in seen or "," in pid:
            raise VerifyError("%s: id must be a unique non-empty name without commas" % w)
        seen.add(pid)
        if p.get("kind") not in KINDS:
            raise VerifyError("%s (%s): kind must be one of %s" % (w, pid, ", ".join(KINDS)))
        n = p.get("slots")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise VerifyError("%s (%s): slots must be a whole number >= 1" % (w, pid))
        p["current"] = _frac(p.get("current_pct"), "%s (%s): current_pct" % (w, pid)) / 100
        p["voltage"] = _frac(p.get("voltage_pct"), "%s (%s): voltage_pct" % (w, pid)) / 100
        p["pf"] = (Fraction(0) if p.get("power_factor") is None
                   else _frac(p["power_factor"], "%s (%s): power_factor" % (w, pid)))
        if p["kind"] == "no_load" and p["current"] != 0:
            raise VerifyError("%s (%s): a no_load point has current_pct 0" % (w, pid))
        if p["kind"] != "no_load" and not (p["current"] > 0 and 0 < p["pf"] <= 1):
            raise VerifyError("%s (%s): needs current_pct > 0 and 0 < power_factor <= 1" % (w, pid))
        p["min_registered"] = _frac(p.get("min_registered_pct", 0),
                                    "%s (%s): min_registered_pct" % (w, pid)) / 100
        p["max_registered"] = _frac(p.get("max_registered_wh", 0),
                                    "%s (%s): max_registered_wh" % (w, pid))
    plan["path"] = path
    return plan


def nominal_w(point, rated_power):
    """The power the point should run at (W, exact)."""
    return rated_power * point["current"] * point["voltage"] * point["pf"]


def schedule(plan, start_slot):
    """{absolute slot: point id} for a plan started at start_slot."""
    out = {}
    k = start_slot
    for p in plan["points"]:
        for _ in range(p["slots"]):
            out[k] = p["id"]
            k += 1
    return out


def schedule_from_reference(plan, ref_slots):
    """{slot: point id} from the reference's point column; VerifyError on unknown names."""
    ids = {p["id"] for p in plan["points"]}
    out = {}
    for k, r in ref_slots.items():
        if r.point is None:
            continue
        if r.point not in ids:
            raise VerifyError("reference slot %s names point %r, not in plan %s"
                              % (slot_iso(k), r.point, plan["name"]))
        out[k] = r.point
    if not out:
        raise VerifyError("the reference has no point column: give --plan-start")
    return out


class PointResult:
    def __init__(self, point):
        self.point = point
        self.id = point["id"]
        self.kind = point["kind"]
        self.slots = []
        self.compared = 0
        self.dev = None
        self.ref = None
        self.err = None
        self.rel = None
        self.allowed = None
        self.guard = None
        self.nominal = None
        self.mean_power = None
        self.decision = dec.INCOMPLETE
        self.reasons = []

    def as_dict(self):
        p = self.point
        f = (lambda x: None if x is None else str(x))
        return {
            "id": self.id, "kind": self.kind,
            "conditions": {"current_pct": p.get("current_pct"), "voltage_pct": p.get("voltage_pct"),
                           "frequency_hz": p.get("frequency_hz"), "power_factor": p.get("power_factor"),
                           "slots": p["slots"], "nominal_power_w": f(self.nominal)},
            "slots": [slot_iso(k) for k in self.slots], "slots_compared": self.compared,
            "device_wh": f(self.dev), "reference_wh": f(self.ref), "error_wh": f(self.err),
            "relative_error_pct": f(self.rel), "allowed_wh": f(self.allowed),
            "guard_band_wh": f(self.guard), "reference_mean_power_w": f(self.mean_power),
            "decision": self.decision, "reasons": list(self.reasons),
        }


def evaluate(plan, res, sched, direction, rated_power, tol, u_rel, u_abs):
    """Per-point results over the comparison res (compare.Result) -> ([PointResult], overall).

    direction: 'imp' or 'exp', the direction the meter measures; rated_power: W (Fraction)."""
    d = direction
    rows = {r.slot: r for r in res.rows}
    res_wh = res.resolution_wh
    out = []
    by_point = {}
    for k, pid in sched.items():
        by_point.setdefault(pid, []).append(k)
    for p in plan["points"]:
        pr = PointResult(p)
        out.append(pr)
        pr.slots = sorted(by_point.get(p["id"], []))
        n = p["slots"]
        pr.nominal = nominal_w(p, rated_power)
        have = [rows[k] for k in pr.slots if k in rows]
        if not have:
            pr.reasons.append("missing: no slot of this point in the traces")
            continue
        comp = [r for r in have if r.status != "excluded" and r.dev.get(d) is not None
                and r.ref.get(d) is not None]
        pr.compared = len(comp)
        for r in have:
            if r not in comp:
                pr.reasons.append("slot %s not compared: %s" % (r.start, "; ".join(r.reasons)))
        if pr.compared * 100 < plan["coverage_pct"] * n:
            pr.reasons.insert(0, "coverage: %d of %d planned slot(s) compared, %s %% required"
                              % (pr.compared, n, pct(plan["coverage_pct"])))
            continue
        pr.dev = sum(r.dev[d] for r in comp)
        pr.ref = sum((r.ref[d] for r in comp), Fraction(0))
        pr.err = pr.dev - pr.ref
        pr.rel = pr.err * 100 / pr.ref if pr.ref else None
        pr.mean_power = pr.ref / (SLOT_H * len(comp))
        if p["kind"] == "no_load":
            if pr.ref > res_wh:
                pr.reasons.append("conditions not met: the reference measured %s Wh with no "
                                  "load" % wh(pr.ref))
                continue
            high = [r for r in comp if r.dev[d] > p["max_registered"]]
            pr.decision = dec.FAIL if high else dec.PASS
            for r in high:
                pr.reasons.append("registered %d Wh in slot %s with voltage only (at most %s Wh "
                                  "allowed): the meter creeps" % (r.dev[d], r.start,
                                                                  pct(p["max_registered"])))
            continue
        cond = plan["condition_tolerance_pct"] / 100
        if abs(pr.mean_power - pr.nominal) > cond * pr.nominal:
            pr.reasons.append("conditions not met: reference mean power %s W, planned %s W "
                              "(+/- %s %%)" % (wh(pr.mean_power), wh(pr.nominal),
                                               pct(plan["condition_tolerance_pct"])))
            continue
        if p["kind"] == "starting":
            dead = [r for r in comp if r.dev[d] < 1]
            low = pr.dev < p["min_registered"] * pr.ref
            pr.decision = dec.FAIL if dead or low else dec.PASS
            for r in dead:
                pr.reasons.append("registered nothing in slot %s at the starting current "
                                  "(reference %s Wh): the meter does not start" % (r.start, wh(r.ref[d])))
            if low and not dead:
                pr.reasons.append("registered %d Wh at the starting current, less than %s %% of "
                                  "the reference %s Wh: the meter does not keep counting"
                                  % (pr.dev, pct(p["min_registered"] * 100), wh(pr.ref)))
            continue
        if pr.ref < plan["min_energy_wh"]:
            pr.reasons.append("too short: reference energy %s Wh below the plan's minimum %s Wh "
                              "per load point" % (wh(pr.ref), pct(plan["min_energy_wh"])))
            continue
        pr.allowed = tol * abs(pr.ref) + res_wh
        pr.guard = u_rel * abs(pr.ref) + u_abs
        pr.decision = dec.decide(pr.err, pr.allowed, pr.guard)
        if pr.decision != dec.PASS:
            pr.reasons.append("%s error %s Wh (%s %%) against the allowed %s Wh, guard band %s Wh"
                              % (DIR_NAME[d], wh(pr.err, True),
                                 "n/a" if pr.rel is None else "%+.3f" % float(pr.rel),
                                 wh(pr.allowed), wh(pr.guard)))
    return out, dec.worst(pr.decision for pr in out)
