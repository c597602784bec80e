"""Store-and-forward queue of closed 30-minute slots, power-cut safe, sans-I/O.

A record is (slot, import_wh, export_wh, flags): the absolute slot number
(edge/timebase.py: edge seconds // 1800), the slot's energies and its 16-bit quality flags.
It enters with append() when the slot closes and leaves only when the collector
acknowledges it. The queue computes bytes and offsets; a storage object (contract in
edge/persist.py) does the I/O. Format, flash writes per slot and the overflow rule are in
docs/store-and-forward.md.

Why position = slot % capacity: slots only grow, so the slot number itself says where a
record lives and which lap of the ring it belongs to. There is no head pointer to keep on
flash; boot rebuilds everything from one scan, and a torn record fails its CRC.
"""
import struct

from edge.compat import SMALL_INT_MAX, const
from edge.crc import crc16
from edge.persist import StateStore, StoreError

DEFAULT_CAPACITY = const(336)  # 7 days of 30-minute slots
MAX_SLOT = const(0xFFFFFF)  # 3 bytes on flash: year 2977 in edge time
MAX_WH = const(0x3FFFFFFF)

_HDR = const(16)
_REC = const(16)
_ACK = const(8)
_HDR_MAGIC0 = const(0x53)  # 'S'
_HDR_MAGIC1 = const(0x51)  # 'Q'
_REC_MAGIC = const(0xA5)
_ACK_MAGIC = const(0xAC)
_OVF_MAGIC = const(0x4F)  # 'O'
_VERSION = const(1)
_OVF_LEN = const(34)

# Per-position states in RAM (one byte per ring position).
_EMPTY = const(0)
_LIVE = const(1)  # stored, not acknowledged
_ACKED = const(2)
_ACKING = const(3)  # ack entry written, not yet synced


def _check(buf, end):
    return crc16(buf, 0, end) == (buf[end] << 8) | buf[end + 1]


def _seal(buf, end):
    c = crc16(buf, 0, end)
    buf[end] = c >> 8
    buf[end + 1] = c & 0xFF


def _slot3(buf, i):
    return (buf[i] << 16) | (buf[i + 1] << 8) | buf[i + 2]


def _put_slot3(buf, i, slot):
    buf[i] = (slot >> 16) & 0xFF
    buf[i + 1] = (slot >> 8) & 0xFF
    buf[i + 2] = slot & 0xFF


def _sat_add(a, b):
    s = a + b
    return s if s <= SMALL_INT_MAX else SMALL_INT_MAX


