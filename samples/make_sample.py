"""Generate samples/pv_day_1s.csv: one JST day of a 5 kW PV inverter sampled every second.

Deterministic (fixed seed, integer-rounded output): rerunning gives the same bytes.
power_w: + while the inverter draws standby power from the grid at night, - while it
exports. import_wh / export_wh: the inverter's cumulative registers at 1 Wh resolution
(floor of the exact trapezoid integral of the samples). export_wh starts near 2**32 mWh so
the 32-bit counter the edge sees (mWh) rolls over during the day.

usage: python samples/make_sample.py [OUT.csv]
"""
import datetime
import math
import os
import random
import sys

DAY = datetime.date(2026, 5, 15)
JST = datetime.timezone(datetime.timedelta(hours=9))
RATED_W = 4800.0
STANDBY_W = 3.0
SUNRISE_S = 4 * 3600 + 38 * 60  # Tokyo, mid-May (about 04:38 / 18:39 JST)
SUNSET_S = 18 * 3600 + 39 * 60
SEED = 20260515


def clear_sky(t):
    if t <= SUNRISE_S or t >= SUNSET_S:
        return 0.0
    x = (t - SUNRISE_S) / (SUNSET_S - SUNRISE_S)
    return RATED_W * math.sin(math.pi * x) ** 1.3


def powers(rng):
    """Per-second power (W, 0.1 W steps) with drifting clouds."""
    cloud = 1.0
    target = 1.0
    out = []
    for t in range(86401):
        if t % 120 == 0:
            target = 1.0 if rng.random() < 0.7 else rng.uniform(0.25, 0.8)
        cloud += (target - cloud) * 0.05
        pv = clear_sky(t) * cloud * (1 + rng.uniform(-0.01, 0.01))
        out.append(round(STANDBY_W - pv, 1))
    return out


def main(path):
    rng = random.Random(SEED)
    ps = powers(rng)
    imp = 1523.0  # Wh, exact integrals kept as floats; registers floor them
    exp = 4293900.0
    start = datetime.datetime(DAY.year, DAY.month, DAY.day, tzinfo=JST)
    with open(path, "w", newline="\n", encoding="utf-8") as f:
        f.write("ts,power_w,import_wh,export_wh\n")
        for t, p in enumerate(ps):
            if t:
                a, b = ps[t - 1], p
                if a >= 0 and b >= 0:
                    imp += (a + b) / 2 / 3600
                elif a <= 0 and b <= 0:
                    exp -= (a + b) / 2 / 3600
                else:  # split at the zero crossing
                    hi, lo = (a, b) if a > 0 else (b, a)
                    imp += hi * hi / (hi - lo) / 2 / 3600
                    exp += lo * lo / (hi - lo) / 2 / 3600
            ts = (start + datetime.timedelta(seconds=t)).isoformat()
            f.write("%s,%.1f,%d,%d\n" % (ts, p, math.floor(imp), math.floor(exp)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "pv_day_1s.csv"))
