"""Edge time: the one place where wall-clock epochs are converted.

Edge code counts integer seconds since 2020-01-01T00:00:00+09:00 (JST), which stays a
31-bit small int until 2054, plus integer milliseconds 0..999 where needed. Unix time
(1970) and the boards' 2000 epoch both exceed 2**30 today, so adapters convert with the
offsets below before handing time to edge code. JST has no daylight saving time.
"""
from edge.compat import const

# 2020-01-01T00:00:00+09:00 == 2019-12-31T15:00:00Z
EDGE_EPOCH_UNIX = 1577804400
# Seconds between the MicroPython board epoch 2000-01-01T00:00:00Z and the edge epoch.
EDGE_EPOCH_FROM_2000 = const(631119600)
SLOT_SECONDS = const(1800)
SLOTS_PER_DAY = const(48)


def from_unix(unix_s):
    """Unix seconds (int) -> edge seconds."""
    return unix_s - EDGE_EPOCH_UNIX


def to_unix(edge_s):
    return edge_s + EDGE_EPOCH_UNIX


def from_epoch2000(board_s):
    """Board seconds since 2000-01-01 UTC -> edge seconds."""
    return board_s - EDGE_EPOCH_FROM_2000
