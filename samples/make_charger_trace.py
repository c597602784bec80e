"""Generate samples/charger_evening_7s.csv: an EV charger's evening session, register trace.

A 6 kW AC charger (import only) read every 7 s from 18:00 to 22:00 JST on 2026-05-15, so the
readings fall off the slot boundaries (7 does not divide 1800): the 30-minute values must
come from splitting register deltas across boundaries. Columns: power_w (0.1 W) and
import_wh, the cumulative register at 0.1 Wh resolution (floor of the exact trapezoid
integral of the samples, starting at 48,213.7 Wh). Constant-current charging with a little
ripple, then a constant-voltage taper, then idle.

Deterministic (fixed seed, exact decimal output): rerunning gives the same bytes.
usage: python samples/make_charger_trace.py [OUT.csv]
"""
import datetime
import os
import random
import sys
from fractions import Fraction

JST = datetime.timezone(datetime.timedelta(hours=9))
START = datetime.datetime(2026, 5, 15, 18, 0, 0, tzinfo=JST)
STEP_S = 7
SPAN_S = 4 * 3600
PLUG_IN_S = 20 * 60 + 13  # 18:20:13
TAPER_S = 2 * 3600 + 40 * 60  # 20:40
DONE_S = 3 * 3600 + 12 * 60  # 21:12
RATED_W = 5990.0
SEED = 20260516


def power(t, rng):
    if t < PLUG_IN_S or t >= DONE_S:
        return 0.0 if t < PLUG_IN_S else 1.5  # standby after the session
    if t < PLUG_IN_S + 10:
        return RATED_W * (t - PLUG_IN_S) / 10
    if t < TAPER_S:
        return RATED_W + rng.uniform(-25, 25)
    return RATED_W * (DONE_S - t) / (DONE_S - TAPER_S) + rng.uniform(-5, 5)


def main(path):
    rng = random.Random(SEED)
    reg = Fraction(482137, 10)  # Wh, exact
    prev = None
    with open(path, "w", newline="\n", encoding="utf-8") as f:
        f.write("ts,power_w,import_wh\n")
        times = list(range(0, SPAN_S + 1, STEP_S))
        if times[-1] != SPAN_S:
            times.append(SPAN_S)  # end on the 22:00 boundary: the last slot is complete
        pt = None
        for t in times:
            p = Fraction(round(power(t, rng) * 10), 10)
            if prev is not None:
                reg += (prev + p) * (t - pt) / 2 / 3600
            prev, pt = p, t
            tenths = reg.numerator * 10 // reg.denominator
            ts = (START + datetime.timedelta(seconds=t)).isoformat()
            f.write("%s,%s,%d.%d\n" % (ts, "%.1f" % float(p), tenths // 10, tenths % 10))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(os.path.dirname(os.path.abspath(__file__)), "charger_evening_7s.csv"))
