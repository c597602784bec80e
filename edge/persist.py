"""Power-cut-safe persistence of small state, and the storage contract under it.

A storage object does the I/O for edge code; edge modules only compute bytes and offsets.
The contract (firmware/lib/flash_store.py implements it on files, edge/memstore.py in RAM):

    read(name, offset, n) -> bytes     at most n bytes; shorter (maybe b"") past the end
    write(name, offset, data)          not durable until sync(name); a write past the end
                                       first pads the file with zero bytes
    sync(name)                         everything written to `name` so far is durable
    load(name) -> bytes or None        a whole small file, None if it does not exist
    replace(name, data)                atomic and durable on return: after a power cut
                                       `name` holds either all the old or all the new bytes

Two small records live here: the frame sequence counter (SeqCounter), which must never
repeat after a power cut, and the integrator's state list of ints (StateStore). Both
are written with replace(), each carrying a CRC so a damaged file reads as absent rather
than as wrong numbers.
"""
import struct

from edge.compat import SMALL_INT_MAX, SMALL_INT_MIN, const
from edge.crc import crc16
from edge.errors import EdgeError

_SEQ_MAGIC = const(0x53)  # 'S'
_STATE_MAGIC = const(0x49)  # 'I'
_VERSION = const(1)
# The largest number of ints a StateStore keeps (file stays well under one flash page).
MAX_STATE_LEN = const(60)
# Default sequence numbers reserved per flash write (docs/store-and-forward.md).
SEQ_RESERVE = const(256)


class StoreError(EdgeError):
    """A persistence fault; `kind` says which (store_range, seq_exhausted, power_cut)."""

    kind = "store"

    def __init__(self, kind, message, detail=None):
        super().__init__(message, detail)
        self.kind = kind


def _put_crc(buf, end):
    c = crc16(buf, 0, end)
    buf[end] = c >> 8
    buf[end + 1] = c & 0xFF


def _crc_ok(buf, end):
    return len(buf) >= end + 2 and crc16(buf, 0, end) == (buf[end] << 8) | buf[end + 1]


class SeqCounter:
    """Frame sequence numbers that only grow, across any power cut, without a write per frame.

    The file holds a ceiling: every number below it may already have been used. Before
    handing out a number at or above the ceiling, the ceiling is raised by `reserve` and
    written (atomic replace). On boot numbers resume at the stored ceiling, so at most
    `reserve` numbers are skipped per boot and one flash write covers `reserve` frames.
    Numbers stay below 2**30 (a small int on 32-bit boards); they never wrap: past the
    end next() raises StoreError kind "seq_exhausted".
    """

    def __init__(self, storage, name="seq", reserve=SEQ_RESERVE):
        if reserve < 1 or reserve > 1 << 20:
            raise StoreError("store_range", "seq reserve out of range")
        self._st = storage
        self._name = name
        self._reserve = reserve
        self._buf = bytearray(8)
        ceiling = 0
        raw = storage.load(name)
        if raw is not None and len(raw) == 8 and raw[0] == _SEQ_MAGIC and raw[1] == _VERSION:
            if _crc_ok(raw, 6):
                ceiling = struct.unpack_from(">I", raw, 2)[0]
        # A missing or damaged file on a device that has sent frames before would restart
        # at 0; the collector's replay window rejects those frames loudly (never silently).
        self.recovered = raw is not None and ceiling == 0
        self._next = ceiling
        self._limit = ceiling

    def peek(self):
        """The number next() will return."""
        return self._next

    def next(self):
        n = self._next
        if n >= self._limit:
            if n > SMALL_INT_MAX:
                raise StoreError("seq_exhausted", "sequence counter exhausted")
            limit = n + self._reserve
            if limit > SMALL_INT_MAX + 1:
                limit = SMALL_INT_MAX + 1
            b = self._buf
            b[0] = _SEQ_MAGIC
            b[1] = _VERSION
            struct.pack_into(">I", b, 2, limit)
            _put_crc(b, 6)
            self._st.replace(self._name, b)
            self._limit = limit
        self._next = n + 1
        return n


class StateStore:
    """The integrator's state: a list of `length` small ints, saved and restored exactly.

    save() is one atomic replace, durable on return; load() gives back the last saved list
    or reports that none survives (first boot, or a file damaged outside the contract).
    """

    def __init__(self, storage, name, length):
        if length < 0 or length > MAX_STATE_LEN:
            raise StoreError("store_range", "state length out of range")
        self._st = storage
        self._name = name
        self._n = length
        self._buf = bytearray(3 + 4 * length + 2)

    def save(self, values):
        n = self._n
        if len(values) != n:
            raise StoreError("store_range", "state has the wrong length")
        b = self._buf
        b[0] = _STATE_MAGIC
        b[1] = _VERSION
        b[2] = n
        for i in range(n):
            v = values[i]
            if v < SMALL_INT_MIN or v > SMALL_INT_MAX:
                raise StoreError("store_range", "state value outside the 31-bit range", i)
            struct.pack_into(">i", b, 3 + 4 * i, v)
        _put_crc(b, 3 + 4 * n)
        self._st.replace(self._name, b)

    def load(self, into):
        """Fill `into` (a list of `length` ints) with the saved state; False if none."""
        n = self._n
        raw = self._st.load(self._name)
        if raw is None or len(raw) != 3 + 4 * n + 2:
            return False
        if raw[0] != _STATE_MAGIC or raw[1] != _VERSION or raw[2] != n:
            return False
        if not _crc_ok(raw, 3 + 4 * n):
            return False
        for i in range(n):
            into[i] = struct.unpack_from(">i", raw, 3 + 4 * i)[0]
        return True
