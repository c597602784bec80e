"""The agent on Modbus RTU over a pseudo-terminal, in the MicroPython unix port: an emulated
EV charger with an Eastron SDM630 (float32 kWh, function 0x04) behind `smeter emulate
--pty-link`, the Wi-SUN module emulator on another pty, the collector on loopback UDP."""
import os
import time

import pytest

from agent_stack import Stack, agent_config, read_log
from conftest import micropython_or_fail

SPEED = 1200
HOURS = 2


@pytest.mark.slow
@pytest.mark.micropython
def test_agent_meters_an_rtu_charger_on_a_pty(tmp_path):
    micropython_or_fail()
    # a car charging at a steady 3.6 kW: every slot has energy to compare
    st = Stack(tmp_path, speed=SPEED, start="2026-06-21T18:00", kind="charger", rtu=True,
               profile="const:w=3600")
    try:
        agent_config(st.config, None, st.link,
                     device={"map": "eastron_sdm630", "transport": "rtu", "port": st.modbus_link,
                             "baud": 9600, "unit": 1, "poll_interval_s": 10, "timeout_ms": 300},
                     integrator={"max_power_w": 10000})
        until = (st.sim_s() // 1800 + HOURS * 2) * 1800 + 600
        log = os.path.join(st.tmp, "agent.log")
        p = st.agent("micropython", until=until, log=log, data_heap="32K")
        p.wait(HOURS * 3600 / SPEED + 60)
        time.sleep(0.3)
        stored, rejected = st.stored()
        truth = st.truth_slots("import")
    finally:
        st.stop()
    text = open(log).read()
    assert p.returncode == 0, text[-3000:]
    lines = read_log(log)
    stop = [ln for ln in lines if ln["ev"] == "stop"][-1]
    assert int(stop["queue"]) == 0 and int(stop["slots"]) >= HOURS * 2 - 1, stop
    assert not rejected
    first, last = min(stored), max(stored)
    assert sorted(stored) == list(range(first, last + 1))
    checked = 0
    for s in range(first + 1, last + 1):
        imp, exp, flags = stored[s]
        assert exp == 0 and not flags & 4, (s, stored[s])
        if not flags & 3:
            # float32 kWh -> whole Wh at the meter, plus the boundary skew of 1200x
            assert abs(imp - truth[s][0]) <= 20, (s, imp, truth[s])
            checked += 1
    assert checked >= HOURS * 2 - 2
    total = sum(stored[s][0] for s in range(first + 1, last + 1))
    delta = truth[last][2] - truth[first + 1][1]
    assert total > 0 and abs(total - delta) <= 20, (total, delta)  # the car charged, all counted
