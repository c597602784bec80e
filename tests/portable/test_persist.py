"""Sequence counter and integrator state across power cuts; the in-RAM storage's cut model."""
# mp-heap: 64K
import struct

from edge.compat import SMALL_INT_MAX, SMALL_INT_MIN
from edge.crc import crc16
from edge.memstore import MemStorage, PowerCut
from edge.persist import SEQ_RESERVE, SeqCounter, StateStore, StoreError


def expect_kind(kind, fn, *args):
    try:
        fn(*args)
    except StoreError as e:
        assert e.kind == kind, e.kind
    else:
        assert False, "no StoreError " + kind


# ---- MemStorage: the cut model the other tests rely on -----------------------------------


def test_mem_storage_reads_writes_and_pads():
    m = MemStorage()
    assert m.read("f", 0, 4) == b""
    assert m.load("f") is None
    m.write("f", 3, b"ab")
    assert m.read("f", 0, 10) == b"\x00\x00\x00ab"
    m.write("f", 1, b"Z")
    assert m.load("f") == b"\x00Z\x00ab"


def test_mem_storage_loses_unsynced_writes_unless_kept():
    m = MemStorage()
    m.write("f", 0, b"1111")
    m.sync("f")
    m.write("f", 0, b"22")
    m.write("f", 2, b"33")
    m.power_cycle()
    assert m.load("f") == b"1111"
    m.write("f", 0, b"22")
    m.write("f", 2, b"33")
    m.power_cycle(lambda i: i == 1)  # the second write reached flash, the first did not
    assert m.load("f") == b"1133"
    m.write("g", 0, b"x")
    m.power_cycle()
    assert m.load("g") is None  # never synced, never existed


def test_mem_storage_tears_a_write_at_the_budget():
    m = MemStorage()
    m.write("f", 0, b"........")
    m.sync("f")
    m.cut_after(3)
    try:
        m.write("f", 0, b"ABCDEFGH")
    except PowerCut as e:
        assert e.kind == "power_cut"
    else:
        assert False
    assert m.dead
    try:
        m.read("f", 0, 1)
    except PowerCut:
        pass
    else:
        assert False
    m.power_cycle(lambda i: True)
    assert m.load("f") == b"ABC....."
    assert not m.dead


def test_mem_storage_replace_is_all_or_nothing():
    m = MemStorage()
    m.replace("s", b"old")
    m.cut_after(0)
    try:
        m.replace("s", b"new!")
    except PowerCut:
        pass
    else:
        assert False
    m.power_cycle(lambda i: True)
    assert m.load("s") == b"old"
    m.replace("s", b"new!")
    m.power_cycle()
    assert m.load("s") == b"new!"


def test_mem_storage_crosses_pages_and_keeps_the_gaps_zero():
    m = MemStorage()
    m.write("f", 250, bytes(range(1, 21)))  # across the first page boundary
    m.write("f", 700, b"\xff")  # skips a whole page
    m.sync("f")
    m.write("f", 255, b"\xee\xee")
    m.power_cycle()  # the unsynced write is lost, the synced ones stay
    data = m.load("f")
    assert len(data) == 701 and data[250:270] == bytes(range(1, 21))
    assert data[:250] == bytes(250) and data[270:700] == bytes(430) and data[700] == 0xFF
    assert m.read("f", 260, 1000) == bytes(range(11, 21)) + bytes(430) + b"\xff"
    assert m.read("f", 701, 4) == b""


def test_mem_storage_grows_a_file_without_fragmenting_a_long_run():
    # a queue file grows by a few bytes per record while the test keeps other objects
    # alive between the writes; one block regrown per write left holes everywhere and a
    # 6 KB file failed to grow on a 512 KB heap half free (a test run of the agent's clock)
    m = MemStorage()
    n = 100
    keep = [None] * n
    for i in range(n):
        m.write("q", i * 24, b"r" * 24)
        m.sync("q")
        keep[i] = bytearray(8)
    assert all(m.read("q", i * 24, 24) == b"r" * 24 for i in range(n))
    assert m.read("q", 24 * n, 1) == b""


# ---- SeqCounter ----------------------------------------------------------------------------


