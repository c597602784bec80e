"""The emulated device: exact energy ground truth and the register image a Modbus server shows.

Energy is integrated exactly: the profile's power (integer W) is held for each simulated
second, so energy is an integer number of millijoules (1 W x 1 ms = 1 mJ) at any ms; no
float touches it. Registers show what a real meter shows: the cumulative energy floored to
the register's unit (10**sf Wh), modulo 2**32 for 32-bit accumulators. The register image
is built from the same JSON register map (hw/maps/) the edge agent decodes with, so the
map stays the single source of truth.

Time only moves forward for a device: when the shared clock jumps back, the device holds its
state until the clock passes the latest time it saw (energy is never counted twice).
"""
import json
import os
import struct
from fractions import Fraction

from edge.regmap import compile_map
from edge.timebase import SLOT_SECONDS
from host_tools import HW_DIR
from host_tools.emulator.simclock import edge_ms_to_iso

MAP_DIR = os.path.join(HW_DIR, "maps")
DEFAULT_MAP = {"inverter": "sunspec_inverter_103", "charger": "eastron_sdm630", "meter": "sunspec_meter_203"}
KINDS = tuple(DEFAULT_MAP)
SLOT_MS = SLOT_SECONDS * 1000
MJ_PER_WH = 3600000
# A device in service has a lifetime count; 0 would also read as "not accumulated" in SunSpec.
DEFAULT_INITIAL_WH = 100000
_ACC_MOD = 1 << 32


class DeviceError(ValueError):
    """Configuration that cannot make a consistent device (map, profile and faults disagree)."""


def load_map(name_or_path):
    """Register map JSON by name (hw/maps/NAME.json) or path; validated with edge.regmap."""
    path = name_or_path
    if not os.path.exists(path):
        path = os.path.join(MAP_DIR, name_or_path + ".json")
    if not os.path.exists(path):
        known = sorted(f[:-5] for f in os.listdir(MAP_DIR) if f.endswith(".json"))
        raise DeviceError("no register map %r (known: %s)" % (name_or_path, ", ".join(known)))
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    try:
        compile_map(obj)
    except Exception as exc:  # RegmapInvalid: report it as a device configuration error
        raise DeviceError("register map %s is invalid: %s" % (path, getattr(exc, "message", exc)))
    return obj


def _words32(value, little):
    hi, lo = (value >> 16) & 0xFFFF, value & 0xFFFF
    return (lo, hi) if little else (hi, lo)


def _f32_words(x, little):
    (bits,) = struct.unpack(">I", struct.pack(">f", x))
    return _words32(bits, little)


def decimal_text(units, exp):
    """units * 10**exp as an exact decimal string: (12345, -1) -> '1234.5', (12, 2) -> '1200'."""
    if exp >= 0:
        return str(units * 10**exp)
    sign = "-" if units < 0 else ""
    digits = str(abs(units)).rjust(-exp + 1, "0")
    return "%s%s.%s" % (sign, digits[:exp], digits[exp:])


def _round_half_away(fr):
    """Fraction -> int, half away from zero (how a device rounds a power reading)."""
    n = abs(fr)
    r = int(n + Fraction(1, 2))
    return r if fr >= 0 else -r


