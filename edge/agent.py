"""The agent core (エージェント): poll -> decode -> integrate -> close slot -> persist ->
queue -> frame -> Wi-SUN send -> ack, as one sans-I/O object.

The caller (firmware/agent_main.py) owns every clock, port and file. It passes two times:
`now_ms`, monotonic ticks wrapping at 2**30 (protocol timeouts: Modbus, Wi-SUN, acks), and
`t`/`tms`, the metering clock in edge seconds and ms (edge/timebase.py; slots, polls), which
it reads through `agent.clock.meter_into(raw_s, raw_ms, out)`: the board's clock corrected
by the collector's time in acks (edge/clock_sync.py). It hands over the bytes it read and
writes the bytes it is given. Files go through a storage
object (the contract of edge/persist.py). Nothing here raises on a device, link, radio or
collector fault: each is counted by its `kind` (edge/agent_log.py) and the agent carries on.

Uplink is stop-and-wait: one frame in flight holding the oldest unacknowledged slots (as
many as fit the module's payload, at most uplink.max_batch). Slots leave the queue only
when an authenticated ack covers the frame's seq; a lost frame or ack is sent again with a
new seq after a timeout and the collector deduplicates by (device, slot). Restart after a
kill: the queue, the seq counter and the integrator state (saved with each closed slot,
edge/slot_queue.py SlotCheckpoint) come back from storage; in-flight frames are forgotten,
their slots are still queued and go out again.
"""
from edge.agent_log import AgentLog
from edge.backoff import ticks_add, ticks_diff
from edge.compat import const
from edge.clock_sync import S_STEP, ClockSync
from edge.config import clock_sync_kwargs, wisun_driver_config
from edge.errors import EdgeError
from edge.flags import BOUND_SHIFT, BOUND_UNKNOWN, CLOCK_STEP, ESTIMATED, INVALID, bound_code
from edge.frame import (
    ST_CLOCK_UNSYNCED,
    ST_METER_ERROR,
    ST_QUEUE_OVERFLOW,
    ST_STORAGE_ERROR,
    ST_TIME_REQUEST,
    FrameEncoder,
    decode_ack,
)
from edge.integrator import REC_BOUND, REC_LEN, STATE_LEN, Integrator
from edge.mac import HmacSha256
from edge.modbus_pdu import REPLY
from edge.modbus_rtu import RtuClient, gap_ms_for_baud
from edge.persist import SeqCounter, StateStore
from edge.reading import new_reading
from edge.regmap import compile_map, decode
from edge.sealing import SealJob
from edge.slot_queue import SlotCheckpoint, SlotQueue
from edge.wisun import (
    EV_ERROR,
    EV_GATE,
    EV_JOIN_FAILED,
    EV_JOINED,
    EV_REOPEN,
    EV_SEND_FAILED,
    EV_SEND_OK,
    EV_UDP_RECEIVED,
    GATE_SESSION,
    ST_IDLE,
    STATE_NAMES,
    WisunDriver,
)

# Uplink phases.
UP_IDLE = const(0)
UP_SENDING = const(1)  # SKSENDTO written, waiting for the module's send result
UP_AWAIT_ACK = const(2)  # sent, waiting for the collector's ack

# self._cf: the clock's flagging state (edge/clock_sync.py), -1: none
_C_UNS_LO = const(0)  # slots touched while the clock was unsynced (flagged)
_C_UNS_HI = const(1)
_C_STP_LO = const(2)  # slots touched by clock steps (flagged clock_step)
_C_STP_HI = const(3)
_C_HOLD = const(4)  # after a step back: no poll before this edge second (the open slot)
_C_SEND_AFTER = const(5)  # after a refusal (slots in the collector's future): no frame before
_C_SAVED = const(6)  # the offset last persisted: seconds, ms
_GAP_FLAGS = const(3)  # edge.flags MISSING | PARTIAL: a slot with no data at all
_MAX_GAP_FILL = const(96)  # missing-slot records written per gap (two days)
_FRAME_FIXED = const(40)  # frame bytes besides records (header, seq, status, tag), generous
_REC_MAX = const(12)  # worst record size (docs/frames.md)
_BOUNDARY_RETRIES = const(3)  # immediate retries of a failed boundary poll
_SEAL_FRAME_MAX = const(400)  # a seal frame: header, a full-day seal (318 B), tag


