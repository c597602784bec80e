"""The agent's metering clock synchronised over the uplink (edge/clock_sync.py wired into
edge/agent.py): a board clock that starts minutes wrong and drifts, acks carrying the
collector's true time after a round trip, steps and slews, unsynced and stepped slots
flagged, energy exact. Plain asserts: CPython and the MicroPython unix port."""
# mp-heap: 512K
from agent_rig import KEY_HEX, PROFILE, Collector, Inverter, Module, config, map_json

from edge.agent import Agent
from edge.flags import BOUND_UNKNOWN, CLOCK_STEP, ESTIMATED
from edge.frame import ST_CLOCK_UNSYNCED, ST_TIME_REQUEST
from edge.memstore import MemStorage

T0 = 200000 * 1800 + 600  # true edge seconds at the start: 10 minutes into a slot
KEY = bytes(range(16))


class LateModule(Module):
    """The rig's module with a round trip: the collector stamps the frame `up_ms` after it
    leaves and its ack reaches the agent `up_ms + down_ms` after it left."""

    def __init__(self, collector, rig):
        Module.__init__(self, collector)
        self.rig = rig
        self.later = []  # (true ms, bytes)
        self.up_ms = 150
        self.down_ms = 250

    def _send(self, payload):
        if not self.up:
            self.sent += 1
            self.out.append(b"EVENT 21 FE80:0000:0000:0000:021D:1290:1234:5678 01\r\nOK\r\n")
            return
        self.collector.now_ms = self.rig.true_ms + self.up_ms
        n = len(self.out)
        Module._send(self, payload)
        if len(self.out) > n + 1:  # EVENT 21 + OK now, the ERXUDP later
            self.later.append((self.rig.true_ms + self.up_ms + self.down_ms, self.out.pop()))

    def read(self):
        while self.later and self.later[0][0] <= self.rig.true_ms:
            self.out.append(self.later.pop(0)[1])
        return Module.read(self)


