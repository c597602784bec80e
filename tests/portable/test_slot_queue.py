"""The store-and-forward queue: order, acks, restarts, overflow, torn records, capacity change."""
# mp-heap: 256K
# (MemStorage keeps a whole 8 KB ring file in RAM and grows it; on a board the ring is on flash.)
from edge.compat import SMALL_INT_MAX
from edge.memstore import MemStorage, PowerCut
from edge.persist import StoreError
from edge.slot_queue import DEFAULT_CAPACITY, MAX_SLOT, MAX_WH, SlotQueue


def rec(slot):
    """Deterministic record values for a slot, so any read-back can be checked exactly."""
    return (slot, (slot * 7919) % 100000, (slot * 104729) % 50000, slot & 0xFFFF)


def fill(q, first, last):
    for s in range(first, last + 1):
        r = rec(s)
        assert q.append(r[0], r[1], r[2], r[3])


def slots(recs):
    return [r[0] for r in recs]


def reboot(m, capacity=8, keep=None):
    m.power_cycle(keep)
    return SlotQueue(m, capacity)


def test_default_capacity_is_seven_days():
    assert DEFAULT_CAPACITY == 7 * 48
    q = SlotQueue(MemStorage())
    assert q.capacity == 336


def test_fresh_queue_is_empty():
    q = SlotQueue(MemStorage(), 8)
    assert q.peek(10) == []
    assert q.tail == -1
    assert q.pending() == 0
    assert q.overflow() is None


def test_peek_is_oldest_first_and_limited():
    q = SlotQueue(MemStorage(), 8)
    fill(q, 1000, 1005)
    assert q.peek(3) == [rec(1000), rec(1001), rec(1002)]
    assert q.peek(100) == [rec(s) for s in range(1000, 1006)]
    # peek does not consume: the same records come again until acknowledged
    assert slots(q.peek(2)) == [1000, 1001]


def test_out_of_order_and_duplicate_acks():
    q = SlotQueue(MemStorage(), 8)
    fill(q, 50, 55)
    assert q.ack([53, 51]) == 2
    assert q.head == 50  # 50 still pending: the head does not move past it
    assert slots(q.peek(10)) == [50, 52, 54, 55]
    assert q.ack([51, 53, 53]) == 0  # duplicates change nothing
    assert q.unknown_acks == 3
    assert q.ack([50]) == 1
    assert q.head == 52  # advanced over the contiguous acknowledged 50, 51
    assert q.ack([999, -1, 49]) == 0
    assert q.unknown_acks == 6
    assert q.ack_through(54) == 2
    assert slots(q.peek(10)) == [55]
    assert q.pending() == 1


def test_restart_redelivers_unacked_and_never_acked():
    m = MemStorage()
    q = SlotQueue(m, 8)
    fill(q, 10, 15)
    q.ack([11, 14])
    q = reboot(m)
    assert q.peek(10) == [rec(10), rec(12), rec(13), rec(15)]
    assert q.tail == 15
    q.ack([10, 12, 13, 15])
    q = reboot(m)
    assert q.peek(10) == []
    assert q.pending() == 0
    # the newest slot is remembered even when all are acknowledged
    assert q.append(15, 1, 1, 0) is False
    assert q.append(16, 1, 1, 0) is True


def test_append_of_an_old_slot_is_refused_and_counted():
    m = MemStorage()
    q = SlotQueue(m, 8)
    fill(q, 100, 101)
    assert q.append(101, 5, 5, 0) is False
    assert q.append(7, 5, 5, 0) is False
    assert q.stale_appends == 2
    assert q.peek(10) == [rec(100), rec(101)]  # the first value stays
    q = reboot(m)
    assert q.append(101, 5, 5, 0) is False


def test_gaps_between_slots_are_fine():
    q = SlotQueue(MemStorage(), 8)
    for s in (3, 5, 9, 10):
        r = rec(s)
        q.append(*r)
    assert slots(q.peek(10)) == [3, 5, 9, 10]


def test_full_queue_drops_oldest_into_a_counted_summary():
    m = MemStorage()
    q = SlotQueue(m, 4)
    fill(q, 20, 25)  # 20 and 21 leave the ring unacknowledged
    assert slots(q.peek(10)) == [22, 23, 24, 25]
    assert q.overflow() == (0, 2, 20, 21, rec(20)[1] + rec(21)[1], rec(20)[2] + rec(21)[2], 0)
    q = reboot(m, 4)
    ov = q.overflow()
    assert ov[:4] == (0, 2, 20, 21)
    assert q.ack_overflow(0, 1) is False  # not the current report
    assert q.ack_overflow(1, 2) is False
    assert q.ack_overflow(0, 2) is True
    assert q.overflow() is None
    assert q.ack_overflow(0, 2) is False
    q = reboot(m, 4)
    assert q.overflow() is None
    fill(q, 26, 26)
    assert q.overflow()[:4] == (1, 1, 22, 22)  # new epoch


