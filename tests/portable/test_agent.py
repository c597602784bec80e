"""The agent core end to end in memory: device -> integrator -> queue -> frames -> acks."""
# mp-heap: 512K
from agent_rig import Inverter, PROFILE, Rig, config, map_json

from edge.agent import Agent
from edge.memstore import MemStorage
from edge.slots import slot_of

T0 = 200000 * 1800  # a slot boundary, edge seconds


def factory(storage, cfg, lines=None):
    def make(t):
        return Agent(cfg, map_json(), PROFILE, storage, lines.append if lines is not None else None, t)
    return make


def test_slots_flow_and_are_acked_exactly():
    st = MemStorage()
    lines = []
    inv = Inverter(3600)  # 1 Wh per second
    rig = Rig(factory(st, config(), lines), inv, T0)
    rig.run(3 * 1800 + 60, 2000)
    a = rig.agent
    c = a.log.counters
    assert c["slots_closed"] == 3
    assert a.queue.pending() == 0
    assert c["frames_acked"] >= 1 and c["slots_acked"] == 3
    assert rig.col.conflicts == 0
    s0 = slot_of(T0)
    for s in range(s0, s0 + 3):
        # the first slot starts at the first poll (T0), later ones are whole slots
        assert rig.col.slots[s] == (0, 1800, 0), (s, rig.col.slots.get(s))
    assert any(" ev=slot_closed " in ln for ln in lines)
    assert any(" ev=wisun_joined" in ln for ln in lines)
    # the PANA datagrams of the join never reach the ack decoder
    assert c["acks_rejected"] == 0 and a.log.faults.get("frame_malformed", 0) == 0
    assert a.wisun.counters["udp_pana"] >= 1


def test_faults_are_counted_and_never_raise():
    st = MemStorage()
    inv = Inverter(1800)
    rig = Rig(factory(st, config()), inv, T0)
    rig.run(600)
    for kind in ("timeout", "exception", "garbled"):
        inv.fail = kind
        rig.run(60)
    inv.fail = None
    rig.mod.up = False  # radio link down: sends fail, slots wait in the queue
    rig.run(1800)
    assert rig.agent.queue.pending() >= 1
    rig.mod.up = True
    rig.mod.drop_acks = True  # collector silent: ack timeouts, retries with new seqs
    rig.run(300)
    rig.mod.drop_acks = False
    rig.run(1800)
    a = rig.agent
    f = a.log.faults
    assert f["modbus_timeout"] >= 1 and f["modbus_exception"] >= 1 and f["modbus_garbled"] >= 1
    assert f["uplink_send_tx_failed"] >= 1
    assert a.log.counters["ack_timeouts"] >= 1
    assert a.queue.pending() == 0
    assert rig.col.conflicts == 0 and rig.col.dups >= 1
    # energy: every closed slot holds exactly what the counter moved (1800 W = 0.5 Wh/s)
    total = sum(v[1] for v in rig.col.slots.values())
    assert total == inv.wh_at(slot_of(rig.t) * 1800 - T0) - inv.wh_at(0) or total == 900 * len(rig.col.slots)


def test_restart_resumes_exactly_after_power_cuts():
    st = MemStorage()
    cfg = config()
    inv = Inverter(3600)
    rig = Rig(factory(st, cfg), inv, T0)
    cuts = 0
    seed = 12345
    for _ in range(12):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        st.cut_after(1 + seed % 90)
        rig.run(300 + seed % 2400, 1000, lambda: st.dead)  # the cut kills the device at once
        if st.dead:
            cuts += 1
            assert rig.agent.log.faults.get("power_cut", 0) >= 1
        st.power_cycle()
        rig.restart()
    rig.run(2 * 1800 + 60)
    assert cuts >= 3
    a = rig.agent
    assert a.queue.pending() == 0
    assert rig.col.conflicts == 0
    s0 = slot_of(T0)
    last = slot_of(rig.t) - 1
    got = sorted(rig.col.slots)
    assert got == list(range(s0, last + 1)), got
    total = sum(v[1] for v in rig.col.slots.values())
    assert total == inv.wh_at((last + 1) * 1800 - T0) - inv.wh_at(0), total


