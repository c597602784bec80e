"""Power profiles: what a device draws or delivers in each simulated second.

A profile maps an integer edge second (edge/timebase.py) to an integer power in W, import
positive and export negative, held constant for that second. Profiles are pure functions of
(second, seed): the same run gives the same power whatever the poll timing, so the device's
energy (device.py) is exact and repeatable.

Specs: NAME or NAME:key=value,key=value (e.g. `pv:peak=4000,clouds=0.5`, `const:w=-1500`).
"""
import bisect
import datetime
import math
import random


_DAY = 86400
_EDGE_EPOCH_DATE = datetime.date(2020, 1, 1)  # edge second 0 is 00:00 JST of this day


class ProfileError(ValueError):
    pass


def _day_rng(seed, day, salt):
    """A random stream per (seed, day, profile) so that days are independent and repeatable."""
    return random.Random("%d/%d/%s" % (seed, day, salt))


class Profile:
    name = "?"
    imports = False
    exports = False
    max_abs_w = 0

    def power_w(self, t_s):
        raise NotImplementedError

    def describe(self):
        return self.name


class ConstProfile(Profile):
    """Constant power (tests and calibration): `const:w=-1500` exports 1.5 kW all the time."""

    name = "const"

    def __init__(self, w=1000):
        self.w = int(w)
        if abs(self.w) > 1000000:
            raise ProfileError("const w must be in -1000000..1000000 W, got %s" % w)
        self.imports = self.w > 0
        self.exports = self.w < 0
        self.max_abs_w = abs(self.w)

    def power_w(self, t_s):
        return self.w

    def describe(self):
        return "const:w=%d" % self.w


class PvProfile(Profile):
    """Rooftop PV behind a power conditioner (パワコン): clear sky plus passing clouds.

    Clear sky: solar elevation for the site (default Tokyo, 35.68 N 139.77 E, JST) from the
    usual declination / equation-of-time approximations, Haurwitz irradiance
    1098 * cos(z) * exp(-0.057 / cos(z)) W/m2, scaled so 1000 W/m2 gives `peak` W, clipped
    at the inverter `rating`. Clouds: per day, seeded shade events of 1-15 min that take
    30-80 % off with 20 s ramps, covering about `clouds` of daylight. Export only; exactly 0
    at night and below the inverter's 20 W start-up threshold.
    """

    name = "pv"
    exports = True
    _MIN_W = 20

    def __init__(self, peak=5500, rating=5000, clouds=0.3, lat=35.68, lon=139.77, seed=1):
        self.peak = int(peak)
        self.rating = int(rating)
        self.clouds = float(clouds)
        if not 0 <= self.clouds < 1:
            raise ProfileError("pv clouds must be in 0..1 (fraction of daylight shaded)")
        self.lat = math.radians(float(lat))
        self.lon = float(lon)
        self.seed = int(seed)
        if not (0 < self.peak <= 1000000 and 0 < self.rating <= 1000000):
            raise ProfileError("pv peak and rating must be 1..1000000 W, got peak=%s rating=%s"
                               % (peak, rating))
        if not (-90 <= float(lat) <= 90 and -180 <= self.lon <= 180):
            raise ProfileError("pv lat must be in -90..90 and lon in -180..180 degrees")
        self.max_abs_w = min(self.peak, self.rating)
        self._day = None
        self._sun = None
        self._shade = None

    def describe(self):
        return "pv:peak=%d,rating=%d,clouds=%g" % (self.peak, self.rating, self.clouds)

    def _prepare(self, day):
        n = (_EDGE_EPOCH_DATE + datetime.timedelta(days=day)).timetuple().tm_yday
        decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + n) / 365.0)
        b = 2 * math.pi * (n - 81) / 364.0
        eot_min = 9.87 * math.sin(2 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)
        # Solar time = JST clock time + this offset (JST meridian is 135 E).
        offset_s = (4.0 * (self.lon - 135.0) + eot_min) * 60.0
        self._sun = (math.sin(self.lat) * math.sin(decl), math.cos(self.lat) * math.cos(decl), offset_s)
        shade = []
        if self.clouds > 0:
            rng = _day_rng(self.seed, day, "pv")
            mean_dur = 480.0
            mean_gap = mean_dur * (1 - self.clouds) / self.clouds
            t = 4 * 3600 + rng.expovariate(1.0 / mean_gap)
            while t < 20 * 3600:
                dur = rng.uniform(60, 900)
                shade.append((t, t + dur, rng.uniform(0.3, 0.8)))
                t += dur + rng.expovariate(1.0 / mean_gap)
        self._shade = shade
        self._shade_starts = [sh[0] for sh in shade]
        self._day = day

    def clear_sky_w(self, t_s):
        day, sod = divmod(t_s, _DAY)
        if day != self._day:
            self._prepare(day)
        a, b, off = self._sun
        hour_angle = math.radians(15.0 * ((sod + 0.5 + off) / 3600.0 - 12.0))
        cosz = a + b * math.cos(hour_angle)
        if cosz <= 0.01:
            return 0.0
        ghi = 1098.0 * cosz * math.exp(-0.057 / cosz)
        return min(float(self.rating), self.peak * ghi / 1000.0)

    def power_w(self, t_s):
        w = self.clear_sky_w(t_s)
        if w <= 0:
            return 0
        sod = t_s % _DAY + 0.5
        i = bisect.bisect_right(self._shade_starts, sod) - 1
        if i >= 0:
            start, end, depth = self._shade[i]
            if sod < end:
                ramp = min(1.0, (sod - start) / 20.0, (end - sod) / 20.0)
                w *= 1.0 - depth * ramp
        w = int(w)
        return -w if w >= self._MIN_W else 0