def test_acked_slots_leaving_the_ring_are_not_overflow():
    q = SlotQueue(MemStorage(), 4)
    fill(q, 0, 3)
    q.ack([0, 2])
    fill(q, 4, 7)
    ov = q.overflow()
    assert ov[1] == 2 and ov[2] == 1 and ov[3] == 3
    assert ov[4] == rec(1)[1] + rec(3)[1]


def test_a_long_gap_drops_everything_pending():
    m = MemStorage()
    q = SlotQueue(m, 4)
    fill(q, 0, 2)
    q.append(*rec(100))
    assert slots(q.peek(10)) == [100]
    assert q.overflow()[1:4] == (3, 0, 2)
    q = reboot(m, 4)
    assert slots(q.peek(10)) == [100]
    assert q.overflow()[1] == 3


def test_overflow_sums_saturate_and_say_so():
    q = SlotQueue(MemStorage(), 2)
    for s in range(5):
        assert q.append(s, MAX_WH, 1, 0)
    ov = q.overflow()
    assert ov[1] == 3
    assert ov[4] == SMALL_INT_MAX
    assert ov[5] == 3
    assert ov[6] == 1


def test_ranges_at_the_31_bit_bound():
    q = SlotQueue(MemStorage(), 8)
    assert MAX_WH == (1 << 30) - 1
    assert q.append(MAX_SLOT - 1, MAX_WH, MAX_WH, 0xFFFF)
    assert q.append(MAX_SLOT, 0, 0, 0)
    assert q.peek(1) == [(MAX_SLOT - 1, MAX_WH, MAX_WH, 0xFFFF)]
    bad = (
        (MAX_SLOT + 1, 0, 0, 0),
        (-1, 0, 0, 0),
        (MAX_SLOT, MAX_WH + 1, 0, 0),
        (MAX_SLOT, 0, -1, 0),
        (MAX_SLOT, 0, 0, 0x10000),
    )
    for args in bad:
        try:
            q.append(*args)
        except StoreError as e:
            assert e.kind == "store_range"
        else:
            assert False, args


def test_flash_writes_per_slot_are_bounded():
    m = MemStorage()
    q = SlotQueue(m, 4)
    w0, s0, r0 = m.writes, m.syncs, m.replaces
    q.append(*rec(0))
    assert (m.writes - w0, m.syncs - s0, m.replaces - r0) == (1, 1, 0)
    fill(q, 1, 3)
    w0, s0, r0 = m.writes, m.syncs, m.replaces
    q.append(*rec(4))  # overflow: one extra small replace
    assert (m.writes - w0, m.syncs - s0, m.replaces - r0) == (1, 1, 1)
    w0, s0 = m.writes, m.syncs
    assert q.ack([2, 3, 4]) == 3
    assert (m.writes - w0, m.syncs - s0) == (3, 1)
    w0, s0 = m.writes, m.syncs
    q.ack([2, 3])  # duplicates cost nothing
    assert (m.writes - w0, m.syncs - s0) == (0, 0)


def test_a_cut_at_every_byte_of_an_append_keeps_or_drops_it_whole():
    for keep_pending in (False, True):
        cut = 0
        while True:
            m = MemStorage()
            q = SlotQueue(m, 4)
            fill(q, 0, 2)
            q.ack([1])
            m.cut_after(cut)
            try:
                q.append(*rec(3))
                finished = True
            except PowerCut:
                finished = False
            q = reboot(m, 4, (lambda i: True) if keep_pending else None)
            got = q.peek(10)
            assert got[:2] == [rec(0), rec(2)]
            assert got[2:] in ([], [rec(3)])
            if finished:
                assert got[2:] == [rec(3)]
                break
            if not keep_pending:
                assert got[2:] == []
            assert q.append(*rec(3)) == (got[2:] == [])  # the agent re-closes the slot
            assert q.peek(10) == [rec(0), rec(2), rec(3)]
            cut += 1
        assert cut == 17  # 16 record bytes and the sync


def test_a_cut_during_an_ack_never_loses_a_slot():
    cut = 0
    while True:
        m = MemStorage()
        q = SlotQueue(m, 8)
        fill(q, 0, 4)
        m.cut_after(cut)
        try:
            q.ack([3, 1])
            finished = True
        except PowerCut:
            finished = False
        for keep in (None, lambda i: i % 2 == 0, lambda i: True):
            q = reboot(m, 8, keep)
            got = slots(q.peek(10))
            for s in (0, 2, 4):
                assert s in got
            if finished:
                assert got == [0, 2, 4]
        if finished:
            break
        cut += 1
    assert cut == 17


def test_a_torn_record_in_the_middle_is_not_delivered():
    m = MemStorage()
    q = SlotQueue(m, 8)
    fill(q, 0, 3)
    m.write("q.dat", 16 + 2 * 16 + 5, b"\x00\x01")  # damage slot 2's record
    m.sync("q.dat")
    q = reboot(m)
    assert slots(q.peek(10)) == [0, 1, 3]


def test_a_record_damaged_after_boot_is_counted_not_sent():
    m = MemStorage()
    q = SlotQueue(m, 8)
    fill(q, 0, 3)
    m.write("q.dat", 16 + 1 * 16 + 6, b"\xff")
    assert slots(q.peek(10)) == [0, 2, 3]
    assert q.corrupt_records == 1


