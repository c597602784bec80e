"""edge/seal.py on both runtimes: entries, body, signing in steps, verdicts per slot."""
# mp-heap: 128K
from edge import p256, seal

PRIV = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
PUB = p256.public_key(PRIV)
DEV = 1234567
DAY = 20261203


def _values():
    # slots 5 and 6 absent (device off), slot 9 flagged missing+estimated by the integrator
    v = {}
    for s in range(1, 49):
        if s in (5, 6):
            continue
        v[s] = (s * 10, 5000 - s, 66 if s == 9 else 0)
    return v


def _seal(values=None, first=1, count=48):
    return seal.make_seal(DEV, PRIV, 0, DAY, first, count, _values() if values is None else values)


def test_entry_layout_is_the_documented_12_bytes():
    buf = bytearray(24)
    assert seal.entry_into(buf, 0, 17, 0x01020304, 0x0A0B0C0D, 0x0102) == 12
    assert bytes(buf[:12]) == bytes.fromhex("0111010203040a0b0c0d0102")
    assert seal.absent_into(buf, 12, 48) == 24
    assert bytes(buf[12:]) == b"\x00\x30" + b"\x00" * 10
    e = seal.entries(4, 3, {5: (1, 2, 3)})
    assert bytes(e) == (b"\x00\x04" + b"\x00" * 10 + b"\x01\x05\x00\x00\x00\x01\x00\x00\x00\x02\x00\x03"
                        + b"\x00\x06" + b"\x00" * 10)


def test_entry_values_out_of_range_are_typed_errors():
    buf = bytearray(12)
    for args in ((0, 1, 1, 0), (49, 1, 1, 0), (1, -1, 0, 0), (1, 1 << 32, 0, 0), (1, 0, 0, 1 << 16)):
        try:
            seal.entry_into(buf, 0, *args)
        except seal.SealError as e:
            assert e.kind == "seal_bad_value"
        else:
            raise AssertionError(args)
    for first, count in ((0, 1), (1, 0), (48, 2), (1, 49)):
        try:
            seal.entries(first, count, {})
        except seal.SealError as e:
            assert e.kind == "seal_bad_value"
        else:
            raise AssertionError((first, count))


def test_full_day_seal_parses_verifies_and_has_its_size():
    s = _seal()
    assert len(s) == 318
    p = seal.parse(s)
    assert (p.device_id, p.day, p.key_no, p.alg, p.first, p.count) == (DEV, DAY, 0, 1, 1, 48)
    assert len(p.signature) == 64 and p.body + p.signature == s
    assert p256.verify(PUB, p.body, p.signature)
    r = seal.check(s, PUB, _values(), DEV, DAY)
    assert r.ok, r.problems
    assert r.slots == [(i, seal.OK) for i in range(1, 49)]
    assert r.unsealed == []


def test_stepwise_sealer_gives_the_same_bytes_as_a_restart():
    ent = seal.entries(1, 48, _values())
    a = seal.Sealer(DEV, PRIV, 0, DAY, 1, 48, ent)
    a.step(30)  # power cut here: the half-done signer is lost
    b = seal.Sealer(DEV, PRIV, 0, DAY, 1, 48, ent)
    n = 0
    while not b.step(1):
        n += 1
    assert b.seal() == _seal()
    assert n > 100  # many small steps, not one long one


def test_each_changed_value_or_flag_names_exactly_its_slot():
    s = _seal()
    base = _values()
    for slot in (1, 9, 24, 48):
        for field in range(3):
            for delta in (1, 256, 1 << 24):
                if field == 2 and delta > 0xFFFF:
                    continue
                v = dict(base)
                t = list(v[slot])
                t[field] ^= delta
                v[slot] = tuple(t)
                r = seal.check(s, PUB, v, DEV, DAY)
                assert not r.ok
                assert [x for x in r.slots if x[1] != seal.OK] == [(slot, seal.CHANGED)], (slot, field)
                assert r.problems[0][0] == "digest"


def test_missing_and_extra_slots_are_named():
    s = _seal()
    v = _values()
    del v[7]
    v[5] = (0, 0, 0)
    r = seal.check(s, PUB, v)
    assert [x for x in r.slots if x[1] != seal.OK] == [(5, seal.EXTRA), (7, seal.MISSING)]


def test_partial_day_seal_lists_unsealed_slots():
    s = _seal(first=1, count=20)
    r = seal.check(s, PUB, _values(), DEV, DAY)
    assert r.ok
    assert len(r.slots) == 20
    assert r.unsealed == list(range(21, 49))


def test_seal_field_changes_fail_the_signature_and_say_so():
    s = _seal()
    body_len = len(seal.parse(s).body)
    # one byte in each field's value, and in the signature (every byte: host test)
    for off in (3, 8, 14, 17, 20, 25, 40, 100, 200, body_len, len(s) - 1):
        bad = bytearray(s)
        bad[off] ^= 0x01
        r = seal.check(bytes(bad), PUB, _values(), DEV, DAY)
        assert not r.ok, off
        whats = [w for w, _ in r.problems]
        assert "signature" in whats or "seal" in whats, (off, r.problems)
        if "signature" in whats:
            assert all(v == seal.UNVERIFIED for _, v in r.slots)


def test_wrong_device_day_or_key_are_problems():
    s = _seal()
    r = seal.check(s, PUB, _values(), DEV + 1, DAY + 1)
    assert [w for w, _ in r.problems] == ["device_id", "day"]
    other = p256.public_key(b"\x00" * 31 + b"\x07")
    r = seal.check(s, other, _values(), DEV, DAY)
    assert [w for w, _ in r.problems] == ["signature"]
    r = seal.check(s, b"\x04" + b"\x00" * 64, _values())
    assert [w for w, _ in r.problems] == ["public_key"]


def test_malformed_seals_are_typed():
    s = _seal()
    cases = (b"", b"\xa0", s[:100], s + b"\x00", s[:-1], b"\x80" + s[1:], b"x" * 600)
    for data in cases:
        try:
            seal.parse(data)
        except seal.SealError as e:
            assert e.kind == "seal_malformed"
        else:
            raise AssertionError(data[:8])
        r = seal.check(data, PUB, {})
        assert not r.ok and r.problems[0][0] == "seal"


def test_day_codes_round_trip():
    for n in (0, 365, 2528, 7670):
        assert seal.day_number(seal.day_code(n)) == n
    assert seal.day_code(seal.day_number(20261203)) == 20261203
    for bad in (20260230, 20261301, 20261200, 19991231):
        try:
            seal.body(DEV, bad, 0, 1, 1, 1, b"\x00" * 32, b"\x00" * 4)
        except seal.SealError as e:
            assert e.kind == "seal_bad_value"
        else:
            raise AssertionError(bad)
