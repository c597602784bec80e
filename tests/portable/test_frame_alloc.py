"""The device's frame path allocates nothing for CBOR; the MAC's allocation is measured."""
# mp-heap: 128K
import gc

from edge import frame as fr
from edge.compat import SMALL_INT_MAX, heap_lock, heap_unlock
from runtime import micropython_only

KEY = b"per-device key, 32 bytes long..."
WORST_SEQ = SMALL_INT_MAX  # a 31-bit board keeps seq a small int for 2**30 frames


def _batch(n):
    recs = []
    for i in range(n):
        recs.append([368207 + i, 5000, 5000, 63])
    return recs


def test_body_encoding_allocates_nothing_under_heap_lock():
    enc = fr.FrameEncoder(2**32 - 1, KEY)
    recs = _batch(48)
    buf = bytearray(512)
    expect = enc.encode(WORST_SEQ, recs, 0, 48, 15)
    sizes = [0, 0, 0]
    heap_lock()
    try:
        sizes[0] = enc.encode_body_into(buf, WORST_SEQ, recs, 0, 1, 15)
        sizes[1] = enc.encode_body_into(buf, WORST_SEQ, recs, 0, 6, 15)
        sizes[2] = enc.encode_body_into(buf, WORST_SEQ, recs, 0, 48, 15)
    finally:
        heap_unlock()
    assert sizes == [30, 30 + 5 * 9 + 1, 30 + 47 * 9 + 1]
    assert bytes(buf[: sizes[2]]) == expect[: sizes[2]]


def test_device_id_is_never_touched_per_frame():
    # A device id up to 2**32-1 is a bignum on 32-bit boards: it is encoded once in
    # __init__, so per-frame arithmetic only sees slot, Wh, flags, status and seq.
    enc = fr.FrameEncoder(2**32 - 1, KEY)
    expect = enc.encode(5, _batch(2))
    enc.device_id = None
    assert enc.encode(5, _batch(2)) == expect


def test_hot_values_stay_inside_the_31_bit_small_int_range():
    # Realistic worst cases as the encoder's per-frame arithmetic sees them.
    recs = _batch(48)
    for r in recs:
        for v in r:
            assert 0 <= v <= SMALL_INT_MAX
    # slot numbers stay small ints until 2054 (edge seconds < 2**30)
    assert (SMALL_INT_MAX // 1800) > 368207


def test_full_frame_size_of_one_record():
    enc = fr.FrameEncoder(2**32 - 1, KEY)
    recs = _batch(1)
    n = enc.encode_into(bytearray(64), 7, recs)
    assert n == enc.frame_size(7, recs) == 34


def test_full_frame_allocation_is_only_the_mac():
    micropython_only("allocation is measured only on MicroPython (gc.mem_alloc)")
    enc = fr.FrameEncoder(2**32 - 1, KEY)
    recs = _batch(1)
    buf = bytearray(64)
    enc.encode_into(buf, 7, recs)  # warm up
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(10):
        enc.encode_into(buf, 7, recs)
    per_frame = (gc.mem_alloc() - before) // 10
    gc.enable()
    print("frame: bytes allocated per encode+MAC on MicroPython:", per_frame)
    # memoryview slice (one GC block) + two sha256 objects and digests; nothing per record
    assert 0 < per_frame <= 1024
    recs48 = _batch(48)
    buf = bytearray(512)
    enc.encode_into(buf, 7, recs48, 0, 48)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    enc.encode_into(buf, 7, recs48, 0, 48)
    per_batch = gc.mem_alloc() - before
    gc.enable()
    print("frame: bytes allocated per 48-slot encode+MAC:", per_batch)
    assert per_batch <= per_frame + 64