def test_growing_capacity_keeps_everything():
    m = MemStorage()
    q = SlotQueue(m, 4)
    fill(q, 10, 13)
    q.ack([11])
    q = reboot(m, 16)
    assert q.migrated and q.capacity == 16
    assert q.peek(20) == [rec(10), rec(12), rec(13)]
    fill(q, 14, 25)
    assert q.overflow() is None
    assert len(q.peek(20)) == 15
    q = reboot(m, 16)
    assert not q.migrated
    assert len(q.peek(20)) == 15


def test_shrinking_capacity_counts_what_no_longer_fits():
    m = MemStorage()
    q = SlotQueue(m, 8)
    fill(q, 0, 7)
    q.ack([6])
    q = reboot(m, 3)
    assert slots(q.peek(10)) == [5, 7]
    assert q.overflow()[1:4] == (5, 0, 4)
    assert q.append(7, 0, 0, 0) is False  # the acknowledged tail is still known
    q = reboot(m, 3)
    assert slots(q.peek(10)) == [5, 7]
    assert q.overflow()[1] == 5


def test_a_cut_during_migration_loses_and_double_counts_nothing():
    cut = 0
    while True:
        m = MemStorage()
        q = SlotQueue(m, 8)
        fill(q, 0, 7)
        m.cut_after(cut)
        try:
            q = SlotQueue(m, 3)
            finished = True
        except PowerCut:
            finished = False
        q = reboot(m, 3)
        assert slots(q.peek(10)) == [5, 6, 7]
        ov = q.overflow()
        assert ov[1:4] == (5, 0, 4)
        assert ov[4] == sum(rec(s)[1] for s in range(5))
        if finished:
            break
        cut += 1
    assert cut == 2  # two atomic replaces: summary, then ring


def test_capacity_out_of_range_is_a_typed_error():
    for cap in (0, 1, 0x10001):
        try:
            SlotQueue(MemStorage(), cap)
        except StoreError as e:
            assert e.kind == "store_range"
        else:
            assert False, cap


def test_a_damaged_header_is_repaired_without_losing_records():
    m = MemStorage()
    q = SlotQueue(m, 8)
    fill(q, 0, 3)
    q.ack([1])
    m.write("q.dat", 5, b"\x77")  # flash damage in the capacity field
    m.sync("q.dat")
    q = reboot(m)
    assert q.header_repaired
    assert slots(q.peek(10)) == [0, 2, 3]
    q = reboot(m)
    assert not q.header_repaired
    assert slots(q.peek(10)) == [0, 2, 3]


def test_garbage_files_read_as_an_empty_queue():
    m = MemStorage()
    m.replace("q.dat", bytes(range(256)) * 4)
    m.replace("q.ovf", b"O\x01" + bytes(40))
    q = SlotQueue(m, 8)
    assert q.peek(10) == [] and q.overflow() is None
    fill(q, 1, 2)
    q = reboot(m)
    assert slots(q.peek(10)) == [1, 2]


def test_non_int_input_is_a_typed_error_or_an_unknown_ack():
    q = SlotQueue(MemStorage(), 8)
    fill(q, 1, 2)
    for args in ((1.5, 0, 0, 0), (3, "1", 0, 0), (3, 0, None, 0), (3, 0, 0, b"")):
        try:
            q.append(*args)
        except StoreError as e:
            assert e.kind == "store_range"
        else:
            assert False, args
    assert q.ack(["1", None, 2.0, 1]) == 1
    assert q.unknown_acks == 3
    assert slots(q.peek(10)) == [2]


def test_a_72_hour_outage_ends_with_every_slot_delivered_in_order():
    m = MemStorage()
    q = SlotQueue(m, DEFAULT_CAPACITY)
    first = 50000
    for s in range(first, first + 144):  # 72 h of slots, nothing acknowledged
        q.append(*rec(s))
        if s % 37 == 0:
            q = reboot(m, DEFAULT_CAPACITY)  # power cuts during the outage too
    got = []
    while True:
        batch = q.peek(8)  # several slots per frame, oldest first
        if not batch:
            break
        got.extend(batch)
        q.ack(list(reversed(slots(batch))))
        if len(got) % 40 == 0:
            q = reboot(m, DEFAULT_CAPACITY)
    assert got == [rec(s) for s in range(first, first + 144)]
    assert q.overflow() is None and q.pending() == 0


def test_stored_reads_acknowledged_records_until_a_later_lap_overwrites_them():
    m = MemStorage()
    q = SlotQueue(m, 8)
    fill(q, 100, 103)
    q.ack([100, 101, 102, 103])
    assert q.pending() == 0
    assert [q.stored(s) for s in (100, 103)] == [rec(100), rec(103)]
    assert q.stored(99) is None and q.stored(104) is None
    fill(q, 105, 108)  # 104 never queued; 108 overwrites 100's position
    assert q.stored(104) is None and q.stored(100) is None
    assert q.stored(101) == rec(101) and q.stored(108) == rec(108)
    q2 = reboot(m)
    assert q2.stored(101) == rec(101) and q2.stored(100) is None
