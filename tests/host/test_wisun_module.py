"""The Wi-SUN module model (host_tools/emulator/wisun_module.py) sans I/O: no pty, no socket.

The real edge driver and the model are joined in memory (h11's ConnectionPair idea) and
run on a frozen SimClock that the test steps, so every latency and fault lands at an exact
emulated millisecond.
"""
import pytest

from edge.wisun import (
    EV_GATE, EV_JOIN_FAILED, EV_JOINED, EV_SEND_FAILED, EV_SEND_OK, EV_UDP_RECEIVED, GATE_RATE,
    GATE_SESSION, WisunDriver,
)
from host_tools.emulator.simclock import SimClock
from host_tools.emulator.wisun_faults import WisunFaultPlan, parse_faults
from host_tools.emulator.wisun_link import load_profile, profile_ids
from host_tools.emulator.wisun_module import WisunModule

COORD = "FE80:0000:0000:0000:021D:1290:1234:5678"
CFG = {"rbid": "0123456789ABCDEF0123456789ABCDEF", "pwd": "SECRETPWD123", "channel": 0x21,
       "pan_id": 0x8888, "coordinator": COORD, "backoff_base_ms": 50, "backoff_max_ms": 400}


class Pair:
    """Driver and module in memory on one stepped clock; the collector echoes b'ACK' + data."""

    def __init__(self, module="bp35a1", faults="", tx_budget_s=360.0):
        self.clock = SimClock.private(0, 0)  # frozen: only step() moves it
        prof = load_profile(module)
        self.m = WisunModule(prof, parse_faults(faults), tx_budget_s, self.clock.now_ms())
        self.d = WisunDriver(prof, CFG)
        self.events = []
        self.lines = b""  # everything the module printed
        self.forwarded = []

    def now(self):
        return self.clock.now_ms()

    def step(self, ms=1):
        self.clock.advance(ms)
        t = self.now()
        self.m.advance(t)
        out = self.d.poll(t)
        if out:
            self.m.receive_serial(out, t)
        self._pump(t)

    def _pump(self, t):
        for _ in range(3):  # replies to replies within the same millisecond
            data = self.m.take_serial()
            self.lines += data
            if data:
                self.d.feed(data, t)
            out = self.d.poll(t)
            if out:
                self.m.receive_serial(out, t)
            for dg in self.m.take_datagrams():
                self.forwarded.append(dg)
                self.m.receive_datagram(b"ACK" + dg, t)
        while True:
            e = self.d.next_event()
            if e is None:
                return
            self.events.append((t, e))

    def run_until(self, pred, limit_ms=600000, ms=1):
        end = self.now() + limit_ms
        while not pred():
            assert self.now() < end, ("stuck", self.d.state, self.d.counters, self.m.stats)
            self.step(ms)

    def of(self, kind):
        return [e for _, e in self.events if e[0] == kind]

    def send(self, payload, tag=0):
        t = self.now()
        self.m.receive_serial(self.d.send(payload, tag, t), t)
        self._pump(t)


@pytest.mark.parametrize("module", profile_ids())
def test_join_send_and_receive_on_every_profile_in_memory(module):
    p = Pair(module)
    p.run_until(lambda: p.of(EV_JOINED), ms=10)
    for i in range(3):
        p.run_until(p.d.can_send)
        p.send(b"frame-%d\r\n" % i, i)
        p.run_until(lambda: len(p.of(EV_UDP_RECEIVED)) == i + 1)
    assert p.forwarded == [b"frame-%d\r\n" % i for i in range(3)]
    assert [e[1] for e in p.of(EV_UDP_RECEIVED)] == [b"ACKframe-%d\r\n" % i for i in range(3)]
    assert [e[1] for e in p.of(EV_SEND_OK)] == [0, 1, 2]
    assert p.d.counters["unknown_lines"] == p.d.counters["garbled_lines"] == 0
    assert p.m.stats["forwarded"] == 0  # counted by the I/O loop when it really sends


def test_each_answer_comes_exactly_its_profile_latency_later():
    p = Pair("bp35a1")
    lat = p.m.profile["emulator_ms"]
    t0 = p.now()
    p.m.receive_serial(b"SKVER\r\n", t0)
    assert p.m.take_serial() == b"SKVER\r\nEVER 1.2.10\r\n"  # echo on, the version at once
    assert p.m.next_timer() == t0 + lat["ok"]
    p.m.advance(t0 + lat["ok"] - 1)
    assert p.m.take_serial() == b""
    p.m.advance(t0 + lat["ok"])
    assert p.m.take_serial() == b"OK\r\n"
    p.m.receive_serial(b"SKRESET\r\nSKNOPE\r\n", t0 + 100)
    p.m.advance(t0 + 100 + lat["reset"])
    assert p.m.take_serial() == b"SKRESET\r\nSKNOPE\r\nFAIL ER04\r\nOK\r\n"


