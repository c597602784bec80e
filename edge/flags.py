"""Quality flags (品質フラグ) of a closed 30-minute slot: one small int of bits.

A slot is never silently wrong: anything that makes its value doubtful sets a bit.
  partial     the slot was not fully covered by integrated intervals (boot or gap
              mid-slot, data ending mid-slot, a sample interval that was skipped), or
              a register used in it was not read at its end boundary
  missing     the uncovered time exceeds the integrator's `missing_ms` threshold, or
              the slot had no usable sample interval at all (欠測)
  reset       an energy register went backwards or jumped implausibly (meter reset or
              replacement); that delta was not counted and the register was re-based
  clock_step  the clock went backwards (or the agent reported a step); the slot's time
              attribution is doubtful and its slot number may repeat
  mismatch    register energy and power integral disagree beyond the tolerance
  invalid     a reading was out of range (power over max, unsupported exponent,
              register half outside 0..65535) and was ignored
  estimated   (推定) the slot holds a time-proportional share of a register delta whose
              placement is unknown (a long gap, a restart, a register not read at the
              boundary): the energy total is exact, its split across slots is estimated
Bit values are part of the wire format (docs/integrator.md); never renumber them.

Bits 8..12 carry the slot's attribution bound (docs/integrator.md "Attribution bound") as
a 5-bit code: code c < 31 means |value - true energy| <= bound_wh(c) Wh, on a scale of
two steps per octave (1, 2, 3, 4, 6, 8, 12, ... 49152 Wh); 31 means no bound is known.
A bound is rounded up to its code, never down. Bit 7 and bits 13..15 are reserved.
"""
from edge.compat import const
PARTIAL = const(1)
MISSING = const(2)
RESET = const(4)
CLOCK_STEP = const(8)
MISMATCH = const(16)
INVALID = const(32)
ESTIMATED = const(64)
ALL = const(127)
BOUND_SHIFT = const(8)
BOUND_MASK = const(0x1F00)
BOUND_UNKNOWN = const(31)

NAMES = ("partial", "missing", "reset", "clock_step", "mismatch", "invalid", "estimated")


def bound_wh(code):
    """Upper end of bound code 0..30 in Wh; -1 for 31 (unknown)."""
    if code >= BOUND_UNKNOWN:
        return -1
    if code == 0:
        return 1
    j = code + 1
    return (2 | (j & 1)) << ((j - 2) >> 1)


def bound_code(wh):
    """The smallest code whose bound_wh() is >= wh; 31 for an unknown (negative) or a
    bound above the scale."""
    if wh < 0:
        return BOUND_UNKNOWN
    c = 0
    while c < BOUND_UNKNOWN and bound_wh(c) < wh:
        c += 1
    return c


def flag_bound(flags):
    """The attribution bound in Wh carried in flags bits 8..12; -1 if unknown."""
    return bound_wh((flags & BOUND_MASK) >> BOUND_SHIFT)


def names(flags):
    """Bits -> 'partial|clock_step' (empty string if none); unknown bits as 'bitN'.
    The bound code (bits 8..12) is not a flag: read it with flag_bound()."""
    flags &= ~BOUND_MASK
    out = []
    i = 0
    while flags >> i:
        if (flags >> i) & 1:
            out.append(NAMES[i] if i < len(NAMES) else "bit%d" % i)
        i += 1
    return "|".join(out)


def parse(text):
    """'partial|clock_step' -> bits, or -1 if a name is unknown."""
    bits = 0
    if not text:
        return 0
    for part in text.split("|"):
        if part in NAMES:
            bits |= 1 << NAMES.index(part)
        elif part.startswith("bit") and part[3:].isdigit():
            bits |= 1 << int(part[3:])
        else:
            return -1
    return bits
