"""The integration check's second half: do the device's two measurements of one energy agree?

A trace with both a power column and a register for a direction measures that direction
twice: the register delta and the power integral (both exact, reference.py). The 30-minute
value follows the register, so comparing it with a reference computed from the same trace
only proves the device's arithmetic; a register running 4 % fast stays invisible. Comparing
the register with the power integral makes it visible without a reference meter: when they
disagree by more than the class tolerance (the same allowed-error rule as compare.py), the
meter's values cannot be certified, whichever of the two is wrong. Agreement proves nothing
about accuracy (both may be off together): that needs an independent reference.
"""
from .compare import DIR_NAME, allowed_wh, wh, rel_text
from .reference import SLOT_MS, power_integral, register_delta, sources


class Disagreement:
    __slots__ = ("slot", "d", "register", "power", "err", "allowed")

    def __init__(self, slot, d, register, power, err, allowed):
        self.slot = slot
        self.d = d
        self.register = register
        self.power = power
        self.err = err
        self.allowed = allowed

    def text(self, slot_iso, slot_of_day):
        rel = self.err * 100 / self.power if self.power else None
        return ("slot %d (%s) %s: register delta %s Wh vs power integral %s Wh, difference %s "
                "Wh (%s), more than the allowed %s Wh"
                % (slot_of_day(self.slot), slot_iso(self.slot), DIR_NAME[self.d],
                   wh(self.register), wh(self.power), wh(self.err, True), rel_text(rel),
                   wh(self.allowed)))


def check(samples, max_gap_ms, tol, min_energy_wh, resolution_wh):
    """-> (directions checked, slots checked, [Disagreement]) over fully covered slots."""
    if not samples.has("power"):
        return [], 0, []
    dirs = [d for d in ("imp", "exp") if sources(samples)[d] == "register"]
    if not dirs:
        return [], 0, []
    pi, pe = power_integral(samples, max_gap_ms)
    out = []
    checked = set()
    for d in dirs:
        reg, _ = register_delta(samples, d, max_gap_ms)
        pw = pi if d == "imp" else pe
        for k in sorted(reg):
            if k not in pw:
                continue
            (rv, rc), (pv, pc) = reg[k], pw[k]
            if rc < SLOT_MS or pc < SLOT_MS:
                continue
            checked.add(k)
            e = rv - pv
            al = allowed_wh(tol, pv, min_energy_wh, resolution_wh)
            if abs(e) > al:
                out.append(Disagreement(k, d, rv, pv, e, al))
    return dirs, len(checked), out
