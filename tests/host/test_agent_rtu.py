"""The agent on Modbus RTU over a pseudo-terminal, in the MicroPython unix port with a 32 KB
data heap: an emulated EV charger with an Eastron SDM630 (float32 kWh, function 0x04) behind
`smeter emulate --pty-link`, the collector on loopback UDP, and a Wi-SUN module whose serial
port does not exist yet when the agent starts (a module still powering up, an emulator
started later). The agent meters and queues anyway, retries the port once a second (faults
radio_open_*), starts the module's init as soon as the port opens, joins, and delivers the
backlog; every slot's energy matches the emulator's truth."""
import os
import subprocess
import time

import pytest

from agent_stack import CLI, Stack, _env, agent_config, read_log
from conftest import ROOT, micropython_or_fail

SPEED = 1200
HOURS = 2


@pytest.mark.slow
@pytest.mark.micropython
def test_agent_meters_an_rtu_charger_and_waits_for_a_late_module(tmp_path):
    micropython_or_fail()
    # a car charging at a steady 3.6 kW: every slot has energy to compare
    st = Stack(tmp_path, speed=SPEED, start="2026-06-21T18:00", kind="charger", rtu=True,
               profile="const:w=3600")
    late = os.path.join(st.tmp, "wisun_late")
    w = None
    try:
        agent_config(st.config, None, late,
                     device={"map": "eastron_sdm630", "transport": "rtu", "port": st.modbus_link,
                             "baud": 9600, "unit": 1, "poll_interval_s": 10, "timeout_ms": 300},
                     integrator={"max_power_w": 10000})
        until = (st.sim_s() // 1800 + HOURS * 2) * 1800 + 600
        log = os.path.join(st.tmp, "agent.log")
        p = st.agent("micropython", until=until, log=log, data_heap="32K")
        time.sleep(1.5)
        assert p.poll() is None
        w = subprocess.Popen(CLI + ["wisun-emulator", "--pty-link", late, "--collector",
                                    "127.0.0.1:%d" % st.collector_port, "--time-scale", "0.05"],
                             cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        p.wait(HOURS * 3600 / SPEED + 60)
        time.sleep(0.3)
        stored, rejected = st.stored()
        truth = st.truth_slots("import")
    finally:
        if w is not None:
            w.terminate()
            w.wait()
            w.stdout.close()
        st.stop()
    text = open(log).read()
    assert p.returncode == 0, text[-3000:]
    lines = read_log(log)
    evs = [ln["ev"] for ln in lines]
    opened = evs.index("radio_opened")
    assert any(ln["ev"] == "fault" and ln["kind"].startswith("radio_open_") for ln in lines[:opened])
    assert "wisun_joined" in evs[opened:]
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
