"""A whole bench run rehearsed with real processes (docs/certification.md#rehearsing-a-bench-run):
`smeter emulate meter --plan`
plays hw/test_plans/jemic_basic.json on a Modbus TCP meter and writes its exact truth; the
metering agent (edge core, CPython) polls it and uplinks through a Wi-SUN module emulator to
the collector; what the collector stored is what the agent reported. `smeter verify --plan`
then judges that against the truth: a correct meter passes every point, a meter with a gain
error at 20 % load, creep at no load and a dead starting current fails exactly those points.
The two runs go one after the other: side by side on two cores the agents' poll timing
skews slot boundaries by tens of Wh at the emulator's accelerated clock."""
import json
import os
import time

import pytest

from agent_stack import Stack, agent_config
from conftest import ROOT
from edge.flags import flag_bound, names
from edge.slots import slot_iso
from host_tools.cli import main

SPEED = 600
DECL = os.path.join(ROOT, "samples", "declarations")
METER = os.path.join(DECL, "meter_bench.json")
FAULTS = ("I20-60Hz=gain:1.05", "noload-50Hz=creep:4", "start-50Hz=dead")


class PlanStack(Stack):
    """agent_stack.Stack whose emulator plays the plan (extra options on its command line)."""

    def __init__(self, tmp, faults=()):
        os.makedirs(str(tmp), exist_ok=True)
        self.plan_args = ["--plan", "jemic_basic", "--meter", METER,
                          "--plan-truth", os.path.join(str(tmp), "truth.csv")]
        for f in faults:
            self.plan_args += ["--plan-fault", f]
        Stack.__init__(self, tmp, speed=SPEED, start="2026-06-21T08:00", kind="meter")

    def _spawn(self, argv, **kw):
        if "emulate" in argv:
            argv = argv + self.plan_args
        return Stack._spawn(self, argv, **kw)

    def device_csv(self, path):
        """What the agent reported (the collector's rows) in `smeter replay` format, with the
        attribution bound the agent states per slot (flags bits 8..12)."""
        stored, rejected = self.stored()
        with open(path, "w") as f:
            f.write("slot_start,slot,import_wh,export_wh,flags,bound_wh\n")
            for s in sorted(stored):
                imp, exp, fl = stored[s]
                b = flag_bound(fl)
                f.write("%s,%d,%s,%s,%s,%s\n" % (slot_iso(s), s % 48 + 1, imp, exp, names(fl),
                                                 b if b >= 0 else ""))
        return rejected


def bench_run(tmp, faults=()):
    """One rehearsed bench run; returns verify's exit status, {point: decision}, document."""
    st = PlanStack(tmp, faults)
    try:
        assert st.ready["plan"]["start"] is None  # armed: starts after the first read
        agent_config(st.config, st.modbus_port, st.link,
                     device={"map": "sunspec_meter_203", "poll_interval_s": 10})
        until = (st.sim_s() // 1800 + st.ready["plan"]["slots"] + 8) * 1800
        p = st.agent("cpython", until=until)
        # The emulator says when the plan starts (once the agent has read the meter); the run
        # is over when the collector holds the plan's last slot.
        last = json.loads(st.procs[0].stdout.readline())["plan_end"] // 1800 - 1
        deadline = time.time() + 240
        while time.time() < deadline and last not in st.stored()[0]:
            assert p.poll() in (None, 0)
            time.sleep(0.3)
        log = open(os.path.join(st.tmp, "agent.log")).read()
        assert last in st.stored()[0], log[-2000:]
        assert not st.device_csv(os.path.join(st.tmp, "device.csv"))
    finally:
        st.stop()
    rc = main(["verify", os.path.join(st.tmp, "device.csv"), "--reference",
               os.path.join(st.tmp, "truth.csv"), "--reference-meter",
               os.path.join(DECL, "emulator_reference.json"), "--meter", METER,
               "--plan", "jemic_basic", "--json", "--report", os.path.join(st.tmp, "report")])
    return rc, open(os.path.join(st.tmp, "device.csv")).read()


@pytest.mark.slow
def test_bench_run_passes_a_correct_meter_and_fails_the_faulty_points(tmp_path, capsys):
    rc, dev = bench_run(tmp_path / "good")
    doc = json.loads(capsys.readouterr().out)
    pts = {p["id"]: p["decision"] for p in doc["points"]}
    assert rc == 0 and set(pts.values()) == {"pass"}, (doc["reasons"], dev)
    rc, dev = bench_run(tmp_path / "bad", FAULTS)
    doc = json.loads(capsys.readouterr().out)
    pts = {p["id"]: p["decision"] for p in doc["points"]}
    assert rc == 1, (doc["reasons"], dev)
    assert {k for k, v in pts.items() if v != "pass"} == {"I20-60Hz", "noload-50Hz",
                                                          "start-50Hz"}, (doc["reasons"], dev)
    assert all(pts[k] == "fail" for k in ("I20-60Hz", "noload-50Hz", "start-50Hz"))