class EvProfile(Profile):
    """Home EV charger (普通充電器): plug-in sessions importing a constant 3-6 kW.

    Per day (seeded): an evening session (arrival 17:30-22:30) with probability `evening`,
    a daytime one (09:00-14:00) with probability `daytime`. Each session charges at a rate
    drawn from 3.0-6.0 kW in 100 W steps until 4-25 kWh are delivered (sessions may run past
    midnight). 0 W between sessions.
    """

    name = "ev"
    imports = True
    max_abs_w = 6000

    def __init__(self, evening=0.8, daytime=0.3, min_w=3000, max_w=6000, seed=1):
        self.evening = float(evening)
        self.daytime = float(daytime)
        self.min_w = int(min_w)
        self.max_w = int(max_w)
        if not (0 <= self.evening <= 1 and 0 <= self.daytime <= 1):
            raise ProfileError("ev evening and daytime are probabilities in 0..1")
        if self.max_w > 1000000:
            raise ProfileError("ev max_w must be at most 1000000 W")
        if not 0 < self.min_w <= self.max_w:
            raise ProfileError("ev needs 0 < min_w <= max_w")
        self.max_abs_w = self.max_w
        self.seed = int(seed)
        self._cache = {}

    def describe(self):
        return "ev:evening=%g,daytime=%g,min_w=%d,max_w=%d" % (self.evening, self.daytime, self.min_w, self.max_w)

    def sessions(self, day):
        """[(start_s, end_s, watts)] of sessions plugged in on `day` (edge day number)."""
        got = self._cache.get(day)
        if got is None:
            rng = _day_rng(self.seed, day, "ev")
            got = []
            base = day * _DAY
            windows = ((9 * 3600, 14 * 3600, self.daytime), (17 * 3600 + 1800, 22 * 3600 + 1800, self.evening))
            for lo, hi, p in windows:
                arrive = rng.randrange(lo, hi)
                watts = rng.randrange(self.min_w // 100, self.max_w // 100 + 1) * 100
                watts = max(self.min_w, min(self.max_w, watts))
                need_wh = rng.randrange(4000, 25001)
                if rng.random() >= p:
                    continue
                dur = need_wh * 3600 // watts
                start = base + arrive
                if got and start < got[-1][1]:
                    continue
                got.append((start, start + dur, watts))
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[day] = got
        return got

    def power_w(self, t_s):
        day = t_s // _DAY
        for d in (day, day - 1):
            for start, end, watts in self.sessions(d):
                if start <= t_s < end:
                    return watts
        return 0


class V2hProfile(Profile):
    """Bidirectional V2H unit (Vehicle-to-Home): charges at night, discharges in the evening.

    Per day (seeded): import at 3-6 kW from 01:00 for 1-4 h, export at 2-4 kW from
    17:00-18:00 for 1-3 h (each step 100 W). 0 W otherwise.
    """

    name = "v2h"
    imports = True
    exports = True
    max_abs_w = 6000

    def __init__(self, seed=1):
        self.seed = int(seed)
        self._day = None
        self._plan = ()

    def _prepare(self, day):
        rng = _day_rng(self.seed, day, "v2h")
        base = day * _DAY
        c0 = base + 3600 + rng.randrange(0, 1800)
        c1 = c0 + rng.randrange(3600, 4 * 3600)
        cw = rng.randrange(30, 61) * 100
        d0 = base + 17 * 3600 + rng.randrange(0, 3600)
        d1 = d0 + rng.randrange(3600, 3 * 3600)
        dw = rng.randrange(20, 41) * 100
        self._plan = ((c0, c1, cw), (d0, d1, -dw))
        self._day = day

    def power_w(self, t_s):
        day = t_s // _DAY
        if day != self._day:
            self._prepare(day)
        for start, end, watts in self._plan:
            if start <= t_s < end:
                return watts
        return 0


PROFILES = {"pv": PvProfile, "ev": EvProfile, "v2h": V2hProfile, "const": ConstProfile}
DEFAULT_PROFILE = {"inverter": "pv", "charger": "ev", "meter": "v2h"}


def make_profile(spec, seed=1):
    """'pv', 'pv:clouds=0.5', 'const:w=-1500', ... -> Profile. ProfileError on a bad spec."""
    name, _, rest = spec.partition(":")
    cls = PROFILES.get(name.strip())
    if cls is None:
        raise ProfileError("unknown profile %r (one of %s)" % (name, ", ".join(sorted(PROFILES))))
    kwargs = {}
    if cls is not ConstProfile:
        kwargs["seed"] = seed
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ProfileError("profile option %r is not key=value" % item)
        try:
            kwargs[key.strip()] = float(value) if "." in value else int(value)
        except ValueError:
            raise ProfileError("profile option %r: %r is not a number" % (key, value))
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ProfileError("profile %s: %s" % (name, exc))
