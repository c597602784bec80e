"""The reading: what one poll of a device yields, as small ints in a caller-owned list.

edge/regmap.py fills it from register words; edge/integrator.py consumes it. A list of
small ints is reused every poll so the hot path allocates nothing, and every entry stays
inside the 31-bit small-int range of 32-bit boards: that is why a 32-bit cumulative
counter travels as two 16-bit halves instead of one int.

Energy counters: Wh = ((hi << 16) | lo) * 10**exp  (exp may be negative or positive).
Power: W = value * 10**exp, import positive, export negative (the map converts the
device's own sign convention).
"""
from edge.compat import const

# Bits of R_PRESENT: which quantities this reading carries.
HAS_POWER = const(1)
HAS_IMPORT = const(2)
HAS_EXPORT = const(4)

R_PRESENT = const(0)
R_POWER = const(1)
R_POWER_EXP = const(2)
R_IMP_HI = const(3)
R_IMP_LO = const(4)
R_IMP_EXP = const(5)
R_EXP_HI = const(6)
R_EXP_LO = const(7)
R_EXP_EXP = const(8)
READING_LEN = const(9)


def new_reading():
    """A zeroed reading list; allocate once, refill every poll."""
    return [0] * READING_LEN