class SlotQueue:
    """Persistent FIFO of closed slots with out-of-order, idempotent acknowledgements.

    Attributes kept for the agent's counters: stale_appends (append of a slot not newer
    than the newest stored or dropped: a re-close after restart, or a clock that went
    backwards),
    unknown_acks (ack of a slot that is not pending: duplicate, late or bogus),
    corrupt_records (pending records that failed their CRC on read), migrated (the ring
    was rewritten for a new capacity at boot), header_repaired (a damaged ring header was
    rewritten at boot, records kept).
    """

    def __init__(self, storage, capacity=DEFAULT_CAPACITY, name="q"):
        if capacity < 2 or capacity > 0x10000:
            raise StoreError("store_range", "queue capacity out of range")
        self._st = storage
        self._dat = name + ".dat"
        self._ovf = name + ".ovf"
        self._rec = bytearray(_REC)
        self._ackb = bytearray(_ACK)
        self._ovfb = bytearray(_OVF_LEN)
        self.stale_appends = 0
        self.unknown_acks = 0
        self.corrupt_records = 0
        self.migrated = False
        self._load_overflow()
        self.header_repaired = False
        stored = self._stored_capacity()
        if stored == 0:
            if len(self._st.read(self._dat, _HDR, 1)):
                # Records follow a damaged header (the header is only ever written by an
                # atomic replace, so this is flash damage): rewrite the header in place and
                # keep every record that is valid for this capacity, rather than wipe them.
                self._st.write(self._dat, 0, self._header(capacity))
                self._st.sync(self._dat)
                self.header_repaired = True
            else:
                self._format(capacity)
            stored = capacity
        self.capacity = stored
        self._state = bytearray(stored)
        self._scan()
        if stored != capacity:
            self._migrate(capacity)

    # ---- boot --------------------------------------------------------------------

    def _stored_capacity(self):
        h = self._st.read(self._dat, 0, _HDR)
        if len(h) != _HDR or h[0] != _HDR_MAGIC0 or h[1] != _HDR_MAGIC1 or h[2] != _VERSION:
            return 0
        if not _check(h, _HDR - 2):
            return 0
        cap = struct.unpack_from(">I", h, 4)[0]
        return cap if 2 <= cap <= 0x10000 else 0

    def _header(self, capacity):
        h = bytearray(_HDR)
        h[0] = _HDR_MAGIC0
        h[1] = _HDR_MAGIC1
        h[2] = _VERSION
        struct.pack_into(">I", h, 4, capacity)
        _seal(h, _HDR - 2)
        return h

    def _format(self, capacity):
        # replace() truncates: no record of an earlier ring can survive a format.
        self._st.replace(self._dat, self._header(capacity))

    def _rec_off(self, p):
        return _HDR + p * _REC

    def _ack_off(self, p):
        return _HDR + self.capacity * _REC + p * _ACK

    def _read_slot(self, p):
        """Slot of the valid record at position p, or -1."""
        b = self._st.read(self._dat, self._rec_off(p), _REC)
        if len(b) != _REC or b[0] != _REC_MAGIC or not _check(b, _REC - 2):
            return -1
        s = _slot3(b, 1)
        return s if s % self.capacity == p else -1

    def _acked_on_flash(self, p, slot):
        b = self._st.read(self._dat, self._ack_off(p), _ACK)
        if len(b) != _ACK or b[0] != _ACK_MAGIC or not _check(b, _ACK - 2):
            return False
        return _slot3(b, 1) == slot

    def _scan(self):
        cap = self.capacity
        tail = -1
        for p in range(cap):
            s = self._read_slot(p)
            if s > tail:
                tail = s
        self.tail = tail
        lo = self._floor()
        st = self._state
        for p in range(cap):
            st[p] = _EMPTY
            s = self._read_slot(p) if tail >= 0 else -1
            if s >= lo and s <= tail:
                st[p] = _ACKED if self._acked_on_flash(p, s) else _LIVE
        self.head = lo
        self._advance()

    def _floor(self):
        """Lowest slot that may still be pending: inside the ring and not yet dropped."""
        lo = self.tail - self.capacity + 1
        if self._through + 1 > lo:
            lo = self._through + 1
        return lo if lo > 0 else 0

    def _advance(self):
        st = self._state
        cap = self.capacity
        s = self.head
        while s <= self.tail and st[s % cap] != _LIVE:
            s += 1
        self.head = s

    # ---- overflow summary ------------------------------------------------------------

    def _load_overflow(self):
        self._epoch = 0
        self._ocount = 0
        self._ofirst = -1
        self._olast = -1
        self._through = -1
        self._oimp = 0
        self._oexp = 0
        self._osat = 0
        b = self._st.load(self._ovf)
        if b is None or len(b) != _OVF_LEN or b[0] != _OVF_MAGIC or b[1] != _VERSION:
            return
        if not _check(b, _OVF_LEN - 2):
            return
        (
            self._epoch,
            self._ocount,
            self._ofirst,
            self._olast,
            self._through,
            self._oimp,
            self._oexp,
        ) = struct.unpack_from(">iiiiiii", b, 4)
        self._osat = b[2]

    def _save_overflow(self, epoch, count, first, last, through, imp, exp, sat):
        b = self._ovfb
        b[0] = _OVF_MAGIC
        b[1] = _VERSION
        b[2] = sat
        b[3] = 0
        struct.pack_into(">iiiiiii", b, 4, epoch, count, first, last, through, imp, exp)
        _seal(b, _OVF_LEN - 2)
        self._st.replace(self._ovf, b)
        # RAM follows flash only once the replace is durable.
        self._epoch = epoch
        self._ocount = count
        self._ofirst = first
        self._olast = last
        self._through = through
        self._oimp = imp
        self._oexp = exp
        self._osat = sat

    def overflow(self):
        """Slots dropped unacknowledged since the last ack_overflow(), or None.

        (epoch, count, first_slot, last_slot, import_wh_sum, export_wh_sum, saturated):
        cumulative within an epoch, so the collector keeps the latest report per
        (device, epoch). Sums saturate at 2**30 - 1 with saturated = 1.
        """
        if self._ocount == 0:
            return None
        return (
            self._epoch,
            self._ocount,
            self._ofirst,
            self._olast,
            self._oimp,
            self._oexp,
            self._osat,
        )

    def ack_overflow(self, epoch, count):
        """The collector has stored report (epoch, count): start a new epoch. False if stale."""
        if epoch != self._epoch or count != self._ocount or count == 0:
            return False
        e = self._epoch + 1 if self._epoch < SMALL_INT_MAX else 0
        self._save_overflow(e, 0, -1, -1, self._through, 0, 0, 0)
        return True

    def _drop(self, first, last):
        """Count pending slots first..last (leaving the ring) into the overflow summary."""
        st = self._state
        cap = self.capacity
        n = self._ocount
        f = self._ofirst
        lst = self._olast
        imp = self._oimp
        exp = self._oexp
        sat = self._osat
        added = 0
        s = first
        while s <= last:
            p = s % cap
            if st[p] == _LIVE:
                r = self.record_at(p)
                if r is not None:
                    imp = _sat_add(imp, r[1])
                    exp = _sat_add(exp, r[2])
                    if imp == SMALL_INT_MAX or exp == SMALL_INT_MAX:
                        sat = 1
                if f < 0:
                    f = s
                lst = s
                added += 1
            s += 1
        if added:
            self._save_overflow(self._epoch, n + added, f, lst, last, imp, exp, sat)

    # ---- records -----------------------------------------------------------------------

    def record_at(self, p):
        """(slot, import_wh, export_wh, flags) stored at ring position p, or None if invalid."""
        b = self._st.read(self._dat, self._rec_off(p), _REC)
        if len(b) != _REC or b[0] != _REC_MAGIC or not _check(b, _REC - 2):
            return None
        imp, exp, flags = struct.unpack_from(">IIH", b, 4)
        return (_slot3(b, 1), imp, exp, flags)

    def stored(self, slot):
        """The record of `slot` if the ring still holds it, acknowledged or not, else None:
        a record stays at slot % capacity until a later lap overwrites it (the daily seal
        reads a closed day back from here, edge/sealing.py)."""
        if slot < 0 or slot > self.tail or slot <= self.tail - self.capacity:
            return None
        r = self.record_at(slot % self.capacity)
        if r is None or r[0] != slot:
            return None
        return r

    def append(self, slot, import_wh, export_wh, flags):
        """Store a closed slot durably. False (and counted) if not newer than the newest."""
        for v in (slot, import_wh, export_wh, flags):
            if not isinstance(v, int):
                raise StoreError("store_range", "record fields must be ints", slot)
        if slot < 0 or slot > MAX_SLOT:
            raise StoreError("store_range", "slot number out of range", slot)
        if import_wh < 0 or import_wh > MAX_WH or export_wh < 0 or export_wh > MAX_WH:
            raise StoreError("store_range", "energy out of range", slot)
        if flags < 0 or flags > 0xFFFF:
            raise StoreError("store_range", "flags are not 16-bit", slot)
        if slot <= self.tail or slot <= self._through:
            self.stale_appends += 1
            return False
        cap = self.capacity
        st = self._state
        new_lo = slot - cap + 1
        tail = self.tail
        if tail >= 0:
            end = new_lo - 1 if new_lo - 1 < tail else tail
            if self.head <= end:
                self._drop(self.head, end)
            if slot - tail >= cap:
                for p in range(cap):
                    st[p] = _EMPTY
            else:
                for s in range(tail + 1, slot):
                    st[s % cap] = _EMPTY
        p = slot % cap
        st[p] = _EMPTY
        b = self._rec
        b[0] = _REC_MAGIC
        _put_slot3(b, 1, slot)
        struct.pack_into(">IIH", b, 4, import_wh, export_wh, flags)
        _seal(b, _REC - 2)
        self._st.write(self._dat, self._rec_off(p), b)
        self._st.sync(self._dat)
        st[p] = _LIVE
        self.tail = slot
        if self.head < new_lo:
            self.head = new_lo
        if self.head > slot:
            self.head = slot
        self._advance()
        return True

    def dropped_through(self):
        """Every slot up to here has left the ring (acknowledged or counted as overflow)."""
        return self._through

    def pending(self):
        """Number of stored, unacknowledged slots."""
        st = self._state
        n = 0
        for i in range(self.capacity):
            if st[i] == _LIVE:
                n += 1
        return n

    def peek(self, n):
        """Up to n oldest unacknowledged records, oldest first, each a tuple as record_at()."""
        out = []
        st = self._state
        cap = self.capacity
        s = self.head
        while s <= self.tail and len(out) < n:
            p = s % cap
            if st[p] == _LIVE:
                r = self.record_at(p)
                if r is None or r[0] != s:
                    st[p] = _EMPTY
                    self.corrupt_records += 1
                else:
                    out.append(r)
            s += 1
        self._advance()
        return out

    def ack(self, slots):
        """The collector holds these slots: never deliver them again. Returns how many were new.

        Order and duplicates do not matter; unknown slots are counted in unknown_acks.
        Durable on return (one small write per slot, one sync).
        """
        st = self._state
        cap = self.capacity
        b = self._ackb
        done = []  # positions written in this batch, marked acked only after the sync
        try:
            for s in slots:
                if not isinstance(s, int) or s < self.head or s > self.tail or st[s % cap] != _LIVE:
                    self.unknown_acks += 1
                    continue
                p = s % cap
                b[0] = _ACK_MAGIC
                _put_slot3(b, 1, s)
                b[4] = 0
                b[5] = 0
                _seal(b, _ACK - 2)
                self._st.write(self._dat, self._ack_off(p), b)
                st[p] = _ACKING
                done.append(p)
            if done:
                self._st.sync(self._dat)
        except BaseException:
            for p in done:
                st[p] = _LIVE
            raise
        for p in done:
            st[p] = _ACKED
        if done:
            self._advance()
        return len(done)

    def ack_through(self, slot):
        """Acknowledge every pending slot up to and including `slot`."""
        todo = []
        s = self.head
        while s <= slot and s <= self.tail:
            if self._state[s % self.capacity] == _LIVE:
                todo.append(s)
            s += 1
        return self.ack(todo)

    # ---- capacity change -----------------------------------------------------------------

    def _migrate(self, capacity):
        """Rewrite the ring for a new capacity; pending slots that no longer fit are dropped
        into the overflow summary first, so a cut between the two replaces loses nothing."""
        old = self.capacity
        lo_new = self.tail - capacity + 1
        if self.head <= lo_new - 1:
            self._drop(self.head, lo_new - 1)
        buf = bytearray(_HDR + capacity * (_REC + _ACK))
        buf[0:_HDR] = self._header(capacity)
        ack0 = _HDR + capacity * _REC
        st = self._state
        new_state = bytearray(capacity)
        lo = self._floor()
        if lo < lo_new:
            lo = lo_new
        s = lo if lo > 0 else 0
        while s <= self.tail:
            p = s % old
            if st[p] == _LIVE or st[p] == _ACKED:
                raw = self._st.read(self._dat, self._rec_off(p), _REC)
                q = s % capacity
                buf[_HDR + q * _REC : _HDR + (q + 1) * _REC] = raw
                if st[p] == _ACKED:
                    b = self._ackb
                    b[0] = _ACK_MAGIC
                    _put_slot3(b, 1, s)
                    b[4] = 0
                    b[5] = 0
                    _seal(b, _ACK - 2)
                    buf[ack0 + q * _ACK : ack0 + (q + 1) * _ACK] = b
                new_state[q] = st[p]
            s += 1
        self._st.replace(self._dat, buf)
        self.capacity = capacity
        self._state = new_state
        self.head = self._floor()
        self._advance()
        self.migrated = True


