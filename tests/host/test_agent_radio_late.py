"""The Wi-SUN module's serial port is missing when the agent starts (a module still powering
up, an emulator started later): the agent meters and queues anyway, retries the port once a
second (counted as radio_open_* faults), starts the module's init as soon as the port opens,
joins, and delivers the backlog to the collector."""
import os
import subprocess
import time

import pytest

from agent_stack import CLI, Stack, _env, agent_config, read_log
from conftest import ROOT, micropython_or_fail


@pytest.mark.slow
@pytest.mark.micropython
def test_agent_waits_for_a_late_module_port(tmp_path):
    micropython_or_fail()
    st = Stack(tmp_path, speed=600)
    late = os.path.join(st.tmp, "wisun_late")
    w = None
    try:
        agent_config(st.config, st.modbus_port, late)
        until = (st.sim_s() // 1800 + 2) * 1800 + 600
        log = os.path.join(st.tmp, "agent.log")
        p = st.agent("micropython", until=until, log=log)
        time.sleep(2.0)
        assert p.poll() is None
        w = subprocess.Popen(CLI + ["wisun-emulator", "--pty-link", late, "--collector",
                                    "127.0.0.1:%d" % st.collector_port, "--time-scale", "0.05"],
                             cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        p.wait(60)
        time.sleep(0.3)
        stored, rejected = st.stored()
    finally:
        if w is not None:
            w.terminate()
            w.wait()
            w.stdout.close()
        st.stop()
    lines = read_log(log)
    assert p.returncode == 0
    evs = [ln["ev"] for ln in lines]
    opened = evs.index("radio_opened")
    assert any(ln["ev"] == "fault" and ln["kind"].startswith("radio_open_") for ln in lines[:opened])
    assert "wisun_joined" in evs[opened:]
    closed = [int(ln["slot"]) for ln in lines if ln["ev"] == "slot_closed"]
    assert len(closed) >= 2 and set(closed) <= set(stored) and not rejected
    stop = [ln for ln in lines if ln["ev"] == "stop"][-1]
    assert int(stop["queue"]) == 0, stop
