"""Make the files of a test-plan bench run without hardware or processes, for `smeter verify
--plan` (docs/certification.md#rehearsing-a-bench-run).

Plays a plan (hw/test_plans/) on the emulated meter's model (host_tools/emulator/plan_play.py)
and writes into OUT_DIR:
  truth.csv   the reference: per plan slot, the exact energy that flowed, and the point
  device.csv  the 30-minute values an ideal agent reports from the meter's registers (whole Wh,
              the sub-Wh remainder carried), in `smeter replay` format: what `smeter verify`
              judges; with --fault the meter's measuring element is faulty during that point
The plan starts at --start (a slot start, JST) after one idle slot. Exact arithmetic, no
randomness: rerunning gives the same bytes. The full rehearsal with a real agent, Wi-SUN
module emulator and collector is tests/host/test_verify_rehearsal.py.

usage: python samples/make_bench_run.py OUT_DIR [--plan jemic_basic] [--meter METER.json]
       [--fault POINT=gain:F|creep:W|dead ...] [--start 2026-06-22T09:00]
"""
import argparse
import os
import sys
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from edge.slots import slot_iso  # noqa: E402
from host_tools.emulator.plan_play import PlanProfile, PlanTruthWriter, SLOT_S, parse_fault  # noqa: E402
from host_tools.emulator.simclock import parse_start  # noqa: E402
from host_tools.verify import declarations, plan as planmod  # noqa: E402

METER = os.path.join(HERE, "declarations", "meter_bench.json")


def make(out_dir, plan="jemic_basic", meter=METER, faults=(), start="2026-06-22T09:00"):
    """Write out_dir/truth.csv and out_dir/device.csv; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    p = planmod.load(plan)
    m = declarations.load_meter(meter)
    ids = [x["id"] for x in p["points"]]
    prof = PlanProfile(p, m["rated_power"], m.get("direction", "import"),
                       [parse_fault(f, ids) for f in faults])
    s0 = parse_start(start) // 1000
    prof.bind(s0)
    truth_path = os.path.join(out_dir, "truth.csv")
    dev_path = os.path.join(out_dir, "device.csv")
    w = PlanTruthWriter(truth_path, prof)
    rows = ["slot_start,slot,import_wh,export_wh,flags"]
    carry = {"imp": Fraction(0), "exp": Fraction(0)}
    for k in range(s0 // SLOT_S - 1, prof.end_s() // SLOT_S + 1):  # one idle slot each side
        w.on_row({"type": "slot", "start_s": k * SLOT_S})
        wh = Fraction(prof.power_w(k * SLOT_S) * SLOT_S, 3600)  # constant over the slot
        vals = {}
        for d, e in (("imp", max(wh, 0)), ("exp", max(-wh, 0))):
            carry[d] += e
            vals[d] = int(carry[d])
            carry[d] -= vals[d]
        rows.append("%s,%d,%d,%d," % (slot_iso(k), k % 48 + 1, vals["imp"], vals["exp"]))
    w.close()
    with open(dev_path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(rows) + "\n")
    return truth_path, dev_path


def main():
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("out_dir")
    a.add_argument("--plan", default="jemic_basic")
    a.add_argument("--meter", default=METER)
    a.add_argument("--fault", action="append", default=[], metavar="POINT=FAULT")
    a.add_argument("--start", default="2026-06-22T09:00")
    o = a.parse_args()
    for path in make(o.out_dir, o.plan, o.meter, o.fault, o.start):
        print(path)


if __name__ == "__main__":
    main()
