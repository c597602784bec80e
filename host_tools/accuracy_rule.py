"""The `estimated` flagging rule for 30-minute values (docs/integrator.md, "Attribution
bound"): from hw/accuracy_classes.json (the declared class's tolerance, with its cited
source, and the tool's share of it) to the agent's integrator.estimate_* settings, and the
same threshold for checks on the host.

A slot is flagged `estimated` when its attribution bound exceeds
    share x tolerance x max(value, min_energy_wh) + resolution_wh per register direction
(docs/integrator.md "Attribution bound"; docs/config.md integrator.estimate_*).
"""
import json
import os

CLASSES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hw",
                       "accuracy_classes.json")


class RuleError(ValueError):
    pass


def load_rule(path=CLASSES, cls=None, share=None):
    """{'estimate_bp', 'estimate_min_wh', 'estimate_res_wh', 'class', 'basis'}: the
    agent's settings for the declared class (default: the file's estimate_rule.class)."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    rule = doc["estimate_rule"]
    cls = cls or rule["class"]
    c = doc["classes"].get(cls)
    if c is None:
        raise RuleError("unknown accuracy class %r" % cls)
    tol = c.get(rule["tolerance"])
    if tol is None:
        raise RuleError("class %s has no %s in %s" % (cls, rule["tolerance"], path))
    share = rule["share_of_tolerance"] if share is None else share
    bp = int(round(tol * share * 100))  # percent -> basis points of the value
    cmp_ = doc["comparison"]
    return {"estimate_bp": bp, "estimate_min_wh": int(cmp_["min_energy_wh"]),
            "estimate_res_wh": int(cmp_["resolution_wh"]), "class": cls,
            "basis": "%s %s %s %% x %s (hw/accuracy_classes.json)" % (cls, rule["tolerance"], tol, share)}


def threshold_wh(rule, value_wh, digits=1):
    """The largest bound (Wh) an unflagged value of value_wh (import + export) may have, as
    the agent computes it: digits is the number of directions counted by a register (each
    reported value has its own digit, as in the certification comparison)."""
    v = max(int(value_wh), rule["estimate_min_wh"])
    return ((v // 10000) * rule["estimate_bp"] + (v % 10000) * rule["estimate_bp"] // 10000
            + rule["estimate_res_wh"] * max(digits, 1))
