"""The agent seals each JST day (and the day so far at a restart) in steps between polls,
sends the seal like a slot, and after power cuts never loses or doubles it."""
# mp-heap: 512K
from agent_rig import Inverter, PROFILE, Rig, config, map_json

from edge import p256, seal
from edge.agent import Agent
from edge.memstore import MemStorage

PRIV = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
PUB = p256.public_key(PRIV)
DAY = 4167  # JST day number
T0 = (DAY * 48 - 3) * 1800  # three slots before the day ends
BIG = dict(PROFILE)
BIG["max_payload"] = 1232  # the real modules' limit (hw/modules): a seal frame fits


def factory(storage, cfg, lines=None):
    def make(t):
        return Agent(cfg, map_json(), BIG, storage, lines.append if lines is not None else None, t)
    return make


def sealed_cfg():
    return config(seal_key=PRIV.hex(), seal_key_no=2)


def values_of(col, day):
    out = {}
    for slot, v in col.slots.items():
        if slot // 48 == day:
            out[slot % 48 + 1] = v
    return out


def test_day_close_makes_one_seal_that_verifies_against_what_the_collector_got():
    st = MemStorage()
    lines = []
    rig = Rig(factory(st, sealed_cfg(), lines), Inverter(3600), T0)
    rig.run(5 * 1800 + 120, 2000)
    a = rig.agent
    assert a.log.counters["seals_made"] == 1 and a.log.counters["seals_acked"] == 1
    assert len(rig.col.seals) == 1
    raw = rig.col.seals[0]
    s = seal.parse(raw)
    assert (s.device_id, s.day, s.key_no, s.first, s.count) == (4660, seal.day_code(DAY - 1), 2, 1, 48)
    vals = values_of(rig.col, DAY - 1)
    assert sorted(vals) == [46, 47, 48]  # the device ran only the day's last three slots
    r = seal.check(raw, PUB, vals, 4660, seal.day_code(DAY - 1))
    assert r.ok, r.problems
    assert a.sealjob.outbox() is None and a.sealjob.last_day == DAY - 1
    assert any(" ev=seal_made " in ln for ln in lines) and any(" ev=seal_acked " in ln for ln in lines)
    assert a.status(rig.t)["seal"]["seal_last_day"] == DAY - 1


def test_no_seal_key_no_seal():
    st = MemStorage()
    rig = Rig(factory(st, config()), Inverter(3600), T0)
    rig.run(4 * 1800, 2000)
    assert rig.agent.sealjob is None and rig.col.seals == []
    assert rig.agent.status(rig.t)["seal"] is None


def _step_until(rig, cond, limit=20000):
    for _ in range(limit):
        if cond():
            return True
        rig.step(1000)
    return False


def test_power_cuts_mid_signature_at_the_save_and_before_the_ack_never_lose_or_double():
    from edge import sealing

    st = MemStorage()
    rig = Rig(factory(st, sealed_cfg()), Inverter(3600), T0)
    job = lambda: rig.agent.sealjob  # noqa: E731
    # 1. the power goes mid-signature: the half-done signer is in RAM only
    assert _step_until(rig, lambda: job().phase == sealing.SIGN)
    st.power_cycle()
    rig.restart()
    assert job().outbox() is None and job().last_day < DAY - 1
    # 2. the power goes at the very write that would keep the finished seal
    assert _step_until(rig, lambda: job().phase == sealing.SIGN)
    st.cut_after(0)
    assert _step_until(rig, lambda: st.dead)
    assert rig.agent.log.faults.get("power_cut", 0) >= 1
    st.power_cycle()
    rig.restart()
    assert job().outbox() is None and job().last_day < DAY - 1
    # 3. the seal is kept, sent, but its ack is lost; the power goes before a resend is acked
    rig.mod.drop_acks = True
    assert _step_until(rig, lambda: job().outbox() is not None and rig.mod.sent > 0
                       and len(rig.col.seals) >= 1)
    st.power_cycle()
    rig.restart()
    assert job().outbox() is not None and job().last_day == DAY - 1
    rig.mod.drop_acks = False
    rig.run(2 * 1800, 1000)
    assert job().outbox() is None
    by_range = {}
    for raw in rig.col.seals:
        s = seal.parse(raw)
        key = (s.day, s.first, s.count)
        assert by_range.setdefault(key, raw) == raw, key  # resent, never different
    assert [k for k in by_range if k[2] == 48] == [(seal.day_code(DAY - 1), 1, 48)]
    assert len([r for r in rig.col.seals if seal.parse(r).count == 48]) >= 2  # it was resent
    for (day, first, count), raw in by_range.items():
        r = seal.check(raw, PUB, values_of(rig.col, seal.day_number(day)), 4660, day)
        assert r.ok, (day, count, r.problems)
    # a restart now seals the new day so far (its first slots have closed since)
    rig.restart()
    rig.run(600, 1000)
    last = seal.parse(rig.col.seals[-1])
    assert (last.day, last.first) == (seal.day_code(DAY), 1) and 1 <= last.count < 48
    assert seal.check(rig.col.seals[-1], PUB, values_of(rig.col, DAY)).ok


def test_a_full_heap_in_the_seal_job_holds_up_neither_the_slots_nor_the_seal():
    # On a 48 KB board the daily seal's signing ran out of heap at midnight; its MemoryError
    # used to leave service() before the uplink, and a board that kept failing there sent
    # no slot again. Two of three seal calls fail here, as on such a heap.
    st = MemStorage()
    rig = Rig(factory(st, sealed_cfg()), Inverter(3600), T0)
    a = rig.agent
    real = a.sealjob.work
    calls = [0]

    def starved(queue, ops=1):
        calls[0] += 1
        if calls[0] % 3:
            raise MemoryError("no heap")
        return real(queue, ops)

    a.sealjob.work = starved
    rig.run(5 * 1800 + 600, 2000)
    assert a.log.faults.get("seal_no_memory", 0) > 100
    assert len(rig.col.slots) >= 5 and a.queue.pending() == 0  # the slots went out all along
    assert len(rig.col.seals) == 1  # and the seal, only later
    assert seal.check(rig.col.seals[0], PUB, values_of(rig.col, DAY - 1), 4660,
                      seal.day_code(DAY - 1)).ok
