"""Register words -> typed values for `smeter read --raw` (mbpoll's -t types and word order).

Modbus itself only carries 16-bit registers; a 32/64-bit value spans 2/4 consecutive
registers, most significant first by the usual convention ('big') and the other way round
on word-swapped devices ('little'). Bytes within a register are always big-endian.
"""
import math
import struct

WIDTH = {"u16": 1, "s16": 1, "u32": 2, "s32": 2, "u64": 4, "f32": 2}
MAX_REGISTERS = 125  # per read request (Modbus application protocol, function 03/04)
_FORMAT = {"u16": ">H", "s16": ">h", "u32": ">I", "s32": ">i", "u64": ">Q", "f32": ">f"}


def decode(words, kind, word_order="big"):
    """Consecutive values of `kind` from `words` (len a multiple of the width). A non-finite
    float comes out as its name ('nan', 'inf', '-inf'): JSON has no such numbers."""
    w = WIDTH[kind]
    if len(words) % w:
        raise ValueError("%d registers do not hold whole %s values" % (len(words), kind))
    out = []
    for i in range(0, len(words), w):
        group = words[i:i + w]
        if word_order == "little":
            group = group[::-1]
        v = struct.unpack(_FORMAT[kind], struct.pack(">%dH" % w, *group))[0]
        if kind == "f32" and not math.isfinite(v):
            v = repr(v)
        out.append(v)
    return out