_PROFILE_KEYS = ("id", "max_payload", "payload_modes", "ropt", "erxudp_fields", "event_side",
                 "sendto_side", "timing_ms")


def uplink_profile(cfg, profile):
    """The module profile without its documentation strings, and its payload limit capped at
    the largest frame this agent sends: the driver sizes its line buffer from max_payload
    (2x for hex lines), and the collector's acks are tiny. Saves RAM on a small board; a
    board's build() calls it before Agent() so the parsed JSON is gone by then (idempotent)."""
    cap = _FRAME_FIXED + _REC_MAX * cfg["uplink"]["max_batch"]
    if cfg.get("seal_key") is not None and cap < _SEAL_FRAME_MAX:
        cap = _SEAL_FRAME_MAX
    p = {}
    for k in _PROFILE_KEYS:
        if k in profile:
            p[k] = profile[k]
    mp = profile.get("max_payload")
    if isinstance(mp, int) and mp > cap:
        p["max_payload"] = cap
    return p


class Agent:
    """One metered device and its uplink. `cfg` comes from edge.config.validate(); `map_obj`
    is the parsed register map (or its RegMap), `profile` the parsed Wi-SUN module profile
    (or its uplink_profile()), `storage` the
    persistence contract of edge/persist.py, `sink(line)` receives log lines."""

    def __init__(self, cfg, map_obj, profile, storage, sink=None, t=0):
        self.log = AgentLog(sink)
        # The uplink first: its two buffers (the module's line buffer, the frame buffer) are
        # the agent's largest blocks, made while the heap still has room in one piece.
        up = cfg["uplink"]
        self.max_batch = up["max_batch"]
        self.ack_timeout_ms = up["ack_timeout_ms"]
        self.retry_ms = up["retry_ms"]
        self.wisun = WisunDriver(uplink_profile(cfg, profile), wisun_driver_config(cfg))
        self.fbuf = bytearray(self.wisun.max_payload)  # its length: the frame cap
        dev = cfg["device"]
        self.rmap = compile_map(map_obj)
        if dev["transport"] == "tcp":
            from edge.modbus_tcp import TcpClient  # only on TCP: an RTU board never loads it

            self.modbus = TcpClient(dev["timeout_ms"])
            self.req = bytearray(12)
        else:
            # rtu_gap_ms 0: 3.5 characters at the baud rate; more where bytes come in bursts
            self.modbus = RtuClient(dev["rtu_gap_ms"] or gap_ms_for_baud(dev["baud"]),
                                    dev["timeout_ms"])
            self.req = bytearray(8)
        self.unit = dev["unit"]
        self._late_ok = True  # False after an RTU timeout, until a reply is integrated
        self.interval = dev["poll_interval_s"]
        self.boundary_retry_s = dev["boundary_retry_s"]
        self.words = [0] * self.rmap.count
        self.reading = new_reading()
        self.rec = [0] * REC_LEN
        ig = cfg["integrator"]
        self.integ = Integrator(
            max_power_w=ig["max_power_w"], power_exp=ig["power_exp"],
            max_gap_s=ig["max_gap_s"], missing_ms=ig["missing_ms"],
            reg_margin_pct=ig["reg_margin_pct"], est_bp=ig["estimate_bp"],
            est_min_wh=ig["estimate_min_wh"], est_res_wh=ig["estimate_res_wh"])
        self.save_every = ig["save_every_s"]
        self._saved_at = t
        self.queue = SlotQueue(storage, cfg["queue_capacity"])
        self.checkpoint = SlotCheckpoint(storage, STATE_LEN)
        self.seq = SeqCounter(storage)
        st = [0] * STATE_LEN
        self.resumed = False
        if self.checkpoint.restore(self.queue, st):
            try:
                self.integ.restore(st)
                self.resumed = True
                self.log.count("restarts_resumed")
            except EdgeError as e:
                self.log.fault(e.kind, t, "saved integrator state refused")
        self.device_id = cfg["device_id"]
        self.mac = HmacSha256(cfg["key"])
        self.enc = FrameEncoder(self.device_id, self.mac, cfg["key_no"])
        # Daily seals (docs/seals.md): only with a seal key in the config. A restart seals
        # the current day's slots so far (a partial seal); full days seal at their close.
        self.sealjob = None
        self._seals_seen = 0
        if cfg.get("seal_key") is not None:
            self.sealjob = SealJob(storage, self.device_id, cfg["seal_key"], cfg["seal_key_no"])
            self.sealjob.request_partial()
        # The metering clock: its offset survives a power cut (the RTC keeps running), its
        # sync does not (unsynced until the next ack with time: docs/agent.md "Clock").
        self.clock = ClockSync(**clock_sync_kwargs(cfg))
        self._clk_store = StateStore(storage, "clk", 2)
        # one list, not eight attributes (the instance dict is the agent's RAM): see _C_*
        self._cf = [-1, -1, -1, -1, -1, -1, 0, 0]
        sv = [0, 0]
        if self._clk_store.load(sv):
            self.clock.set_offset(sv[0], sv[1])
            self._cf[_C_SAVED] = sv[0]
            self._cf[_C_SAVED + 1] = sv[1]
        self._note_clock(t)
        self.phase = UP_IDLE
        self.inflight_seq = -1
        self.inflight = []
        self.inflight_seal = False  # the frame in flight carries the seal outbox
        self._deadline = 0
        self._retry_at = -1  # tick before which no new frame goes out; -1: none
        self._wout = []
        self.next_poll = -1  # edge second of the next poll; -1: at once
        self._st = 0  # time stamp of the outstanding poll
        self._sms = 0
        self._stk = 0  # its tick, for the round trip when the caller gives no metering ms
        self._rb_slot = -1  # slot whose start boundary's poll was retried, and how often
        self._rb_n = 0
        self._lead = 1  # s before a boundary of the poll that brackets it (recent round trips)
        self.last_slot = self.queue.tail
        self._errs = 0  # ST_METER_ERROR | ST_STORAGE_ERROR since the last frame
        self.log.line(t, "start", "device", self.device_id, "map", self.rmap.name,
                      "resumed", 1 if self.resumed else 0, "queued", self.queue.pending(),
                      "open_slot", self.integ.open_slot(), "seq", self.seq.peek())

    # ---- Modbus polling ------------------------------------------------------------
    def poll_due(self, t):
        if t < self._cf[_C_HOLD]:
            return False  # stepped back before the open slot: wait until it is reached
        if t < self.next_poll - self.interval:
            self.next_poll = t  # the clock went back (a time sync): poll on, don't wait for it
        return not self.modbus.busy() and t >= self.next_poll

    def start_poll(self, t, tms, now_ms):
        """The request bytes to write for the next poll (a buffer reused every poll).

        The reading is stamped with this time (t, tms), the moment the request leaves: a
        device samples its registers when the request arrives, and the reply may sit in a
        buffer for a loop turn before anyone reads it (which, in accelerated simulated time,
        is many simulated seconds)."""
        if self._late_ok:
            self._st = t
            self._sms = tms
            self._stk = now_ms
        # else: an RTU poll timed out and its reply may still come, matched to this request
        # (RTU has no transaction id): keep the timed-out poll's stamp, so the reading's
        # uncertainty (stamp to reply) covers either sample moment.
        self.next_poll = self._next_poll_after(t)
        self.log.counters["polls"] += 1
        self.modbus.request(self.req, self.unit, self.rmap.function, self.rmap.start,
                            self.rmap.count, self.words, 0, now_ms)
        return self.req  # 12 (TCP) or 8 (RTU) bytes, exactly the request

    def _next_poll_after(self, t):
        """On the interval grid, and always at the next slot boundary (the reading that
        closes a slot is taken there, whatever the interval: docs/agent.md "Boundary
        polls"), and just before it: a poll `_lead` s ahead (the last round trip, rounded
        up) whose reply is back before the boundary, so that two readings bracket the
        boundary closely and the slot's bound is their small delta rather than the rating
        times the round trip. Never less than half an interval after this poll unless it
        is one of those two: a late poll followed at once by an on-time one would make
        the elapsed time between readings tiny for no gain."""
        iv = self.interval
        nxt = (t // iv + 1) * iv
        if nxt - t < (iv + 1) // 2:
            nxt += iv
        b = (t // 1800 + 1) * 1800
        if b < nxt:
            nxt = b
        pre = b - self._lead
        if 2 * self._lead < iv and t < pre < nxt:
            return pre
        return nxt

    def _retry_boundary(self, t):
        """A poll taken within boundary_retry_s after a slot boundary failed: poll again at
        once (the next regular poll may be a whole interval later), while the window lasts."""
        st = self._st
        if st % 1800 >= self.boundary_retry_s or t - st >= self.boundary_retry_s:
            return
        if st // 1800 != self._rb_slot:
            self._rb_slot = st // 1800
            self._rb_n = 0
        if self._rb_n < _BOUNDARY_RETRIES:  # a few, not a reconnect storm
            self._rb_n += 1
            self.next_poll = t
            self.log.count("boundary_retries")

    def modbus_busy(self):
        return self.modbus.busy()

    def modbus_feed(self, data, n, now_ms, t, tms=-1):
        """Bytes from the device link; a complete reply is decoded and integrated.

        tms: the metering clock's ms at t (give it where the metering clock does not run at
        the tick rate, e.g. accelerated simulated time); the reading's time uncertainty is
        the round trip from the request, on the metering clock when tms is given."""
        try:
            if self.modbus.feed(data, now_ms, n) == REPLY:
                decode(self.rmap, self.words, 0, self.reading)
                self.log.counters["polls_ok"] += 1
                self._late_ok = True
                if tms >= 0:
                    unc = (t - self._st) * 1000 + tms - self._sms
                else:
                    unc = ticks_diff(now_ms, self._stk)
                if unc < 0:
                    unc = 0
                # The next pre-boundary poll's lead: the round trips seen lately (a rise at
                # once, a fall by 1 s a poll), leaving out the round trips too long for a
                # pre-boundary poll to help (a late RTU reply after a timeout).
                x = unc // 1000 + 1
                if 2 * x < self.interval:
                    self._lead = x if x > self._lead - 1 else self._lead - 1
                b = self.clock.bound_ms(self._st)
                if b > 0:
                    unc += b  # the stamp is as good as the clock (unsynced: flagged anyway)
                if self.integ.feed(self.reading, self._st, self._sms, self.rec, unc):
                    self._closed(t)
                elif self.save_every and self._st - self._saved_at >= self.save_every:
                    self._save_state(t)
        except EdgeError as e:
            self._meter_fault(e.kind, t)

    def modbus_check(self, now_ms, t):
        """Call while a poll is outstanding: turns a passed deadline into a counted fault."""
        try:
            self.modbus.check(now_ms)
        except EdgeError as e:
            if e.kind == "modbus_timeout" and isinstance(self.modbus, RtuClient):
                self._late_ok = False
            self._meter_fault(e.kind, t)

    def link_fault(self, kind, t, now_ms):
        """The transport failed (socket refused, port gone): count it, drop the poll, and
        try again at the next poll time (not at once: no reconnect storm)."""
        if self.next_poll <= t:
            iv = self.interval
            self.next_poll = (t // iv + 1) * iv
        if self.modbus.busy():
            try:
                self.modbus.check(ticks_add(now_ms, 0x10000000))  # force the deadline
            except EdgeError:
                pass
        self._meter_fault(kind, t)

    def _save_state(self, t):
        """Between slot closes: bound how old the state a restart resumes from can be (a
        register delta from a base older than integrator.max_gap_s across a boundary, or
        older than a slot, cannot be attributed)."""
        self._saved_at = self._st
        try:
            self.checkpoint.save(self.integ.st)
        except (EdgeError, OSError) as e:
            self._storage_fault(e, t)

    def _meter_fault(self, kind, t):
        self._errs |= ST_METER_ERROR
        self.log.fault(kind, t)
        self._retry_boundary(t)

    # ---- slots ---------------------------------------------------------------------
    def advance(self, t):
        """Close the open slot when no sample can still belong to it (device silent)."""
        try:
            if self.integ.advance(t, self.rec):
                self._closed(t)
        except EdgeError as e:
            self.log.fault(e.kind, t)

    def _closed(self, t):
        rec = self.rec
        slot = rec[0]
        imp = rec[1]
        exp = rec[2]
        fl = rec[3]
        if self._cf[_C_STP_LO] <= slot <= self._cf[_C_STP_HI]:
            # a clock step moved its boundaries, or energy from the old clock fell into it
            fl |= CLOCK_STEP | ESTIMATED | BOUND_UNKNOWN << BOUND_SHIFT
        elif self._cf[_C_UNS_LO] <= slot <= self._cf[_C_UNS_HI]:
            # Its boundaries are where an unsynchronised clock put them: no bound.
            fl |= ESTIMATED | BOUND_UNKNOWN << BOUND_SHIFT
        elif fl & ESTIMATED:
            # The bound travels only with an estimate (an exact slot's is within the
            # configured share by definition): exact slots' frames keep their size.
            fl |= bound_code(rec[REC_BOUND]) << BOUND_SHIFT
        if imp < 0 or exp < 0:
            imp = imp if imp > 0 else 0
            exp = exp if exp > 0 else 0
            fl |= INVALID
        q = self.queue
        try:
            tail = q.tail
            if tail >= 0 and slot > tail + 1:
                first = tail + 1
                if slot - first > _MAX_GAP_FILL:
                    first = slot - _MAX_GAP_FILL
                for s in range(first, slot):
                    q.append(s, 0, 0, _GAP_FLAGS)
                self.log.count("slots_gap_filled", slot - first)
                self.log.line(t, "gap_filled", "first", first, "last", slot - 1)
            ok = self.checkpoint.commit(q, self.integ.st, slot, imp, exp, fl)
        except (EdgeError, OSError) as e:
            self._storage_fault(e, t)
            return
        self._saved_at = self._st
        if ok:
            self.last_slot = slot
            self.log.counters["slots_closed"] += 1
            self.log.line(t, "slot_closed", "slot", slot, "import_wh", imp, "export_wh", exp,
                          "flags", fl, "queued", q.tail - q.head + 1)
        else:
            self.log.counters["slots_stale"] += 1
            self.log.line(t, "slot_stale", "slot", slot, "tail", q.tail)

    def _storage_fault(self, e, t):
        self._errs |= ST_STORAGE_ERROR
        self.log.count("storage_errors")
        kind = getattr(e, "kind", None)
        self.log.fault(kind if isinstance(kind, str) else "storage_os", t)

    # ---- Wi-SUN and uplink -----------------------------------------------------------
    def wisun_feed(self, data, now_ms, t, tms=-1):
        """Bytes from the module. Read the metering clock (t, tms) after the bytes arrived:
        an ack's arrival time bounds the clock's round trip (no ms: the second's end)."""
        self.wisun.feed(data, now_ms)
        self._events(now_ms, t, tms)

    def radio_opened(self, now_ms, t):
        """The module's port was (re)opened: start the module's init now, not after backoff."""
        if self.wisun.state != ST_IDLE:
            self.wisun.reopen(now_ms)
        self.log.line(t, "radio_opened")

    def service(self, now_ms, t, tms=-1):
        """Timers: close a silent slot, ack timeout, next frame, a seal step. Returns the first
        piece of bytes for the module; next_output() gives the others, until b"".
        tms: the metering clock's ms (a frame's send time for the clock's round trip)."""
        self._note_clock(t)
        self.advance(t)
        out = self.wisun.poll(now_ms)
        if out:
            self._wout.append(out)
        self._events(now_ms, t, tms)
        if self.phase == UP_AWAIT_ACK and ticks_diff(now_ms, self._deadline) >= 0:
            self.log.count("ack_timeouts")
            self.log.fault("uplink_ack_timeout", t, "seq %d" % self.inflight_seq)
            self._uplink_idle(now_ms, self.retry_ms)
        self._uplink(now_ms, t, tms)
        if self.sealjob is not None:
            self._seal_work(t)  # last: the slots' uplink and the module's events never wait on it
        return self.next_output()

    def next_output(self):
        """The next piece of bytes for the module (b"" when none): service() returns the
        first, the caller writes each in turn until b"". Pieces are never joined: on a
        day-old board heap a block the size of a frame is often not there."""
        w = self._wout
        return w.pop(0) if w else b""

    def _queue_frame(self, ln, seq, now_ms):
        """SKSENDTO head, then the frame straight from fbuf (no copy). The driver commits
        to the send only once both pieces are queued; a failure takes them back."""
        head = self.wisun.sendto_head(ln)
        w = self._wout
        k = len(w)
        try:
            w.append(head)
            w.append(memoryview(self.fbuf)[:ln])
            self.wisun.send_commit(seq, now_ms)
        except BaseException:
            del w[k:]
            raise

    def _seal_work(self, t):
        """One bounded piece of the sealing job (one point operation of the signature, or a
        few ring reads): called once per service(), between polls."""
        job = self.sealjob
        try:
            job.work(self.queue, 1)
        except (EdgeError, OSError) as e:
            self._storage_fault(e, t)
            return
        except MemoryError:
            # a full heap (a small board's heap at midnight): the step committed nothing
            # (edge/sealing.py, edge/p256.py Signer); count it, the next call tries again
            self.log.fault("seal_no_memory", t)
            return
        if job.sealed != self._seals_seen:
            self._seals_seen = job.sealed
            self.log.count("seals_made")
            day, count = job.last_made
            ob = job.outbox()
            self.log.line(t, "seal_made", "day", day, "slots", count, "bytes", len(ob) if ob else 0)

    def _status_bits(self, t):
        s = 0
        if not self.clock.synced(t):
            s |= ST_CLOCK_UNSYNCED
        if self.clock.want_time(t):
            s |= ST_TIME_REQUEST
        if self.queue.overflow() is not None:
            s |= ST_QUEUE_OVERFLOW
        return s | self._errs

    def _uplink(self, now_ms, t, tms):
        if self.phase != UP_IDLE or not self.wisun.can_send() or t < self._cf[_C_SEND_AFTER]:
            return
        if self._retry_at >= 0 and ticks_diff(now_ms, self._retry_at) < 0:
            return
        self._retry_at = -1
        try:
            recs = self.queue.peek(self.max_batch)
            if recs:
                status = self._status_bits(t)
                seq = self.seq.next()
                n = self.enc.fits(len(self.fbuf), seq, recs, 0, status)
                ln = self.enc.encode_into(self.fbuf, seq, recs, 0, n, status)
            else:  # slots first (their 60-minute deadline), then the seal outbox
                sl = self.sealjob.outbox() if self.sealjob is not None else None
                if sl is None:
                    return
                status = self._status_bits(t)
                seq = self.seq.next()
                n = 0
                ln = self.enc.encode_seal_into(self.fbuf, seq, sl, status)
            self._queue_frame(ln, seq, now_ms)
        except (EdgeError, OSError, MemoryError) as e:
            # a MemoryError leaves the driver as it was (WisunDriver.send allocates first);
            # at worst a seq number is skipped, which the collector's window allows
            kind = getattr(e, "kind", None)
            if not isinstance(kind, str):
                kind = "uplink_no_memory" if isinstance(e, MemoryError) else "storage_os"
            self.log.fault(kind, t)
            self._retry_at = ticks_add(now_ms, self.retry_ms)
            return
        self._errs = 0
        if status & ST_TIME_REQUEST:
            self.clock.sent(seq, t, tms if tms >= 0 else 0)  # no ms: the second's start
        self.inflight_seq = seq
        self.inflight = [r[0] for r in recs[:n]]
        self.inflight_seal = n == 0
        self.phase = UP_SENDING
        self._deadline = ticks_add(now_ms, self.ack_timeout_ms)
        self.log.counters["frames_sent"] += 1
        if n:
            self.log.line(t, "frame_sent", "seq", seq, "slots", n, "first", recs[0][0], "bytes", ln)
        else:
            self.log.line(t, "seal_sent", "seq", seq, "bytes", ln)

    def _uplink_idle(self, now_ms, delay_ms):
        self.phase = UP_IDLE
        self.inflight_seq = -1
        self.inflight = []
        self.inflight_seal = False
        self._retry_at = ticks_add(now_ms, delay_ms) if delay_ms > 0 else -1

    def _key_lookup(self, device_id, kid):
        if device_id == self.device_id and kid == self.enc.kid:
            return self.mac
        return None

    def _on_udp(self, payload, now_ms, t, tms):
        try:
            ack = decode_ack(payload, self._key_lookup)
        except EdgeError as e:
            self.log.count("acks_rejected")
            self.log.fault(e.kind, t)
            return
        if self.phase != UP_IDLE and self.inflight_seq in ack.refused:
            # verified but refused (its slots end in the collector's future): our clock is
            # ahead. Take the time, keep the slots, send again later.
            self.log.count("frames_refused")
            self._clock_sample(ack.time, t, tms if tms >= 0 else 999)
            if self.inflight:  # not again before those slots have ended on the right clock
                self._cf[_C_SEND_AFTER] = (self.inflight[-1] + 1) * 1800
            self._uplink_idle(now_ms, self.ack_timeout_ms)
            return
        if self.phase == UP_IDLE or not ack.covers(self.inflight_seq):
            self.log.count("acks_stale")
            return
        if ack.time is not None:
            self._clock_sample(ack.time, t, tms if tms >= 0 else 999)
        try:
            if self.inflight_seal:
                self.sealjob.acked()
                n = 0
            else:
                n = self.queue.ack(self.inflight)
        except (EdgeError, OSError) as e:
            self._storage_fault(e, t)
            self._uplink_idle(now_ms, self.retry_ms)
            return
        self.log.counters["frames_acked"] += 1
        if self.inflight_seal:
            self.log.count("seals_acked")
            self.log.line(t, "seal_acked", "seq", self.inflight_seq)
        else:
            self.log.counters["slots_acked"] += n
            self.log.line(t, "frame_acked", "seq", self.inflight_seq, "slots", n,
                          "last", self.inflight[-1])
        self._uplink_idle(now_ms, 0)

    def _events(self, now_ms, t, tms=-1):
        w = self.wisun
        while True:
            e = w.next_event()
            if e is None:
                return
            k = e[0]
            if k == EV_UDP_RECEIVED:
                self._on_udp(e[1], now_ms, t, tms)
            elif k == EV_SEND_OK:
                if self.phase == UP_SENDING and e[1] == self.inflight_seq:
                    self.phase = UP_AWAIT_ACK
                    self._deadline = ticks_add(now_ms, self.ack_timeout_ms)
            elif k == EV_SEND_FAILED:
                if self.phase != UP_IDLE and e[1] == self.inflight_seq:
                    self.log.count("frames_send_failed")
                    self.log.fault("uplink_send_" + e[2], t)
                    self._uplink_idle(now_ms, self.retry_ms)
            elif k == EV_JOINED:
                self.log.count("joins")
                self.log.line(t, "wisun_joined")
            elif k == EV_JOIN_FAILED:
                self.log.fault("wisun_join_" + e[1], t)
            elif k == EV_GATE:
                if e[1] == GATE_SESSION and not e[2]:
                    self.log.count("session_losses")
                self.log.line(t, "wisun_gate", "gate", e[1], "open", 1 if e[2] else 0)
            elif k == EV_ERROR:
                self.log.fault("wisun_" + e[1], t)
            elif k == EV_REOPEN:
                self.log.line(t, "wisun_reopen", "reason", e[1])

    # ---- the metering clock -------------------------------------------------------------
    def _note_clock(self, t):
        """While the clock is unsynced, the slot at t (and a restored open slot) is flagged."""
        if self.clock.synced(t):
            return
        k = t // 1800
        o = self.integ.open_slot()
        lo = o if 0 <= o < k else k
        if self._cf[_C_UNS_HI] < 0 or self._cf[_C_UNS_HI] < lo - 1:
            self._cf[_C_UNS_LO] = lo  # a new run (the old one's slots are all closed by now)
        elif lo < self._cf[_C_UNS_LO]:
            self._cf[_C_UNS_LO] = lo
        if k > self._cf[_C_UNS_HI]:
            self._cf[_C_UNS_HI] = k

    def _clock_sample(self, tm, t, tms):
        c = self.clock
        seq = self.inflight_seq
        r = c.sample(seq, tm[0], tm[1], t, tms)
        self.log.count("clock_samples")
        if r == S_STEP:
            self._clock_stepped(t, tms)
        elif r:
            self.log.line(t, "clock_sync", "rtt_ms", c.last_rtt, "bound_ms", c.last_bound,
                          "slew_ms", c.pend)
        else:
            self.log.count("clock_samples_rejected")
            return
        if c.off_s != self._cf[_C_SAVED] or abs(c.off_ms - self._cf[_C_SAVED + 1]) >= 100:
            self._cf[_C_SAVED] = c.off_s
            self._cf[_C_SAVED + 1] = c.off_ms
            try:
                self._clk_store.save((c.off_s, c.off_ms))
            except (EdgeError, OSError) as e:
                self._storage_fault(e, t)

    def _clock_stepped(self, t, tms):
        """The clock jumped by jump_s s + jump_ms ms at metering time (t, tms). Every slot
        it touches is flagged clock_step; energy stays whole: a step forward is a gap the
        integrator spreads, a step back re-stamps the integrator's base and holds polls
        until the clock is back in the open slot (edge/integrator.py shift_base)."""
        c = self.clock
        js = c.jump_s
        jms = c.jump_ms
        self.log.count("clock_steps")
        self.log.line(t, "clock_step", "s", js, "ms", jms, "rtt_ms", c.last_rtt,
                      "bound_ms", c.last_bound)
        t2 = t + js + (tms + jms) // 1000
        a = t // 1800
        b = t2 // 1800
        o = self.integ.open_slot()
        lo = a if a < b else b
        hi = a if a > b else b
        if 0 <= o < lo:
            lo = o
        if o > hi:
            hi = o
        if self._cf[_C_STP_HI] < 0 or self._cf[_C_STP_HI] <= self.last_slot or lo < self._cf[_C_STP_LO]:
            self._cf[_C_STP_LO] = lo
        if hi > self._cf[_C_STP_HI]:
            self._cf[_C_STP_HI] = hi
        # the outstanding poll's stamp and the last save time move with the clock
        ms = self._sms + jms
        self._st += js + ms // 1000
        self._sms = ms % 1000
        self._saved_at += js
        if js < 0:
            self.integ.shift_base(js, jms)
            if o >= 0 and t2 < o * 1800:
                self._cf[_C_HOLD] = o * 1800
            self.next_poll = -1

    # ---- status ----------------------------------------------------------------------
    def status(self, t):
        """A snapshot for `smeter status` and the console (plain dict of ints and strings)."""
        q = self.queue
        ov = q.overflow()
        w = self.wisun
        return {
            "t": t,
            "device_id": self.device_id,
            "map": self.rmap.name,
            "counters": self.log.counters,
            "faults": self.log.faults,
            "queue_depth": q.pending(),
            "queue_head": q.head,
            "queue_tail": q.tail,
            "overflow_slots": ov[1] if ov else 0,
            "open_slot": self.integ.open_slot(),
            "last_slot": self.last_slot,
            "seq_next": self.seq.peek(),
            "uplink": ("idle", "sending", "await_ack")[self.phase],
            "inflight_seq": self.inflight_seq,
            "wisun_state": STATE_NAMES[w.state],
            "wisun_session": 1 if w.session_open else 0,
            "wisun_rate": 1 if w.rate_open else 0,
            "resumed": 1 if self.resumed else 0,
            "seal": self.sealjob.status() if self.sealjob is not None else None,
            "clock_synced": 1 if self.clock.synced(t) else 0,
            "clock_bound_ms": self.clock.bound_ms(t),
            "clock_steps": self.clock.steps,
        }
