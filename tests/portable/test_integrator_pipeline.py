"""parse -> integrate -> close-slot: register words of a real map (hw/maps, decoded by
edge/regmap.py) straight into the integrator, allocation-free on MicroPython.

The heap is for compiling regmap.py and integrator.py from source in the test lane.
"""
# mp-heap: 192K
import json

from edge.compat import heap_lock, heap_unlock
from edge.flags import MISSING, PARTIAL
from edge.integrator import REC_LEN, Integrator
from edge.reading import new_reading
from edge.regmap import compile_map, decode

DAY = 2326 * 86400


def load_map(name):
    with open("hw/maps/%s.json" % name) as f:
        return compile_map(json.load(f))


def test_sunspec_inverter_words_to_slots_without_allocating():
    rmap = load_map("sunspec_inverter_103")
    words = [0] * rmap.count
    words[0] = 103  # model ID
    words[1] = 50  # L
    words[26] = 0  # WH_SF = 0: Wh
    wh = 4294967295 - 3  # the acc32 rolls over during the run
    words[24] = (wh >> 16) & 0xFFFF
    words[25] = wh & 0xFFFF
    words[14] = 3600  # W, with W_SF = 0 (int16: at most 32767)
    words[15] = 0  # W_SF: 3600 W produced -> 1 Wh per second exported
    rd = new_reading()
    it = Integrator()
    out = [0] * REC_LEN
    s = DAY + 1800 - 100
    decode(rmap, words, 0, rd)
    it.feed(rd, s, 0, out)
    closed = 0
    n = 0
    heap_lock()
    try:
        while n < 200:  # crosses the slot boundary at n = 99
            s += 1
            lo = words[25] + 1
            if lo > 0xFFFF:
                lo = 0
                words[24] = (words[24] + 1) & 0xFFFF
            # at the wrap the acc32 reads 0 = SunSpec "not accumulated": that one reading
            # has no export register and the next delta spans two seconds
            words[25] = lo
            decode(rmap, words, 0, rd)
            closed += it.feed(rd, s, 0, out)
            n += 1
    finally:
        heap_unlock()
    assert closed == 1
    assert out[0] == (DAY + 1800 - 100) // 1800
    # 100 s of 1 Wh/s before the boundary, across the 32-bit rollover, by register and power
    assert out[2] == 100 and out[4] == 0 and out[5] == 100
    assert out[3] == PARTIAL | MISSING  # the run started 100 s before the slot's end
    assert out[1] == 0 and it.open_slot() == out[0] + 1