def test_backlog_drains_oldest_first_in_frames_within_the_payload_limit():
    st = MemStorage()
    lines = []
    prof = dict(PROFILE)
    prof["max_payload"] = 60
    cfg = config(uplink={"max_batch": 8, "ack_timeout_ms": 300, "retry_ms": 20000})
    draining = []

    def keep(line):  # frames of the drain only: a down link logs a fault per retry
        if draining and " ev=frame_sent " in line:
            lines.append(line)

    def make(t):
        return Agent(cfg, map_json(), prof, st, keep, t)

    rig = Rig(make, Inverter(3000), T0)
    rig.mod.up = False
    rig.run(4 * 1800 + 30, 2000)  # four slots pile up while the radio link is down
    assert rig.agent.queue.pending() == 4
    order = []
    recv = rig.col.receive

    def spy(payload):
        assert len(payload) <= 60
        order.append(len(payload))
        return recv(payload)

    rig.col.receive = spy
    draining.append(1)
    rig.mod.up = True
    rig.run(120, 2000)
    assert rig.agent.queue.pending() == 0
    sent = [ln for ln in lines if " ev=frame_sent " in ln]
    assert len(sent) == len(order)
    slots_per_frame = [int(ln.split(" slots=")[1].split()[0]) for ln in sent]
    assert max(slots_per_frame) >= 2 and sum(slots_per_frame) >= 4
    firsts = [int(ln.split(" first=")[1].split()[0]) for ln in sent]
    assert firsts == sorted(firsts)  # oldest first
    assert sorted(rig.col.slots) == list(range(slot_of(T0), slot_of(T0) + 4))


def test_session_loss_rejoins_and_forged_acks_remove_nothing():
    from edge.frame import encode_ack

    st = MemStorage()
    rig = Rig(factory(st, config()), Inverter(1000), T0)
    rig.run(1800 + 30, 2000)
    a = rig.agent
    assert a.log.counters["joins"] == 1 and a.queue.pending() == 0
    coord = b"FE80:0000:0000:0000:021D:1290:1234:5678"
    rig.mod.out.append(b"EVENT 27 " + coord + b"\r\n")  # the PANA session ended
    rig.run(60, 2000)
    assert a.log.counters["session_losses"] >= 1
    assert a.log.counters["joins"] >= 2  # rejoined by itself
    # a slot waits while the collector is silent; a forged ack for its frame is refused
    rig.mod.drop_acks = True
    rig.run(1800, 2000)
    assert a.queue.pending() == 1 and a.inflight_seq >= 0
    forged = encode_ack(b"not-the-device-key!!", a.device_id, a.enc.kid, seqs=[a.inflight_seq])
    rig.mod.out.append(rig.mod.erxudp(forged))
    rig.step(100)
    assert a.queue.pending() == 1
    assert a.log.faults.get("frame_bad_mac", 0) == 1 and a.log.counters["acks_rejected"] == 1
    rig.mod.drop_acks = False
    rig.run(120, 2000)
    assert a.queue.pending() == 0


def test_link_faults_wait_for_the_next_poll_and_a_clock_step_back_does_not_stall_polling():
    a = Agent(config(), map_json(), PROFILE, MemStorage(), None, T0)
    assert a.poll_due(T0)
    a.link_fault("link_errno_111", T0, 0)  # connect refused before any request
    assert not a.poll_due(T0) and not a.poll_due(T0 + 9) and a.poll_due(T0 + 10)
    assert a.log.faults["link_errno_111"] == 1
    a.start_poll(T0 + 10, 0, 0)
    a.link_fault("link_oserror", T0 + 10, 5)  # the socket died mid-request
    assert not a.modbus_busy() and not a.poll_due(T0 + 15) and a.poll_due(T0 + 20)
    a.next_poll = T0 + 3600
    assert a.poll_due(T0 + 30)  # the clock stepped back an hour: polling goes on


def _flags_of(rig, s):
    return rig.col.slots[s][2]


def test_polls_meet_every_slot_boundary_whatever_the_interval():
    from edge.flags import ESTIMATED

    cfg = config()
    cfg["device"]["poll_interval_s"] = 7  # does not divide 1800
    rig = Rig(factory(MemStorage(), cfg), Inverter(3600), T0)
    rig.run(3 * 1800 + 60, 2000)
    s0 = slot_of(T0)
    for s in range(s0, s0 + 3):
        assert rig.col.slots[s][:2] == (0, 1800), (s, rig.col.slots[s])
        assert not _flags_of(rig, s) & ESTIMATED, (s, rig.col.slots[s])


def test_a_failed_boundary_poll_is_retried_at_once():
    from edge.flags import ESTIMATED

    cfg = config()
    cfg["device"]["poll_interval_s"] = 30
    inv = Inverter(3600)
    rig = Rig(factory(MemStorage(), cfg), inv, T0)
    rig.run(1800)  # up to the boundary T0 + 1800
    inv.fail = "timeout"
    rig.run(1)  # the boundary poll gets no reply
    inv.fail = None
    rig.run(1800 + 60)
    s0 = slot_of(T0)
    # the retry one second later bounds the boundary to 20 kW x 1 s: inside the rule (the
    # next regular poll, 30 s later, would not be)
    assert rig.col.slots[s0][:2] == (0, 1800) and not _flags_of(rig, s0) & ESTIMATED
    assert rig.agent.log.counters.get("boundary_retries") == 1