def test_a_link_outage_window_fails_sends_exactly_inside_it():
    p = Pair("bp35a1", faults="link_down=10s@30s")
    p.run_until(lambda: p.of(EV_JOINED), ms=10)
    assert p.now() < 30000
    p.run_until(lambda: p.now() >= 30000, ms=100)
    p.run_until(p.d.can_send)
    p.send(b"during")
    p.run_until(lambda: p.of(EV_SEND_FAILED))
    assert p.of(EV_SEND_FAILED)[0][2] == "tx_failed" and p.m.stats["link_down_sends"] == 1
    assert p.forwarded == []
    p.run_until(lambda: p.now() >= 40000 and p.d.can_send(), ms=50)
    p.send(b"after")
    p.run_until(lambda: p.of(EV_SEND_OK))
    assert p.forwarded == [b"after"]


def test_arib_window_raises_event_32_and_33_at_the_planned_times():
    p = Pair("bp35a1", faults="arib=100s@50s")
    p.run_until(lambda: any(e[0] == EV_GATE and e[1] == GATE_RATE for _, e in p.events), ms=10)
    closed = [t for t, e in p.events if e[0] == EV_GATE and e[1] == GATE_RATE][0]
    assert closed == 50000
    p.run_until(lambda: p.d.rate_open, ms=10)
    opened = [t for t, e in p.events if e[0] == EV_GATE and e[1] == GATE_RATE][-1]
    assert opened == 150000


def test_airtime_over_the_budget_closes_the_rate_gate_until_the_hour_slides_past():
    # (200 + 60) * 8 / 100 kbit/s = 20.8 ms on air per send; a 30 ms budget holds one
    p = Pair("bp35a1", tx_budget_s=0.03)
    p.run_until(lambda: p.of(EV_JOINED), ms=10)
    sent_at = []
    for i in range(2):
        p.run_until(p.d.can_send)
        p.send(b"x" * 200, i)
        sent_at.append(p.now())
        p.run_until(lambda: len(p.of(EV_SEND_OK)) == i + 1)
    p.run_until(lambda: not p.d.rate_open)
    first_tx = sent_at[0]
    p.run_until(lambda: p.d.rate_open, limit_ms=4000000, ms=1000)
    assert first_tx + 3600000 <= p.now() <= first_tx + 3600000 + 2000
    assert p.m.stats["rate_limited"] == 0


def test_session_expiry_then_the_modules_own_reauthentication():
    p = Pair("bp35a1", faults="session_expiry=40s")
    p.run_until(lambda: p.of(EV_JOINED), ms=10)
    joined_at = p.now()
    p.run_until(lambda: not p.d.session_open, ms=10)
    assert joined_at + 40000 - 10 <= p.now() <= joined_at + 40000 + 10
    p.run_until(lambda: p.d.session_open, ms=10)
    assert p.m.stats["session_expiries"] == 1 and p.d.counters["udp_pana"] == 2
    assert [(e[1], e[2]) for e in p.of(EV_GATE) if e[1] == GATE_SESSION] == [
        (GATE_SESSION, True), (GATE_SESSION, False), (GATE_SESSION, True)]


def test_the_first_joins_fail_as_planned():
    p = Pair("bp35a1", faults="join_fail=2")
    p.run_until(lambda: p.of(EV_JOINED), ms=10)
    assert [e[1] for e in p.of(EV_JOIN_FAILED)] == ["rejected", "rejected"]
    assert p.m.stats["join_failures"] == 2 and p.m.stats["joins"] == 1


def test_replies_the_module_cannot_deliver_are_counted_lost():
    p = Pair("bp35a1")
    p.m.receive_datagram(b"early", p.now())  # no session yet
    assert p.m.stats["lost"] == 1 and p.m.take_serial() == b""
    p.run_until(lambda: p.of(EV_JOINED), ms=10)
    p.m.receive_datagram(b"x" * 1233, p.now())  # beyond max_payload
    assert p.m.stats["lost"] == 2 and p.m.take_serial() == b""


def test_one_plan_and_seed_give_one_output_stream():
    def run(spec):
        p = Pair("bp35a1", faults=spec)
        p.run_until(lambda: p.of(EV_JOINED), ms=10)
        for i in range(10):
            p.run_until(p.d.can_send, limit_ms=900000, ms=10)
            p.send(b"s%d" % i, i)
            p.run_until(lambda: len(p.of(EV_SEND_OK)) + len(p.of(EV_SEND_FAILED)) > i,
                        limit_ms=900000, ms=10)
        return p.lines, p.m.stats

    spec = "garbage=0.2,drop=0.2,truncate=0.05,seed=9"
    a, b = run(spec), run(spec)
    assert a == b and a[1]["garbage_lines"] > 0
    assert run(spec.replace("seed=9", "seed=10"))[0] != a[0]


def test_a_fault_plan_is_data():
    plan = parse_faults("link_down=1m@2m,arib=30s@1h,drop=0.1,session_expiry=2h,join_fail=1,"
                        "seed=3")
    assert plan.to_dict() == {
        "link_down": [(120000.0, 60000.0)], "arib": [(3600000.0, 30000.0)], "drop": 0.1,
        "lose": 0.0, "garbage": 0.0, "truncate": 0.0, "session_expiry_ms": 7200000.0,
        "join_fail": 1, "seed": 3}
    assert not plan.link_up(120000) and plan.link_up(119999) and plan.link_up(180000)
    same = WisunFaultPlan(**dict(plan.to_dict()))
    assert same.to_dict() == plan.to_dict()
    assert not WisunFaultPlan().roll(0.0)
