"""The agent's sealing job: which day to seal next, signing it in steps between polls, and
keeping the finished seal until the collector acknowledges it, across power cuts.

The values come from the store-and-forward ring (edge/slot_queue.py), which keeps every
record at position slot % capacity until a later lap overwrites it, acknowledged or not:
so a day can be sealed from exactly what was queued for the uplink, without a second copy.
A day is sealed once its last slot has closed (or a later slot has), while all of its
positions are still in the ring.

State file (default name "seal", one atomic replace, CRC):
    magic 'K', version, last sealed day (i32, -1 none), partial day (i32), partial count (u8),
    outbox length (u16), outbox bytes (the finished seal waiting for its ack)
A seal and the day it closes are written together, so after a power cut a day is either
sealed with its seal in the outbox, or not sealed and signed again from the start: RFC 6979
makes that signature byte-identical, so a seal is never lost and never doubled.
"""
import struct

from edge import seal
from edge.compat import const
from edge.crc import crc16
from edge.errors import EdgeError

_MAGIC = const(0x4B)  # 'K'
_VERSION = const(1)
_HDR = const(13)
_PER_DAY = const(48)
_COLLECT_PER_OP = const(6)  # ring records read per op while collecting a day's entries

# Job phases.
IDLE = const(0)
COLLECT = const(1)
SIGN = const(2)