class DriftRig:
    """True time advances in ms; the agent's board clock reads true * (1 + ppm) + err_ms."""

    def __init__(self, cfg, watts, ppm, err_ms, storage=None):
        self.true_ms = T0 * 1000
        self.t0_ms = self.true_ms
        self.ppm = ppm
        self.err_ms = err_ms
        self.inv = Inverter(watts)
        self.col = Collector(KEY)
        self.col.key = bytes(bytearray.fromhex(KEY_HEX))
        self.mod = LateModule(self.col, self)
        self.storage = storage or MemStorage()
        self.cfg = cfg
        self.now = 0
        self.mt = [0, 0]
        self.max_err = 0  # largest |metering - true| seen while the agent said synced, ms
        self.worst_margin = 0  # largest (|error| - bound) while synced; must stay <= 0
        self.first_wh = None
        self.last_wh = None
        self.statuses = []
        self.agent = Agent(cfg, map_json(), PROFILE, self.storage, None, self.raw()[0])

    def raw(self):
        r = self.true_ms + self.err_ms + (self.true_ms - self.t0_ms) * self.ppm // 1000000
        return r // 1000, r % 1000

    def metering(self):
        s, ms = self.raw()
        self.agent.clock.meter_into(s, ms, self.mt)
        return self.mt[0], self.mt[1]

    def step(self, dt_ms=1000, poll=True):
        a = self.agent
        t, tms = self.metering()
        if a.clock.synced(t):
            err = t * 1000 + tms - self.true_ms
            err = -err if err < 0 else err
            if err > self.max_err:
                self.max_err = err
            if err - a.clock.bound_ms(t) > self.worst_margin:
                self.worst_margin = err - a.clock.bound_ms(t)
        if poll and a.poll_due(t):
            req = bytes(a.start_poll(t, tms, self.now))
            ts = self.true_ms // 1000
            rep = self.inv.reply(req, ts)
            if rep:
                wh = self.inv.wh_at(ts)
                if self.first_wh is None:
                    self.first_wh = wh
                self.last_wh = wh
                a.modbus_feed(rep, len(rep), self.now, t, tms)
        end = self.true_ms + dt_ms
        while True:
            self._pump()
            # an ack due within this step is read at its arrival time (the round trip)
            if self.mod.later and self.mod.later[0][0] < end:
                at = self.mod.later[0][0]
                if at > self.true_ms:
                    self.now = (self.now + at - self.true_ms) & 0x3FFFFFFF
                    self.true_ms = at
                continue
            break
        self.now = (self.now + end - self.true_ms) & 0x3FFFFFFF
        self.true_ms = end

    def _pump(self):
        a = self.agent
        for _ in range(32):
            t, tms = self.metering()
            out = a.service(self.now, t, tms)
            wrote = False
            while out:  # piece by piece, as the board writes them
                if isinstance(out, bytes) and out.startswith(b"SKSENDTO"):
                    if len(self.statuses) > 1:  # the first and the latest frame's status
                        self.statuses.pop()
                    self.statuses.append(a._status_bits(t))
                self.mod.write(out)
                wrote = True
                out = a.next_output()
            data = self.mod.read()
            if data:
                t, tms = self.metering()
                a.wisun_feed(data, self.now, t, tms)
            elif not wrote:
                break

    def run(self, seconds, dt_ms=1000):
        for _ in range(seconds * 1000 // dt_ms):
            self.step(dt_ms)

    def close_all(self):
        """Close the open slot (the end of the data) and let the queue drain."""
        a = self.agent
        t, tms = self.metering()
        while a.integ.close(a.rec):
            a._closed(t)
        for _ in range(30):
            self.step(1000, poll=False)
        assert a.queue.pending() == 0

    def exported(self):
        return sum(v[1] for v in self.col.slots.values())

    def flags(self):
        return dict((s, v[2]) for s, v in self.col.slots.items())


def cfg(**clock):
    c = {"source": "uplink", "max_error_ms": 1000, "drift_ppm": 100}
    c.update(clock)
    return config(clock=c, uplink={"max_batch": 8, "ack_timeout_ms": 5000, "retry_ms": 50})


def test_a_clock_minutes_ahead_is_stepped_back_and_no_energy_is_lost():
    rig = DriftRig(cfg(), 3600, 100, 7 * 60 * 1000)  # 7 minutes ahead, +100 ppm
    rig.run(3 * 3600)
    rig.close_all()
    a = rig.agent
    assert a.clock.steps == 1 and a.log.counters.get("clock_samples", 0) >= 1
    assert rig.statuses[0] & ST_CLOCK_UNSYNCED and rig.statuses[0] & ST_TIME_REQUEST
    assert not rig.statuses[-1] & ST_CLOCK_UNSYNCED
    # every Wh the device counted is in exactly one slot, none dropped as a clock going back
    assert rig.exported() == rig.last_wh - rig.first_wh
    assert a.log.counters.get("slots_stale", 0) == 0
    fl = rig.flags()
    first = min(fl)
    # the boot slot closed on the wrong clock (its ack brought the time); the next slot
    # was opened on it too and took the step back (its polls held until its start)
    for s in (first, first + 1):
        assert fl[s] & ESTIMATED and (fl[s] >> 8) & 31 == BOUND_UNKNOWN
    assert fl[first + 1] & CLOCK_STEP and not fl[first] & CLOCK_STEP
    # once synced the clock stays inside its bound, and slots are clean again
    assert rig.worst_margin <= 0 and rig.max_err <= 1000
    clean = [s for s in fl if not fl[s] & CLOCK_STEP and (fl[s] >> 8) & 31 != BOUND_UNKNOWN]
    clean.remove(max(fl))  # the last slot ends with the data
    # a slewing clock makes a slot up to 0.9 s longer or shorter: 3.6 kW x 0.9 s < 1 Wh
    assert len(clean) >= 4 and all(abs(rig.col.slots[s][1] - 1800) <= 1 for s in clean)


def test_a_clock_behind_is_stepped_forward_and_every_touched_slot_is_flagged():
    rig = DriftRig(cfg(), 1800, -100, -40 * 60 * 1000)  # 40 minutes behind
    rig.run(3 * 3600)
    rig.close_all()
    fl = rig.flags()
    first = min(fl)
    assert rig.agent.clock.steps == 1
    assert rig.exported() == rig.last_wh - rig.first_wh
    stepped = sorted(s for s in fl if fl[s] & CLOCK_STEP)
    # the boot slot closed on the wrong clock before the first ack; the slot open at the
    # step and the one it landed in: flagged, and no bound claimed (the old clock's energy
    # is in them or missing from them)
    assert (fl[first] >> 8) & 31 == BOUND_UNKNOWN and not fl[first] & CLOCK_STEP
    assert stepped == [first + 1, first + 2]
    assert all(fl[s] & ESTIMATED and (fl[s] >> 8) & 31 == BOUND_UNKNOWN for s in stepped)
    assert not any(fl[s] & CLOCK_STEP for s in fl if s > first + 2)
    assert rig.worst_margin <= 0


def test_a_small_offset_is_slewed_without_a_step():
    rig = DriftRig(cfg(), 3600, 50, 90)  # 90 ms ahead: below step_ms
    rig.run(2 * 3600)
    a = rig.agent
    assert a.clock.steps == 0 and a.clock.samples >= 1
    assert not any(v & CLOCK_STEP for v in rig.flags().values())
    assert rig.worst_margin <= 0


def test_an_uplink_outage_lets_the_bound_grow_past_the_limit_then_resyncs():
    rig = DriftRig(cfg(drift_ppm=200), 3600, 150, 0)
    rig.run(3600)
    assert rig.agent.clock.synced(rig.metering()[0])
    rig.mod.up = False  # 3 hours without acks: 200 ppm x 3 h = 2.2 s > 1 s
    rig.run(3 * 3600)
    t = rig.metering()[0]
    a = rig.agent
    assert not a.clock.synced(t) and a._status_bits(t) & ST_CLOCK_UNSYNCED
    rig.mod.up = True
    rig.run(2 * 3600)
    rig.close_all()
    assert a.clock.synced(rig.metering()[0])
    fl = rig.flags()
    first = min(fl)
    unsynced = sorted(s for s in fl if (fl[s] >> 8) & 31 == BOUND_UNKNOWN)
    # the boot slot and the one open at the first sync; then the slots from when the bound
    # passed 1 s (about 1 h into the outage) until the resync after it, in one run
    assert unsynced[:2] == [first, first + 1]
    late = unsynced[2:]
    assert 3 <= len(late) <= 6 and late == list(range(late[0], late[-1] + 1)), unsynced
    assert late[0] >= first + 3
    assert rig.exported() == rig.last_wh - rig.first_wh
    assert rig.worst_margin <= 0


def test_the_offset_survives_a_restart_but_the_sync_does_not():
    st = MemStorage()
    rig = DriftRig(cfg(), 3600, 0, 5 * 60 * 1000, st)
    rig.run(1800)  # the first slot closes, its ack brings the time
    assert rig.agent.clock.steps == 1
    off = (rig.agent.clock.off_s, rig.agent.clock.off_ms)
    b = Agent(rig.cfg, map_json(), PROFILE, st, None, rig.raw()[0])
    assert (b.clock.off_s, b.clock.off_ms) == off
    assert not b.clock.synced(rig.raw()[0] + off[0])