def test_seq_counts_from_zero_and_writes_once_per_reserve():
    m = MemStorage()
    c = SeqCounter(m, reserve=16)
    assert m.replaces == 0  # nothing written until a number is used
    got = [c.next() for _ in range(40)]
    assert got == list(range(40))
    assert m.replaces == 3  # ceilings 16, 32, 48
    assert c.peek() == 40


def test_seq_jumps_past_the_reserve_after_restart():
    m = MemStorage()
    c = SeqCounter(m, reserve=16)
    for _ in range(5):
        c.next()
    m.power_cycle()
    c = SeqCounter(m, reserve=16)
    assert c.next() == 16
    m.power_cycle()
    assert SeqCounter(m, reserve=16).next() == 32


def test_seq_never_repeats_whatever_byte_the_cut_hits():
    for reserve in (1, 3, SEQ_RESERVE):
        m = MemStorage()
        issued = []
        budget = 0
        for _ in range(25):
            c = SeqCounter(m, reserve=reserve)
            m.cut_after(budget % 4)
            try:
                for _ in range(7):
                    n = c.next()
                    assert not issued or n > issued[-1]
                    issued.append(n)
            except PowerCut:
                pass
            m.power_cycle(lambda i: True)
            budget += 1
        assert len(issued) > 20
        assert len(set(issued)) == len(issued)


def test_seq_stops_at_the_31_bit_end_instead_of_wrapping():
    m = MemStorage()
    raw = bytearray(8)
    raw[0] = 0x53
    raw[1] = 1
    struct.pack_into(">I", raw, 2, SMALL_INT_MAX - 1)
    c = crc16(raw, 0, 6)
    raw[6] = c >> 8
    raw[7] = c & 0xFF
    m.replace("seq", raw)
    c = SeqCounter(m, reserve=16)
    assert c.next() == SMALL_INT_MAX - 1
    assert c.next() == SMALL_INT_MAX
    expect_kind("seq_exhausted", c.next)
    expect_kind("seq_exhausted", c.next)


def test_seq_damaged_file_is_flagged():
    m = MemStorage()
    m.replace("seq", b"\x53\x01garbag")
    c = SeqCounter(m)
    assert c.recovered
    assert c.next() == 0
    assert not SeqCounter(MemStorage()).recovered


def test_seq_reserve_out_of_range():
    expect_kind("store_range", SeqCounter, MemStorage(), "seq", 0)


# ---- StateStore ----------------------------------------------------------------------------


def test_state_round_trips_exactly_at_the_bounds():
    m = MemStorage()
    s = StateStore(m, "integ", 6)
    vals = [0, 1, -1, SMALL_INT_MAX, SMALL_INT_MIN, 123456789]
    s.save(vals)
    m.power_cycle()
    out = [7] * 6
    assert StateStore(m, "integ", 6).load(out)
    assert out == vals


def test_state_absent_or_foreign_is_not_loaded():
    m = MemStorage()
    out = [5, 5, 5]
    assert not StateStore(m, "integ", 3).load(out)
    assert out == [5, 5, 5]
    StateStore(m, "integ", 4).save([1, 2, 3, 4])
    assert not StateStore(m, "integ", 3).load(out)  # another length: not ours
    raw = bytearray(m.load("integ"))
    raw[5] ^= 1
    m.replace("integ", raw)
    assert not StateStore(m, "integ", 4).load([0] * 4)


def test_state_rejects_bad_values():
    s = StateStore(MemStorage(), "integ", 2)
    expect_kind("store_range", s.save, [1])
    expect_kind("store_range", s.save, [SMALL_INT_MAX + 1, 0])
    expect_kind("store_range", s.save, [0, SMALL_INT_MIN - 1])
    expect_kind("store_range", StateStore, MemStorage(), "x", 61)


def test_state_cut_leaves_old_or_new_never_a_mix():
    m = MemStorage()
    s = StateStore(m, "integ", 3)
    s.save([1, 2, 3])
    for budget in (0, 1):
        m.cut_after(budget)
        try:
            s.save([4, 5, 6])
            done = True
        except PowerCut:
            done = False
        m.power_cycle(lambda i: True)
        out = [0, 0, 0]
        assert StateStore(m, "integ", 3).load(out)
        assert out == ([4, 5, 6] if done else [1, 2, 3])
        assert done == (budget == 1)