class SealJob:
    """One device's seals. `work(queue, ops)` does a bounded amount (call it between polls);
    `outbox()` is the finished seal to send, `acked()` drops it once the collector has it."""

    def __init__(self, storage, device_id, priv, key_no, name="seal"):
        self._st = storage
        self._name = name
        self.device_id = device_id
        self.priv = priv
        self.key_no = key_no
        self.last_day = -1
        self.partial_day = -1
        self.partial_count = 0
        self._outbox = None
        self.phase = IDLE
        self._want_partial = False
        self._checked_tail = -2  # queue tail and request at the last selection: skip repeats
        self._checked_want = False
        self._day = 0
        self._count = 0
        self._idx = 0
        self._ent = None
        self._present = 0
        self._sealer = None
        self.sealed = 0  # seals finished since boot (status, tests)
        self.last_made = None  # (day number, slot count) of the last seal finished
        self.skipped_days = 0  # days out of the ring before their turn (values or not)
        self._load()

    # ---- persistence -------------------------------------------------------------------
    def _load(self):
        raw = self._st.load(self._name)
        if raw is None or len(raw) < _HDR + 2 or raw[0] != _MAGIC or raw[1] != _VERSION:
            return
        n = struct.unpack_from(">H", raw, 11)[0]
        if len(raw) != _HDR + n + 2:
            return
        c = crc16(raw, 0, _HDR + n)
        if c != (raw[_HDR + n] << 8) | raw[_HDR + n + 1]:
            return
        self.last_day, self.partial_day = struct.unpack_from(">ii", raw, 2)
        self.partial_count = raw[10]
        self._outbox = bytes(raw[_HDR:_HDR + n]) if n else None

    def _save(self):
        self._st.replace(self._name, self._encode(self.last_day, self.partial_day,
                                                  self.partial_count, self._outbox))

    def _encode(self, last_day, partial_day, partial_count, outbox):
        ob = outbox or b""
        n = len(ob)
        b = bytearray(_HDR + n + 2)
        b[0] = _MAGIC
        b[1] = _VERSION
        struct.pack_into(">iiBH", b, 2, last_day, partial_day, partial_count, n)
        b[_HDR:_HDR + n] = ob
        c = crc16(b, 0, _HDR + n)
        b[_HDR + n] = c >> 8
        b[_HDR + n + 1] = c & 0xFF
        return b

    # ---- the uplink's side -------------------------------------------------------------
    def outbox(self):
        return self._outbox

    def acked(self):
        """The collector acknowledged the outbox seal: forget it (durably)."""
        if self._outbox is not None:
            self._outbox = None
            self._save()

    def request_partial(self):
        """Seal the current day's closed slots so far (at restart, or on request)."""
        self._want_partial = True
        self._checked_tail = -2

    def busy(self):
        return self.phase != IDLE

    # ---- the work ----------------------------------------------------------------------
    def work(self, queue, ops=1):
        """Do up to `ops` ops (one op: a point operation of the signature, or a few ring
        reads). Returns True if it did anything. Raises EdgeError/OSError from storage only
        when persisting a finished seal; the caller counts it and calls again later."""
        if self.phase == IDLE:
            if self._outbox is not None:
                return False
            # nothing changed since the last look: return without work or allocation
            if queue.tail == self._checked_tail and self._want_partial == self._checked_want:
                return False
            picked = self._select(queue)  # a MemoryError here: nothing noted, look again
            self._checked_tail = queue.tail
            self._checked_want = self._want_partial
            return picked
        if self.phase == COLLECT:
            self._collect(queue)
            return True
        if self._sealer.step(ops):
            self._finish()
        return True

    def _select(self, queue):
        """Pick the next job: the oldest complete unsealed day still whole in the ring, or a
        requested partial seal of the current day. False if there is nothing to do."""
        tail = queue.tail
        if tail < 0:
            self._want_partial = False  # nothing closed yet: nothing to seal so far
            return False
        cur = tail // _PER_DAY
        last_full = cur if tail % _PER_DAY == _PER_DAY - 1 else cur - 1
        lowest = tail - queue.capacity + 1  # oldest slot the ring can still hold
        first_day = (lowest + _PER_DAY - 1) // _PER_DAY if lowest > 0 else 0
        d = self.last_day + 1
        if d < first_day:
            if self.last_day >= 0:
                self.skipped_days += first_day - d
            d = first_day
        if d <= last_full:
            self._start(d, _PER_DAY)
            return True
        if self._want_partial:
            k = tail % _PER_DAY + 1
            if cur > self.last_day and (cur != self.partial_day or k != self.partial_count):
                self._start(cur, k)
                self._want_partial = False  # once started: a failed start keeps the request
                return True
            self._want_partial = False
        return False

    def _start(self, day, count):
        ent = bytearray(count * seal.ENTRY_LEN)  # first: a MemoryError changes nothing
        self._day = day
        self._count = count
        self._idx = 0
        self._ent = ent
        self._present = 0
        self.phase = COLLECT

    def _collect(self, queue):
        base = self._day * _PER_DAY
        end = self._idx + _COLLECT_PER_OP
        if end > self._count:
            end = self._count
        ent = self._ent
        while self._idx < end:
            i = self._idx
            r = queue.stored(base + i)
            if r is None:
                seal.absent_into(ent, i * seal.ENTRY_LEN, i + 1)
            else:
                seal.entry_into(ent, i * seal.ENTRY_LEN, i + 1, r[1], r[2], r[3])
                self._present += 1
            self._idx = i + 1
        if self._idx < self._count:
            return
        if not self._present:  # nothing of this day was ever queued: no seal, move on
            self._ent = None
            self.phase = IDLE
            if self._count == _PER_DAY:
                self.last_day = self._day
                self._checked_tail = -2
            return
        try:
            self._sealer = seal.Sealer(self.device_id, self.priv, self.key_no,
                                       seal.day_code(self._day), 1, self._count, self._ent)
        except EdgeError:
            self._ent = None
            self.phase = IDLE
            raise
        self._ent = None
        self.phase = SIGN

    def _finish(self):
        # Everything that allocates comes before any state changes: a MemoryError (a full
        # board heap) leaves the finished signer in place and the next call tries again.
        out = self._sealer.seal()
        last, pday, pcount = self.last_day, self.partial_day, self.partial_count
        if self._count == _PER_DAY:
            last = self._day
        else:
            pday, pcount = self._day, self._count
        b = self._encode(last, pday, pcount, out)
        made = (self._day, self._count)
        self._sealer = None
        self.phase = IDLE
        self._checked_tail = -2
        # not durable (a storage error): forget it; the day is signed again (RFC 6979: the
        # same bytes), so a seal is never lost and never doubled
        self._st.replace(self._name, b)
        self.last_day, self.partial_day, self.partial_count = last, pday, pcount
        self._outbox = out
        self.sealed += 1
        self.last_made = made

    def status(self):
        return {"seal_last_day": self.last_day, "seal_outbox": 0 if self._outbox is None else 1,
                "seal_phase": ("idle", "collect", "sign")[self.phase], "seals_made": self.sealed,
                "seal_days_skipped": self.skipped_days}
