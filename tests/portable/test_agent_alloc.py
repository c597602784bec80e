"""The agent's poll path (request -> reply -> decode -> integrate) allocates nothing.

Under MicroPython the heap is locked around 200 polls: any allocation raises MemoryError
(on CPython heap_lock is a no-op and the test checks the results only).
"""
# mp-heap: 512K
from agent_rig import Inverter, PROFILE, config, map_json

from edge.agent import Agent
from edge.compat import heap_lock, heap_unlock
from edge.memstore import MemStorage

T0 = 200000 * 1800 + 60  # inside a slot: no slot closes during the locked polls


def test_poll_path_allocates_nothing():
    # save_every_s 0: no periodic state save (a file write, which allocates) inside the lock
    a = Agent(config(integrator={"save_every_s": 0}), map_json(), PROFILE, MemStorage(), None, T0)
    inv = Inverter(2400)
    req = a.start_poll(T0, 0, 0)
    r = inv.reply(req, T0)
    rep = bytearray(r)  # reused below: tid and counter patched in place
    a.modbus_feed(r, len(r), 0, T0)  # first reading: the integrator takes its base
    words = [0, 0]
    ok0 = a.log.counters["polls_ok"]
    n = 200
    heap_lock()
    try:
        for i in range(1, n + 1):
            t = T0 + i * 5
            a.next_poll = t
            req = a.start_poll(t, 0, i)
            rep[0] = req[0]
            rep[1] = req[1]
            wh = inv.wh_at(t - T0)
            words[0] = wh >> 16
            words[1] = wh & 0xFFFF
            rep[9 + 48] = words[0] >> 8
            rep[9 + 49] = words[0] & 0xFF
            rep[9 + 50] = words[1] >> 8
            rep[9 + 51] = words[1] & 0xFF
            a.modbus_feed(rep, len(rep), i, t)
    finally:
        heap_unlock()
    assert a.log.counters["polls_ok"] == ok0 + n
    assert a.log.counters["faults"] == 0
    assert a.integ.open_slot() == 200000
