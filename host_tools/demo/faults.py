"""The demo's fault spec: one string that becomes the emulators', the Wi-SUN module's and the
orchestrator's own fault plans (grammar: docs/demo.md#faults).

All times are simulated time (edge clock) from the start of the run, so the same spec means
the same day whatever --speed is; the orchestrator converts them for the Wi-SUN module
emulator, whose fault clock is real time divided by its --time-scale.
"""
import random

from host_tools.emulator.faults import parse_duration_ms

PRESETS = {
    "none": "",
    # At least a 6-hour link outage, 5 agent kills at random points, Modbus timeouts and
    # CRC-corrupted replies, one 32-bit register rollover (counted across, not a reset), plus
    # exception replies and a 20-minute device outage. The outage ends at 14:00 JST, before
    # the device outage.
    "standard": "outage=6h@8h,kills=5,timeout=0.02,crc=0.02,exception=0.01:6,offline=20m@14h,"
                "rollover=3000",
}

# item -> (target, kind); target "emu" items are passed to `smeter emulate --faults`.
_EMU = {"timeout", "crc", "exception", "rollover"}
_WISUN_P = {"drop", "garbage"}


class DemoFaultError(ValueError):
    pass


def _dur_s(text, item):
    try:
        ms = parse_duration_ms(text)
    except ValueError as e:
        raise DemoFaultError("%s: %s" % (item, e))
    if ms < 0:
        raise DemoFaultError("%s: negative time" % item)
    return ms // 1000


def _prob(text, item):
    try:
        p = float(text)
    except ValueError:
        raise DemoFaultError("%s: probability must be a number 0..1" % item)
    if not 0.0 <= p <= 1.0:
        raise DemoFaultError("%s: probability must be 0..1" % item)
    return p


class FaultPlan:
    """A parsed demo fault spec.

    outages: [(at_s, dur_s)] Wi-SUN link down; kills: random agent kills per agent;
    kill_at: explicit kill times (s); offline: [(at_s, dur_s)] device not answering;
    emu: Modbus items for `smeter emulate`; wisun: probabilities and session expiry for the
    module emulator; seed: dice of everything random here.
    """

    def __init__(self, spec="none"):
        self.spec = spec
        self.outages = []
        self.kills = 0
        self.kill_at = []
        self.offline = []
        self.emu = []
        self.wisun = {}
        self.session_expiry_s = None
        self.seed = None
        for item in _expand(spec):
            self._item(item)

    def _item(self, item):
        key, sep, val = item.partition("=")
        if not sep or not val:
            raise DemoFaultError("fault item %r needs KEY=VALUE" % item)
        if key == "outage" or key == "offline":
            dur, at_sep, at = val.partition("@")
            if not at_sep:
                raise DemoFaultError("%s needs DUR@AT, got %r" % (key, val))
            pair = (_dur_s(at, item), _dur_s(dur, item))
            if pair[1] <= 0:
                raise DemoFaultError("%s: duration must be > 0" % item)
            (self.outages if key == "outage" else self.offline).append(pair)
        elif key == "kills":
            if not val.isdigit() or int(val) > 100:
                raise DemoFaultError("kills must be an integer 0..100, got %r" % val)
            self.kills = int(val)
        elif key == "kill":
            self.kill_at.append(_dur_s(val, item))
        elif key in ("timeout", "crc"):
            _prob(val, item)
            self.emu.append(item)
        elif key == "exception":
            p, _, code = val.partition(":")
            _prob(p, item)
            if code and not (code.isdigit() and 1 <= int(code) <= 11):
                raise DemoFaultError("exception code must be 1..11, got %r" % code)
            self.emu.append(item)
        elif key == "rollover":
            if not val.isdigit() or int(val) <= 0:
                raise DemoFaultError("rollover needs a positive number of register units")
            self.emu.append(item + "?")  # skipped on float32 maps (the charger's SDM630)
        elif key in _WISUN_P:
            self.wisun[key] = _prob(val, item)
        elif key == "session_expiry":
            self.session_expiry_s = _dur_s(val, item)
            if self.session_expiry_s <= 0:
                raise DemoFaultError("session_expiry must be > 0")
        elif key == "seed":
            if not val.isdigit():
                raise DemoFaultError("seed must be a non-negative integer")
            self.seed = int(val)
        else:
            raise DemoFaultError("unknown fault item %r (see docs/demo.md#faults)" % key)

    def emulator_spec(self, seed):
        """--faults for `smeter emulate` (the Modbus part and the device outages)."""
        items = list(self.emu)
        items += ["timeout=%ds@%ds" % (d, a) for a, d in self.offline]
        if items:
            items.append("seed=%d" % seed)
        return ",".join(items)

    def wisun_outages(self, sim_to_emulated):
        """[(start, length)] of the link outages in the module emulator's seconds."""
        out = []
        for at, dur in self.outages:
            start = sim_to_emulated(at)
            length = sim_to_emulated(at + dur) - start
            out.append((max(0, round(start)), max(1, round(length))))
        return out

    def wisun_spec(self, sim_to_emulated, seed):
        """--faults for `smeter wisun-emulator`; sim_to_emulated(sim_s_from_run_start) gives
        the emulator's own fault time (real seconds since it started / time scale)."""
        items = ["link_down=%ds@%ds" % (n, a) for a, n in self.wisun_outages(sim_to_emulated)]
        for k in sorted(self.wisun):
            items.append("%s=%g" % (k, self.wisun[k]))
        if self.session_expiry_s:
            e = sim_to_emulated(self.session_expiry_s) - sim_to_emulated(0)
            items.append("session_expiry=%ds" % max(1, round(e)))
        if items:
            items.append("seed=%d" % seed)
        return ",".join(items)

    def kill_times(self, run_s, seed, device_index=0):
        """Sorted simulated seconds (from run start) at which to SIGKILL one device's agent:
        the explicit ones plus `kills` random ones, anywhere in a slot, away from device
        outages and the first and last half hour. A restart resumes from the last saved
        integrator state; the energy of the gap is spread over the slots it spans and
        flagged estimated (docs/integrator.md), so a kill at any point loses nothing."""
        rnd = random.Random((seed if self.seed is None else self.seed) * 1000 + device_index)
        out = [t for t in self.kill_at if t < run_s]
        n_slots = run_s // 1800
        tries = 0
        while len(out) < len(self.kill_at) + self.kills and n_slots > 2 and tries < 2000:
            tries += 1
            t = rnd.randrange(1800, (n_slots - 1) * 1800)
            if any(a - 1800 <= t <= a + d + 1800 for a, d in self.offline):
                continue
            if any(abs(t - u) < 1800 for u in out):
                continue
            out.append(t)
        return sorted(out)

    def describe(self):
        return self.spec


def _expand(spec):
    out = []
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        if item in PRESETS:
            out += _expand(PRESETS[item])
        else:
            out.append(item)
    return out
