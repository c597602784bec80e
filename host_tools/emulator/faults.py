"""Fault injection for the device emulators: a spec string parsed into a seeded plan.

Grammar (docs/emulators.md): comma-separated items, each NAME=VALUE or a preset name.

    timeout=P            no reply to a request, with probability P (0..1)
    timeout=DUR@AT       no reply at all for DUR from AT (device offline); repeatable
    crc=P                corrupted reply: RTU -> CRC bytes wrong; TCP -> garbled MBAP header
                         (protocol id not 0). `garble=P` is the same fault.
    exception=P[:CODE]   Modbus exception reply (default code 4, server device failure)
    rollover=N[?]        32-bit accumulators start N register units below 2**32
                         (with '?': only if the map has one; silently skipped otherwise)
    replace=AT[:START]   meter replacement at AT: counters restart at START units (default 0);
                         repeatable
    sf=AT:N              energy scale factor becomes N at AT (SunSpec *_SF); repeatable
    wsf=AT:N             power scale factor becomes N at AT; repeatable
    jump=AT:DELTA        the clock owner jumps the shared clock by DELTA (e.g. +1h, -10m); repeatable
    seed=N               random seed for the probabilistic faults (default 1)

DUR, AT, DELTA: a number with unit ms, s, m, h or d (seconds when bare). AT counts simulated
time from the run's origin (the clock's ORIGIN_MS). Presets: `standard`, `none`.

Per request, faults are decided in the order timeout, exception, corrupt; three random numbers
are drawn per request whatever fires, so one seed gives one sequence of decisions.
"""
import random
import re

PRESETS = {
    "none": "",
    # The Modbus part of the demo's standard mix: sporadic timeouts, CRC-corrupted replies,
    # busy exceptions, a 20-minute outage, and a counter that wraps within the first day.
    "standard": "timeout=0.02,crc=0.02,exception=0.01:6,timeout=20m@14h,rollover=3000?",
}
_DUR_RE = re.compile(r"^([+-]?\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_UNIT_MS = {None: 1000, "ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}

TIMEOUT = "timeout"
CORRUPT = "corrupt"
EXCEPTION = "exception"


class FaultSpecError(ValueError):
    pass


def parse_duration_ms(text, signed=False):
    m = _DUR_RE.match(text.strip())
    if not m or (not signed and m.group(1).startswith(("+", "-"))):
        raise FaultSpecError("bad duration %r (e.g. 90s, 20m, 6h, 1d)" % text)
    return int(round(float(m.group(1)) * _UNIT_MS[m.group(2)]))


def _prob(name, text):
    try:
        p = float(text)
    except ValueError:
        raise FaultSpecError("%s: %r is not a probability" % (name, text))
    if not 0 <= p <= 1:
        raise FaultSpecError("%s: probability must be in 0..1, got %r" % (name, text))
    return p


def _int(name, text, lo, hi):
    try:
        v = int(text)
    except ValueError:
        raise FaultSpecError("%s: %r is not an integer" % (name, text))
    if not lo <= v <= hi:
        raise FaultSpecError("%s: %d is outside %d..%d" % (name, v, lo, hi))
    return v


