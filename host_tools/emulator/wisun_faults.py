"""The Wi-SUN module emulator's faults as data: a spec string parsed into a `WisunFaultPlan`.

Grammar (docs/wisun.md#fault-grammar---faults): comma-separated `key=value` items.

    link_down=DUR@AT   no radio for DUR from AT (repeatable): sends fail, joins fail
    arib=DUR@AT        ARIB transmit-time limit: EVENT 32 at AT, EVENT 33 after DUR (repeatable)
    drop=P             a send fails on air (EVENT 21 01), nothing forwarded
    lose=P             a send is acknowledged (EVENT 21 00) but the datagram is lost
    garbage=P          a junk line before an output line
    truncate=P         an output line cut short
    session_expiry=DUR PANA session lifetime: EVENT 29 every DUR after a join, then re-auth
    join_fail=N        the first N joins fail (EVENT 24)
    seed=N             random seed (default 1)

DUR/AT: a number with an optional unit s, m or h (seconds when bare), in the emulator's time
(emulated ms since its clock's start, host_tools/emulator/wisun_module.py). The plan only
holds what the spec says; the module model asks it (`link_up`, the dice in `rng`).
"""
import random
import re

_DUR_RE = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")
_UNIT_MS = {"": 1000.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


class FaultSpecError(ValueError):
    pass


def parse_duration_ms(text):
    """'600s', '10m', '2h', '90' (seconds) -> emulated ms (a float)."""
    m = _DUR_RE.match(text.strip())
    if not m:
        raise FaultSpecError("bad duration %r (use e.g. 600s, 10m, 2h)" % text)
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


class WisunFaultPlan:
    """What goes wrong, and when: windows in emulated ms from the clock's start,
    probabilities per send or per output line, and the seed of the dice."""

    PROBABILITIES = ("drop", "lose", "garbage", "truncate")

    def __init__(self, link_down=(), arib=(), drop=0.0, lose=0.0, garbage=0.0, truncate=0.0,
                 session_expiry_ms=None, join_fail=0, seed=1):
        self.link_down = sorted(link_down)  # [(at_ms, dur_ms)]
        self.arib = sorted(arib)  # [(at_ms, dur_ms)]
        self.drop = drop
        self.lose = lose
        self.garbage = garbage
        self.truncate = truncate
        self.session_expiry_ms = session_expiry_ms
        self.join_fail = join_fail
        self.seed = seed
        self.rng = random.Random(seed)

    def link_up(self, now_ms):
        for at, dur in self.link_down:
            if at <= now_ms < at + dur:
                return False
        return True

    def roll(self, p):
        """True with probability p (no draw at all when p is 0, so a plan without that
        fault leaves the dice sequence of the others unchanged)."""
        return bool(p) and self.rng.random() < p

    def to_dict(self):
        return {"link_down": self.link_down, "arib": self.arib, "drop": self.drop,
                "lose": self.lose, "garbage": self.garbage, "truncate": self.truncate,
                "session_expiry_ms": self.session_expiry_ms, "join_fail": self.join_fail,
                "seed": self.seed}


def parse_faults(spec):
    """'link_down=600s@3600s,drop=0.05,seed=1' -> WisunFaultPlan; FaultSpecError naming the
    bad item."""
    kw = {"link_down": [], "arib": []}
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise FaultSpecError("fault %r is not key=value" % item)
        key, value = item.split("=", 1)
        key = key.strip()
        value = value.strip()
        if key in ("link_down", "arib"):
            if "@" not in value:
                raise FaultSpecError("%s needs DUR@AT, got %r" % (key, value))
            dur, at = value.split("@", 1)
            kw[key].append((parse_duration_ms(at), parse_duration_ms(dur)))
        elif key in WisunFaultPlan.PROBABILITIES:
            try:
                p = float(value)
            except ValueError:
                raise FaultSpecError("%s needs a probability, got %r" % (key, value))
            if not 0.0 <= p <= 1.0:
                raise FaultSpecError("%s must be within 0..1" % key)
            kw[key] = p
        elif key == "session_expiry":
            kw["session_expiry_ms"] = parse_duration_ms(value)
            if kw["session_expiry_ms"] <= 0:
                raise FaultSpecError("session_expiry must be > 0")
        elif key in ("join_fail", "seed"):
            try:
                kw[key] = int(value)
            except ValueError:
                raise FaultSpecError("%s needs an integer, got %r" % (key, value))
        else:
            raise FaultSpecError("unknown fault %r" % key)
    return WisunFaultPlan(**kw)
