"""Anti-replay window per device (RFC 4303 section 3.4.3 style, sequence numbers never wrap).

State: `top`, the highest sequence number accepted so far, and a bitmap of which of the
`size` numbers top, top-1, ..., top-size+1 were accepted. For a verified frame with seq s:

    s > top                       FRESH   (window slides up; gaps are fine: the device
                                           skips numbers after a reboot, edge/persist.py)
    top-size < s <= top, bit off  FRESH   (late arrival, reordered in flight)
    top-size < s <= top, bit on   SEEN    (accepted before: retransmission or replay)
    s <= top-size                 BELOW   (too old to tell; refused)

The guard only decides; the collector (server.py) turns SEEN into a duplicate ack when the
bytes equal the stored frame and into a `replay` rejection otherwise. Only authenticated
frames reach the guard, so a forger cannot move the window.
"""
FRESH = "fresh"
SEEN = "seen"
BELOW = "below"

DEFAULT_SIZE = 1024


class ReplayWindow:
    __slots__ = ("size", "top", "bits", "mask")

    def __init__(self, size=DEFAULT_SIZE, top=-1, bits=0):
        if size < 1:
            raise ValueError("window size must be >= 1")
        self.size = size
        self.top = top  # -1: nothing accepted yet
        self.bits = bits  # bit i set <=> seq top-i accepted
        self.mask = (1 << size) - 1

    def check(self, seq):
        top = self.top
        if seq > top:
            return FRESH
        off = top - seq
        if off >= self.size:
            return BELOW
        return SEEN if (self.bits >> off) & 1 else FRESH

    def mark(self, seq):
        """Record an accepted seq; call only after check(seq) returned FRESH."""
        top = self.top
        if seq > top:
            shift = seq - top
            self.bits = ((self.bits << shift) | 1) & self.mask if shift < self.size else 1
            self.top = seq
        else:
            self.bits |= 1 << (top - seq)

    def to_bytes(self):
        return self.bits.to_bytes((self.size + 7) // 8, "big")

    @classmethod
    def from_row(cls, size, top, blob):
        """Restore a saved window; a smaller new size keeps the newest bits."""
        bits = int.from_bytes(blob, "big") & ((1 << size) - 1) if blob else 0
        return cls(size, top, bits)