class FaultPlan:
    """A parsed fault spec. Wire faults are drawn per request; timed ones are listed."""

    def __init__(self):
        self.seed = 1
        self.timeout_p = 0.0
        self.timeout_windows = []  # [(at_ms, dur_ms)] relative to origin
        self.corrupt_p = 0.0
        self.exception_p = 0.0
        self.exception_code = 4
        self.rollover = None
        self.rollover_optional = False
        self.replace = []  # [(at_ms, start_units)]
        self.sf = []  # [(at_ms, sf)]
        self.wsf = []
        self.jumps = []  # [(at_ms, delta_ms)]
        self.counts = {}
        self._rng = None

    @property
    def rng(self):
        if self._rng is None:
            self._rng = random.Random(self.seed)
        return self._rng

    def decide(self, t_ms, origin_ms):
        """What to do with the reply to a request served at simulated t_ms:
        None, TIMEOUT, CORRUPT or (EXCEPTION, code)."""
        rng = self.rng
        r_to, r_ex, r_co = rng.random(), rng.random(), rng.random()
        rel = t_ms - origin_ms
        out = None
        for at, dur in self.timeout_windows:
            if at <= rel < at + dur:
                out = TIMEOUT
        if out is None and r_to < self.timeout_p:
            out = TIMEOUT
        if out is None and r_ex < self.exception_p:
            out = (EXCEPTION, self.exception_code)
        if out is None and r_co < self.corrupt_p:
            out = CORRUPT
        if out is not None:
            k = out if isinstance(out, str) else out[0]
            self.counts[k] = self.counts.get(k, 0) + 1
        return out

    def has_wire_faults(self):
        return bool(self.timeout_p or self.timeout_windows or self.corrupt_p or self.exception_p)


def parse_faults(spec):
    """Spec string -> FaultPlan; FaultSpecError naming the bad item."""
    plan = FaultPlan()
    items = [i.strip() for i in (spec or "").split(",") if i.strip()]
    expanded = []
    for item in items:
        if "=" not in item and item in PRESETS:
            expanded.extend(i for i in PRESETS[item].split(",") if i)
        else:
            expanded.append(item)
    for item in expanded:
        name, eq, value = item.partition("=")
        name = name.strip()
        value = value.strip()
        if not eq:
            raise FaultSpecError("fault item %r is not NAME=VALUE or a preset (%s)" % (item, ", ".join(PRESETS)))
        if name == "timeout":
            if "@" in value:
                dur, _, at = value.partition("@")
                plan.timeout_windows.append((parse_duration_ms(at), parse_duration_ms(dur)))
            else:
                plan.timeout_p = _prob(name, value)
        elif name in ("crc", "garble"):
            plan.corrupt_p = _prob(name, value)
        elif name == "exception":
            p, _, code = value.partition(":")
            plan.exception_p = _prob(name, p)
            if code:
                plan.exception_code = _int(name, code, 1, 11)
        elif name == "rollover":
            plan.rollover_optional = value.endswith("?")
            plan.rollover = _int(name, value.rstrip("?"), 1, (1 << 32) - 1)
        elif name == "replace":
            at, _, start = value.partition(":")
            plan.replace.append((parse_duration_ms(at), _int(name, start, 0, (1 << 32) - 1) if start else 0))
        elif name in ("sf", "wsf"):
            at, sep, sf = value.partition(":")
            if not sep:
                raise FaultSpecError("%s needs AT:N, got %r" % (name, value))
            getattr(plan, name).append((parse_duration_ms(at), _int(name, sf, -10, 10)))
        elif name == "jump":
            at, sep, delta = value.partition(":")
            if not sep:
                raise FaultSpecError("jump needs AT:DELTA, got %r" % value)
            plan.jumps.append((parse_duration_ms(at), parse_duration_ms(delta, signed=True)))
        elif name == "seed":
            plan.seed = _int(name, value, 0, (1 << 63) - 1)
        else:
            raise FaultSpecError("unknown fault %r" % name)
    plan.jumps.sort()
    return plan


def corrupt_reply(frame, framing, rng):
    """A reply frame made unusable on the wire.

    RTU: the CRC (last two bytes) is XORed with a random non-zero 16-bit value, so the
    frame fails CRC-16/MODBUS while its length and content stay plausible.
    TCP (TCP has its own checksums, so corruption shows up as a broken application frame):
    the MBAP protocol identifier (bytes 2-3) is set to a random non-zero value.
    """
    b = bytearray(frame)
    if len(b) < 4:
        return bytes(b)
    x = rng.randrange(1, 0x10000)
    if framing == "rtu":
        b[-2] ^= x & 0xFF
        b[-1] ^= x >> 8
    else:
        b[2] = x >> 8
        b[3] = x & 0xFF
    return bytes(b)