class Counter:
    """One cumulative energy register (import or export) as the installed meter shows it.

    The meter's own energy C = start + (true total - total at installation), in mJ.
    The register holds floor(C / unit) with unit = 10**sf Wh (acc32/uint32, mod 2**32) or,
    for float32, floor(C / 10**exp Wh) scaled to the wire unit 10**unit_exp Wh.
    """

    def __init__(self, name, q, little):
        self.name = name
        self.type = q["type"]
        self.addr = q["addr"]
        self.sf_addr = q.get("sf_addr")
        self.exp = q.get("exp", 0)  # fixed exponent (no sf register) / float32 output exponent
        self.unit_exp = q.get("unit_exp", 0)
        self.little = little
        self.start_mj = Fraction(0)
        self.base_mj = 0
        self.meter_no = 1

    def is_acc(self):
        return self.type in ("acc32", "uint32")

    def unit_mj(self, sf):
        e = sf if self.sf_addr is not None else self.exp
        return MJ_PER_WH * Fraction(10) ** e

    def units(self, total_mj, sf):
        """Counter value in register units, before the 2**32 wrap."""
        return int((self.start_mj + total_mj - self.base_mj) // self.unit_mj(sf))

    def state(self, total_mj, sf):
        """What the registers hold: raw value, its exponent, and the Wh it stands for."""
        u = self.units(total_mj, sf)
        e = sf if self.sf_addr is not None else self.exp
        raw = u % _ACC_MOD if self.is_acc() else u
        return {"raw": raw, "units": u, "exp": e, "wh": decimal_text(u, e), "meter": self.meter_no}

    def words(self, total_mj, sf):
        u = self.units(total_mj, sf)
        if self.type == "float32":
            return _f32_words(u / 10 ** (self.unit_exp - self.exp), self.little)
        return _words32(u % _ACC_MOD, self.little)


class RegisterImage:
    """The device's registers: a flat word list from `start`, laid out from the map."""

    def __init__(self, rmap, kind):
        little = rmap.get("word_order", "big") == "little"
        self.little = little
        ss = rmap.get("sunspec")
        end = rmap["start"] + rmap["count"]
        if ss:
            self.start = ss["base"]
            mstart = ss["model_start"]
            length = None
            for c in rmap.get("checks", ()):
                if c["addr"] == mstart + 1:
                    length = c["value"]
            if length is None:
                raise DeviceError("SunSpec map %s: no check giving the model length at %d" % (rmap["name"], mstart + 1))
            end = max(end, mstart + 2 + length + 2)
        else:
            self.start = rmap["start"]
        self.words = [0] * (end - self.start)
        if ss:
            self._put_sunspec_frame(ss, length, kind)
        for c in rmap.get("checks", ()):
            self.set(c["addr"], c["value"])

    def _put_sunspec_frame(self, ss, length, kind):
        base = ss["base"]
        self.set(base, 0x5375)  # 'Su'
        self.set(base + 1, 0x6E53)  # 'nS'
        if ss["model_start"] - base >= 70:  # room for common model 1 (L = 66)
            self.set(base + 2, 1)
            self.set(base + 3, 66)
            self.put_string(base + 4, 16, "smeter")
            self.put_string(base + 20, 16, "emulated " + kind)
            self.put_string(base + 44, 8, "0.1")
            self.put_string(base + 52, 16, "EMU-%s-0001" % kind.upper())
            self.set(base + 68, 1)
        end = ss["model_start"] + 2 + length
        self.set(end, 0xFFFF)  # end model
        self.set(end + 1, 0)

    def set(self, addr, value):
        self.words[addr - self.start] = value & 0xFFFF

    def put_string(self, addr, nregs, text):
        raw = text.encode("ascii")[: nregs * 2].ljust(nregs * 2, b"\0")
        for i in range(nregs):
            self.set(addr + i, (raw[2 * i] << 8) | raw[2 * i + 1])

    def read(self, addr, count):
        off = addr - self.start
        return self.words[off : off + count]


class Device:
    """A device with a power profile, exact energy totals and a register image.

    `advance(t_ms)` integrates up to simulated time t_ms; `registers()` refreshes and returns
    the image. Truth rows (per 30-minute slot, and per event) go to `on_row` callbacks and
    `rows`.
    """

    def __init__(self, kind, rmap, profile, start_ms, unit=1, rollover=None, esf=0, wsf=None,
                 initial_wh=DEFAULT_INITIAL_WH):
        if kind not in KINDS:
            raise DeviceError("device kind must be one of %s" % ", ".join(KINDS))
        self.kind = kind
        self.rmap = rmap
        self.profile = profile
        self.unit = unit
        qs = rmap["quantities"]
        little = rmap.get("word_order", "big") == "little"
        self.counters = {}
        for name in ("import", "export"):
            if name in qs:
                self.counters[name] = Counter(name, qs[name], little)
        if profile.imports and "import" not in self.counters:
            raise DeviceError("map %s has no import register but profile %s imports" % (rmap["name"], profile.name))
        if profile.exports and "export" not in self.counters:
            raise DeviceError("map %s has no export register but profile %s exports" % (rmap["name"], profile.name))
        self.power_q = qs.get("power")
        self.esf = esf
        if wsf is None:  # smallest power scale factor that fits the profile into int16
            wsf = 0
            while self.power_q and self.power_q["type"] == "int16" and profile.max_abs_w > 32767 * 10**wsf:
                wsf += 1
        self.wsf = wsf
        if initial_wh < 0:
            raise DeviceError("initial counter must be >= 0 Wh")
        for c in self.counters.values():
            c.start_mj = Fraction(initial_wh * MJ_PER_WH)
        if rollover is not None:
            accs = [c for c in self.counters.values() if c.is_acc()]
            if not accs:
                raise DeviceError("rollover: map %s has no 32-bit integer accumulator" % rmap["name"])
            if not 0 < rollover < _ACC_MOD:
                raise DeviceError("rollover: start must be 1..2**32-1 units below the wrap")
            for c in accs:
                c.start_mj = (_ACC_MOD - rollover) * c.unit_mj(esf)
        self.image = RegisterImage(rmap, kind)
        self.t_ms = start_ms
        self.start_ms = start_ms
        self.import_mj = 0
        self.export_mj = 0
        self._slot_start = start_ms - start_ms % SLOT_MS
        self._slot_imp = 0
        self._slot_exp = 0
        self._slot_full = start_ms % SLOT_MS == 0
        self._slot_regs = self.counter_states()
        self._ps = None
        self._p = 0
        self._events = []
        self.rows = []
        self.on_row = []
        self.power_w = profile.power_w(start_ms // 1000)

    # -- events --
    def schedule(self, t_ms, kind, arg=None):
        """Schedule a device event at simulated t_ms (whole second): 'replace' (arg: start
        units, default 0) or 'sf' (arg: new energy scale factor) or 'wsf' (power)."""
        if kind not in ("replace", "sf", "wsf"):
            raise DeviceError("unknown device event %r" % kind)
        if kind in ("sf", "wsf"):
            qname = "power" if kind == "wsf" else None
            has_sf = (self.power_q or {}).get("sf_addr") if qname else any(c.sf_addr for c in self.counters.values())
            if not has_sf:
                raise DeviceError("%s: map %s has no scale-factor register for it" % (kind, self.rmap["name"]))
            if not -10 <= arg <= 10:
                raise DeviceError("%s: scale factor must be -10..10" % kind)
        t_ms -= t_ms % 1000
        self._events.append((t_ms, len(self._events), kind, arg))
        self._events.sort()

    def _apply(self, kind, arg):
        t = self.t_ms
        row = {"type": "event", "kind": kind, "t_ms": t, "time": edge_ms_to_iso(t)}
        if kind == "replace":
            row["old"] = self.counter_states()
            for c in self.counters.values():
                c.base_mj = self.import_mj if c.name == "import" else self.export_mj
                c.start_mj = Fraction(arg or 0) * c.unit_mj(self.esf)
                c.meter_no += 1
            row["new"] = self.counter_states()
        elif kind == "sf":
            row["old"] = self.counter_states()
            self.esf = arg
            row["new"] = self.counter_states()
        else:
            row["old_wsf"] = self.wsf
            self.wsf = arg
            row["new_wsf"] = arg
        self._emit(row)

    def log_fault(self, kind, t_ms, detail=None):
        row = {"type": "fault", "kind": kind, "t_ms": t_ms, "time": edge_ms_to_iso(t_ms)}
        if detail is not None:
            row["detail"] = detail
        self._emit(row)

    # -- integration --
    def advance(self, t_ms):
        """Integrate exactly up to simulated t_ms; earlier times are ignored (see module doc)."""
        power = self.profile.power_w
        ev = self._events
        t = self.t_ms
        ps = self._ps
        p = self._p
        while t < t_ms:
            stop = (t // SLOT_MS + 1) * SLOT_MS
            if stop > t_ms:
                stop = t_ms
            if ev and ev[0][0] < stop:
                stop = max(ev[0][0], t)
            imp = 0
            exp = 0
            t_seg = t
            while t < stop:  # hot loop: locals only
                s = t // 1000
                end = s * 1000 + 1000
                if end > stop:
                    end = stop
                if s != ps:
                    p = power(s)
                    ps = s
                if p > 0:
                    imp += p * (end - t)
                elif p < 0:
                    exp -= p * (end - t)
                t = end
            self.import_mj += imp
            self.export_mj += exp
            self._slot_imp += imp
            self._slot_exp += exp
            self.t_ms = t
            self._ps = ps
            self._p = p
            if t > t_seg and t % SLOT_MS == 0:
                self._close_slot(t)
            while ev and ev[0][0] <= t:
                _, _, kind, arg = ev.pop(0)
                self._apply(kind, arg)
        self.power_w = power(self.t_ms // 1000)

    def _close_slot(self, t):
        start = t - SLOT_MS
        regs = self.counter_states()
        self._emit(
            {
                "type": "slot",
                "start_s": start // 1000,
                "start": edge_ms_to_iso(start),
                "slot": (start % 86400000) // SLOT_MS + 1,
                "import_mj": self._slot_imp,
                "export_mj": self._slot_exp,
                "import_wh": self._slot_imp / MJ_PER_WH,
                "export_wh": self._slot_exp / MJ_PER_WH,
                "full": self._slot_full,
                "regs_start": self._slot_regs,
                "regs_end": regs,
            }
        )
        self._slot_start = t
        self._slot_imp = 0
        self._slot_exp = 0
        self._slot_full = True
        self._slot_regs = regs

    def partial_slot_row(self):
        """The running slot so far (written at shutdown with "full": false)."""
        return {
            "type": "partial",
            "start_s": self._slot_start // 1000,
            "start": edge_ms_to_iso(self._slot_start),
            "until_ms": self.t_ms,
            "import_mj": self._slot_imp,
            "export_mj": self._slot_exp,
            "import_wh": self._slot_imp / MJ_PER_WH,
            "export_wh": self._slot_exp / MJ_PER_WH,
            "full": False,
            "regs_start": self._slot_regs,
            "regs_end": self.counter_states(),
        }

    def _emit(self, row):
        self.rows.append(row)
        for cb in self.on_row:
            cb(row)

    # -- registers --
    def counter_states(self):
        out = {}
        for name, c in self.counters.items():
            out[name] = c.state(self.import_mj if name == "import" else self.export_mj, self.esf)
        return out

    def registers(self):
        """Refresh the image from the current state; returns the word list (starts at image.start)."""
        img = self.image
        for name, c in self.counters.items():
            total = self.import_mj if name == "import" else self.export_mj
            w = c.words(total, self.esf)
            img.set(c.addr, w[0])
            img.set(c.addr + 1, w[1])
            if c.sf_addr is not None:
                img.set(c.sf_addr, self.esf)
        q = self.power_q
        if q is not None:
            dev = self.power_w * q.get("sign", 1)
            t = q["type"]
            little = img.little
            if t == "float32":
                w = _f32_words(dev / 10 ** q.get("unit_exp", 0), little)
                img.set(q["addr"], w[0])
                img.set(q["addr"] + 1, w[1])
            else:
                e = self.wsf if "sf_addr" in q else q.get("exp", 0)
                v = _round_half_away(Fraction(dev) / Fraction(10) ** e)
                if t in ("int16", "uint16"):
                    lim = (-0x7FFF, 0x7FFF) if t == "int16" else (0, 0xFFFE)
                    img.set(q["addr"], max(lim[0], min(lim[1], v)))
                else:
                    w = _words32(v & 0xFFFFFFFF, little)
                    img.set(q["addr"], w[0])
                    img.set(q["addr"] + 1, w[1])
                if "sf_addr" in q:
                    img.set(q["sf_addr"], self.wsf)
        return img.words

    def snapshot(self):
        return {
            "t_ms": self.t_ms,
            "power_w": self.power_w,
            "import_mj": self.import_mj,
            "export_mj": self.export_mj,
            "esf": self.esf,
            "wsf": self.wsf,
            "counters": self.counter_states(),
        }


class TruthWriter:
    """Ground-truth file: JSON lines (default) or CSV when the path ends in .csv.

    Every row is flushed at once so a reader (the demo) can follow the file during the run.
    """

    CSV_COLUMNS = (
        "type", "kind", "t_ms", "time", "slot", "import_mj", "export_mj", "import_wh", "export_wh",
        "import_raw", "import_exp", "import_meter", "export_raw", "export_exp", "export_meter", "full",
    )

    def __init__(self, path, header):
        self.path = path
        self.csv = path.endswith(".csv")
        self.f = open(path, "w", encoding="utf-8", newline="")
        if self.csv:
            import csv

            self._w = csv.DictWriter(self.f, self.CSV_COLUMNS, extrasaction="ignore")
            self._w.writeheader()
        self.write(dict(header, type="header"))

    def write(self, row):
        if self.csv:
            flat = dict(row)
            if row.get("type") in ("slot", "partial"):
                flat["t_ms"] = row["start_s"] * 1000
                flat["time"] = row["start"]
            regs = row.get("regs_end") or row.get("new") or row.get("counters") or {}
            for name in ("import", "export"):
                if name in regs:
                    flat[name + "_raw"] = regs[name]["raw"]
                    flat[name + "_exp"] = regs[name]["exp"]
                    flat[name + "_meter"] = regs[name]["meter"]
            self._w.writerow(flat)
        else:
            self.f.write(json.dumps(row, separators=(",", ":")) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


def read_truth(path):
    """Rows of a JSONL truth file (CSV: dict rows with string values)."""
    with open(path, encoding="utf-8") as f:
        if path.endswith(".csv"):
            import csv

            return list(csv.DictReader(f))
        return [json.loads(line) for line in f if line.strip()]