def test_a_poll_just_before_each_boundary_brackets_it():
    # Issue 16: the boundary's bound is then the delta between two readings a round trip
    # apart, not the rating times the round trip.
    cfg = config()
    cfg["device"]["poll_interval_s"] = 30
    inv = Inverter(3600)
    times = []
    reply = inv.reply
    inv.reply = lambda req, t: times.append(t) or reply(req, t)
    rig = Rig(factory(MemStorage(), cfg), inv, T0)
    rig.run(3 * 1800 + 60)
    for b in (T0 + 1800, T0 + 3600, T0 + 5400):
        assert [x - b for x in times if b - 60 <= x <= b + 30] == [-60, -30, -1, 0, 30]


def test_the_pre_boundary_lead_follows_the_round_trips():
    cfg = config()
    cfg["device"]["poll_interval_s"] = 30
    inv = Inverter(3600)
    a = factory(MemStorage(), cfg)(T0)

    def poll(t, rtt_ms):
        rep = inv.reply(bytes(a.start_poll(t, 0, 0)), t)
        a.modbus_feed(rep, len(rep), rtt_ms, t + rtt_ms // 1000, rtt_ms % 1000)

    b = T0 + 1800
    poll(b - 60, 2500)  # a 2.5 s round trip: the poll before the boundary leaves 3 s ahead
    poll(b - 30, 2500)
    assert a.next_poll == b - 3
    poll(b - 3, 0)
    assert a.next_poll == b
    poll(b, 0)
    poll(b + 30, 0)  # round trips fell: the lead falls 1 s a poll
    poll(b + 60, 0)
    assert a._lead == 1
    poll(b + 90, 40000)  # a round trip longer than half the interval is not a lead
    assert a._lead == 1


def test_slots_closed_while_the_clock_is_unsynced_are_flagged():
    from edge.flags import BOUND_UNKNOWN, ESTIMATED, flag_bound

    cfg = config(clock={"source": "uplink"})  # and the rig's collector never gives the time
    rig = Rig(factory(MemStorage(), cfg), Inverter(3600), T0)
    rig.run(2 * 1800 + 60, 2000)
    s0 = slot_of(T0)
    for s in (s0, s0 + 1):
        fl = _flags_of(rig, s)
        assert fl & ESTIMATED and (fl >> 8) & 31 == BOUND_UNKNOWN and flag_bound(fl) == -1
    assert rig.agent.log.counters.get("clock_samples") is None


def test_an_rtu_reply_after_a_timeout_is_stamped_from_the_timed_out_poll():
    # RTU has no transaction id: the reply to a timed-out request may arrive during the
    # next one and be taken for its reply. The reading then keeps the timed-out poll's
    # stamp, so its uncertainty (stamp to reply) covers either sample moment.
    from edge.crc import crc16

    cfg = config()
    cfg["device"]["transport"] = "rtu"
    cfg["device"]["port"] = "/dev/null"
    a = Agent(cfg, map_json(), PROFILE, MemStorage(), None, T0)
    a.start_poll(T0, 0, 0)
    a.modbus_check(5000, T0 + 5)  # no reply: timeout
    inv = Inverter(3600)

    def rtu_reply(req, t):  # the inverter's TCP reply, reframed for RTU
        body = inv.reply(bytes((0, 1, 0, 0, 0, 6)) + bytes(req[:6]), t)[6:]
        c = crc16(body, 0, len(body))
        return body + bytes((c & 0xFF, c >> 8))

    rep = rtu_reply(a.start_poll(T0 + 10, 0, 5000), T0 + 10)
    a.modbus_feed(rep, len(rep), 5100, T0 + 12, 0)
    assert a.log.counters["polls_ok"] == 1
    assert a.integ.st[6] == T0  # the integrator's time base: the timed-out poll's stamp
    rep = rtu_reply(a.start_poll(T0 + 20, 0, 6000), T0 + 20)  # after a good reply: stamps move on
    a.modbus_feed(rep, len(rep), 6100, T0 + 21, 0)
    assert a.integ.st[6] == T0 + 20


def test_a_frame_goes_out_as_the_head_then_the_frame_buffer_itself():
    # A board's day-old heap rarely has a block the size of a frame: the agent writes the
    # SKSENDTO head and then a view of its frame buffer, one piece per call, never a joined
    # copy (a 48 KB board once failed that join for hours and sent nothing more).
    st = MemStorage()
    rig = Rig(factory(st, config()), Inverter(3600), T0)
    pieces = []
    write = rig.mod.write

    def record(data):
        pieces.append(data)
        write(data)

    rig.mod.write = record
    rig.run(2 * 1800 + 60, 2000)
    assert rig.agent.log.counters["frames_acked"] >= 1
    heads = [i for i, p in enumerate(pieces) if isinstance(p, bytes) and p.startswith(b"SKSENDTO")]
    assert heads
    for i in heads:
        n = int(pieces[i].split(b" ")[-2], 16)
        frame = pieces[i + 1]
        assert not isinstance(frame, (bytes, bytearray)) and len(frame) == n  # a view, no copy
    assert rig.agent.next_output() == b""
