"""Make a device/reference trace pair with a deliberate meter error, for `smeter verify`.

Cuts a window out of samples/pv_day_1s.csv (thinned to one sample every --step seconds)
and writes two traces in the trace format (docs/trace-format.md):
  reference.csv  the true values: what an independent reference meter recorded
  device.csv     the same values as a faulty device meter reports them
Faults, confined to one JST slot (--slot, 1..48) so the expected worst slot is known:
  gain   the device's power reads --factor times too high in that slot (power only, no
         registers: the device reports the power integral)
  drift  the device's export register runs --factor times too fast in that slot and keeps
         the offset afterwards (power and registers, as a real device reports them; a
         factor below the device's 5 % mismatch check goes unflagged)
Exact decimal arithmetic, fixed input: rerunning gives the same bytes.

usage: python samples/make_meter_error.py OUT_DIR [--fault gain|drift] [--slot N]
       [--factor F] [--start HH:MM] [--end HH:MM] [--step S]
"""
import argparse
import csv
import os
from decimal import ROUND_HALF_EVEN, Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "pv_day_1s.csv")


def seconds_of_day(ts):
    """'2026-05-15T12:34:56+09:00' -> seconds since JST midnight (the sample is JST)."""
    h, m, s = ts[11:19].split(":")
    return int(h) * 3600 + int(m) * 60 + int(s)


def window(start_s, end_s, step):
    with open(SOURCE, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for i, r in enumerate(rows):
        t = i  # the sample has one row per second from 00:00:00
        if start_s <= t <= end_s and (t - start_s) % step == 0:
            assert seconds_of_day(r["ts"]) == t % 86400
            out.append(r)
    return out


def make(out_dir, fault="gain", slot=26, factor="1.05", start="10:00", end="16:00", step=5):
    """Write out_dir/reference.csv and out_dir/device.csv; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    hh, mm = start.split(":")
    s0 = int(hh) * 3600 + int(mm) * 60
    hh, mm = end.split(":")
    s1 = int(hh) * 3600 + int(mm) * 60
    rows = window(s0, s1, step)
    a, b = (slot - 1) * 1800, slot * 1800
    k = Decimal(factor)
    ref_path = os.path.join(out_dir, "reference.csv")
    dev_path = os.path.join(out_dir, "device.csv")
    with open(ref_path, "w", newline="\n") as fr, open(dev_path, "w", newline="\n") as fd:
        if fault == "gain":
            fr.write("ts,power_w\n")
            fd.write("ts,power_w\n")
            for r in rows:
                t = seconds_of_day(r["ts"])
                p = Decimal(r["power_w"])
                fr.write("%s,%s\n" % (r["ts"], r["power_w"]))
                fd.write("%s,%s\n" % (r["ts"], p * k if a <= t < b else p))
        elif fault == "drift":
            fr.write("ts,power_w,import_wh,export_wh\n")
            fd.write("ts,power_w,import_wh,export_wh\n")
            base = None
            extra = Decimal(0)
            for r in rows:
                t = seconds_of_day(r["ts"])
                e = Decimal(r["export_wh"])
                if t == a:
                    base = e
                if base is not None and a < t <= b:
                    extra = ((e - base) * (k - 1)).quantize(Decimal("0.001"), ROUND_HALF_EVEN)
                line = "%s,%s,%s," % (r["ts"], r["power_w"], r["import_wh"])
                fr.write(line + r["export_wh"] + "\n")
                fd.write(line + str(e + extra) + "\n")
        else:
            raise ValueError("fault must be gain or drift")
    return ref_path, dev_path


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--fault", choices=("gain", "drift"), default="gain")
    p.add_argument("--slot", type=int, default=26, help="JST slot 1..48 holding the fault")
    p.add_argument("--factor", default="1.05", help="gain of the faulty reading (decimal)")
    p.add_argument("--start", default="10:00")
    p.add_argument("--end", default="16:00")
    p.add_argument("--step", type=int, default=5, help="seconds between samples")
    a = p.parse_args()
    for path in make(a.out_dir, a.fault, a.slot, a.factor, a.start, a.end, a.step):
        print(path)


if __name__ == "__main__":
    main()