class SlotCheckpoint:
    """The integrator's state and the slot record it just closed, in one atomic save.

    Closing a slot touches two things: the integrator state (remainders, last register
    values) and the queue. Saved one after the other, a cut between them either loses the
    slot (state first) or leaks the energy between the close and the restart (queue first,
    then the re-closed value is refused as stale). So commit() first saves state plus record
    together (one replace: the one-entry journal), then appends; restore() re-appends the
    journalled record if the queue lacks it. The state is an opaque list of `length` small
    ints (edge/integrator.py owns its meaning).
    """

    def __init__(self, storage, length, name="integ"):
        self._n = length
        self._store = StateStore(storage, name, length + 4)
        self._buf = [0] * (length + 4)
        self._buf[length] = -1  # no record yet

    def commit(self, queue, state, slot, import_wh, export_wh, flags):
        """Save `state` (after closing `slot`) with the record, then queue it. Returns
        queue.append()'s answer. Out-of-range records raise before anything is written."""
        if slot < 0 or slot > MAX_SLOT or import_wh < 0 or import_wh > MAX_WH:
            raise StoreError("store_range", "record out of range", slot)
        if export_wh < 0 or export_wh > MAX_WH or flags < 0 or flags > 0xFFFF:
            raise StoreError("store_range", "record out of range", slot)
        self._fill(state)
        b = self._buf
        n = self._n
        b[n] = slot
        b[n + 1] = import_wh
        b[n + 2] = export_wh
        b[n + 3] = flags
        self._store.save(b)
        return queue.append(slot, import_wh, export_wh, flags)

    def save(self, state):
        """Save the state between slot closes; the journalled record stays."""
        self._fill(state)
        self._store.save(self._buf)

    def _fill(self, state):
        n = self._n
        if len(state) != n:
            raise StoreError("store_range", "state has the wrong length")
        b = self._buf
        for i in range(n):
            b[i] = state[i]

    def restore(self, queue, into):
        """Fill `into` with the saved state and finish an interrupted append. False if none."""
        b = self._buf
        if not self._store.load(b):
            return False
        n = self._n
        for i in range(n):
            into[i] = b[i]
        s = b[n]
        if s > queue.tail and s > queue.dropped_through():
            queue.append(s, b[n + 1], b[n + 2], b[n + 3])
        return True

    def last_slot(self):
        """Slot number of the journalled record (-1 if none)."""
        return self._buf[self._n]
