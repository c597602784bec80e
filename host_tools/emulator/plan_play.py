"""Play a test plan (hw/test_plans/, host_tools/verify/plan.py) on an emulated meter, so a
whole bench run can be rehearsed: the emulator knows the exact energy that flowed (the
reference), the agent reports what the meter's registers showed (the device).

Each point holds a constant power for its slots: rated power x current % x voltage % x power
factor, rounded to whole W (the truth is the whole W actually played), import positive or
export negative as the meter declares. Before the plan and after it the power is 0 W.

Faults of the meter's measuring element make the registers (and power register) show a
different power from the one that flows; the truth file keeps the real one:
  POINT=gain:F     the meter reads F times the power during POINT (e.g. 1.05)
  POINT=creep:W    the meter adds W watts during POINT (creep at no load)
  POINT=dead       the meter reads 0 W during POINT (a dead starting current)
"""
from fractions import Fraction

from host_tools.emulator.profiles import Profile, ProfileError
from host_tools.emulator.simclock import edge_ms_to_iso

SLOT_S = 1800


def parse_fault(text, point_ids):
    """'I20-50Hz=gain:1.05' -> (point id, kind, Fraction arg or None); ProfileError if bad."""
    pid, eq, spec = text.partition("=")
    kind, _, arg = spec.partition(":")
    if not eq or pid not in point_ids:
        raise ProfileError("--plan-fault %r: expected POINT=gain:F|creep:W|dead with POINT one of "
                           "%s" % (text, ", ".join(point_ids)))
    if kind == "dead" and not arg:
        return pid, kind, None
    if kind not in ("gain", "creep") or not arg:
        raise ProfileError("--plan-fault %r: fault must be gain:F, creep:W or dead" % text)
    try:
        v = Fraction(arg)
    except (ValueError, ZeroDivisionError):
        raise ProfileError("--plan-fault %r: %r is not a number" % (text, arg))
    if kind == "gain" and v <= 0:
        raise ProfileError("--plan-fault %r: the gain must be > 0" % text)
    return pid, kind, v


def _round_w(x):
    return int(round(Fraction(x)))  # round half to even, exact


class PlanProfile(Profile):
    """The meter's *indicated* power for a plan (faults applied); true_w() is what flows."""

    name = "plan"

    def __init__(self, plan, rated_power_w, direction="import", faults=()):
        self.plan = plan
        self.sign = 1 if direction == "import" else -1
        self.imports = direction == "import"
        self.exports = not self.imports
        self.watts = {p["id"]: _round_w(Fraction(rated_power_w) * p["current"] * p["voltage"]
                                        * p["pf"]) for p in plan["points"]}
        self.faults = {pid: (kind, arg) for pid, kind, arg in faults}
        self.max_abs_w = max([abs(self.indicated(p["id"])) for p in plan["points"]] + [1])
        self.start_s = None
        self.table = {}

    def describe(self):
        return "plan:%s%s" % (self.plan["name"], "".join(
            ",%s=%s%s" % (pid, k, "" if a is None else ":%s" % a)
            for pid, (k, a) in sorted(self.faults.items())))

    def bind(self, start_s):
        """Start the plan at edge second start_s (a slot start)."""
        if start_s % SLOT_S:
            raise ProfileError("the plan must start at a slot boundary")
        self.start_s = start_s
        self.table = {}
        k = start_s // SLOT_S
        for p in self.plan["points"]:
            for _ in range(p["slots"]):
                self.table[k] = p["id"]
                k += 1

    def point_at(self, t_s):
        return self.table.get(t_s // SLOT_S)

    def indicated(self, pid):
        w = self.watts[pid]
        kind, arg = self.faults.get(pid, (None, None))
        if kind == "gain":
            w = _round_w(w * arg)
        elif kind == "creep":
            w = _round_w(w + arg)
        elif kind == "dead":
            w = 0
        return w

    def true_w(self, t_s):
        pid = self.point_at(t_s)
        return 0 if pid is None else self.sign * self.watts[pid]

    def power_w(self, t_s):
        pid = self.point_at(t_s)
        return 0 if pid is None else self.sign * self.indicated(pid)

    def end_s(self):
        return (max(self.table) + 1) * SLOT_S if self.table else None


class PlanTruthWriter:
    """The reference of a rehearsal: one row per plan slot the emulator played through, with the
    exact energy that flowed (the whole W played x 1800 s, as an exact decimal Wh) and the point.

    Format: the slot CSV `smeter verify --reference` reads (docs/certification.md)."""

    HEADER = "slot_start,point,import_wh,export_wh\n"

    def __init__(self, path, profile):
        self.profile = profile
        self.f = open(path, "w", encoding="utf-8", newline="")
        self.f.write(self.HEADER)
        self.f.flush()

    def on_row(self, row):
        if row.get("type") != "slot":
            return
        start = row["start_s"]
        pid = self.profile.point_at(start)
        if pid is None:
            return
        w = self.profile.true_w(start)
        wh = Fraction(w * SLOT_S, 3600)
        imp, exp = (wh, 0) if w >= 0 else (0, -wh)
        self.f.write("%s,%s,%s,%s\n" % (edge_ms_to_iso(start * 1000), pid, _dec(imp), _dec(exp)))
        self.f.flush()

    def close(self):
        self.f.close()


def _dec(x):
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    if 10 % x.denominator == 0 or x.denominator in (2, 4, 5, 8, 20, 25):
        return "%.3f" % x  # halves and quarters of a Wh: exact in 3 decimals
    return "%d/%d" % (x.numerator, x.denominator)
