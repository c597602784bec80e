"""edge/cbor.py on both runtimes: RFC 8949 Appendix A, strict rejection, buffers, key order."""
# mp-heap: 96K
import json

from edge import cbor
from edge.compat import heap_lock, heap_unlock
from edge.errors import EdgeError


def _vectors(name):
    here = __file__.rsplit("/", 1)[0]
    with open(here + "/../vectors/" + name) as f:
        return json.load(f)


def _value(v):
    """JSON vector notation -> Python value ({'b': hex} bytes, {'m': pairs} dict)."""
    if type(v) is dict:
        if "b" in v:
            return bytes.fromhex(v["b"])
        out = {}
        for k, x in v["m"]:
            out[_value(k)] = _value(x)
        return out
    if type(v) is list:
        return [_value(x) for x in v]
    return v


def _kind_of(data, **kw):
    try:
        cbor.loads(data, **kw)
    except cbor.CborError as e:
        return e.kind
    except Exception as e:  # anything else is a bug
        return "UNEXPECTED " + repr(e)
    return None


def test_rfc8949_appendix_a_encode_and_decode():
    vecs = _vectors("cbor_rfc8949.json")["accept"]
    assert len(vecs) >= 39
    for v in vecs:
        raw = bytes.fromhex(v["hex"])
        value = _value(v["value"])
        assert cbor.dumps(value) == raw, v["hex"]
        assert cbor.loads(raw) == value, v["hex"]
        assert cbor.encoded_size(value) == len(raw), v["hex"]


def test_rfc8949_appendix_a_items_outside_the_profile_are_refused():
    for v in _vectors("cbor_rfc8949.json")["reject"]:
        assert _kind_of(bytes.fromhex(v["hex"])) == v["kind"], v


def test_malformed_truncated_and_non_deterministic_inputs_raise_their_kind():
    for v in _vectors("cbor_malformed.json")["reject"]:
        assert _kind_of(bytes.fromhex(v["hex"])) == v["kind"], v


def test_errors_are_edge_errors_with_a_kind():
    try:
        cbor.loads(b"\x18")
    except EdgeError as e:
        assert isinstance(e, cbor.CborError)
        assert e.kind == "cbor_truncated"
        assert "offset" in str(e)
    else:
        raise AssertionError("no error")


def test_depth_and_length_limits_are_configurable():
    nested = b"\x81" * 5 + b"\x00"
    assert cbor.loads(nested) == [[[[[0]]]]]
    assert _kind_of(nested, max_depth=4) == "cbor_too_deep"
    assert cbor.loads(nested, max_depth=5) == [[[[[0]]]]]
    text = cbor.dumps("x" * 40)
    assert _kind_of(text, max_len=39) == "cbor_too_long"
    assert cbor.loads(text, max_len=40) == "x" * 40
    arr = cbor.dumps(list(range(10)))
    assert _kind_of(arr, max_len=9) == "cbor_too_long"
    # a huge declared count is refused before anything is allocated for it
    assert _kind_of(b"\x9a\x00\x01\x00\x00" + b"\x00" * 3) == "cbor_truncated"


def test_lenient_mode_accepts_non_shortest_heads_and_unsorted_keys():
    assert cbor.loads(b"\x18\x17", strict=False) == 23
    assert cbor.loads(bytes.fromhex("a202000100"), strict=False) == {1: 0, 2: 0}
    # duplicates and indefinite lengths stay errors even when lenient
    assert _kind_of(bytes.fromhex("a201010102"), strict=False) == "cbor_duplicate_key"
    assert _kind_of(b"\x9f\xff", strict=False) == "cbor_indefinite"


def test_map_keys_sort_bytewise_not_length_first():
    # RFC 8949 4.2.1: 100 (18 64) sorts before -1 (20); RFC 7049 canonical puts -1 first
    assert cbor.dumps({-1: 0, 100: 0}) == bytes.fromhex("a21864002000")
    assert cbor.dumps({"b": 0, 10: 0, "aa": 0}) == bytes.fromhex("a30a0061620062616100")
    assert cbor.loads(bytes.fromhex("a21864002000")) == {100: 0, -1: 0}


def test_bool_is_not_an_int_and_tuples_encode_as_arrays():
    assert cbor.dumps(True) == b"\xf5" and cbor.dumps(1) == b"\x01"
    assert cbor.dumps((1, 2)) == cbor.dumps([1, 2])
    assert cbor.dumps(bytearray(b"ab")) == b"\x42ab"


def test_unsupported_types_raise_a_typed_error():
    for bad in (1.5, {1, 2}, object()):
        try:
            cbor.dumps(bad)
        except cbor.CborError as e:
            assert e.kind == "cbor_unsupported"
        else:
            raise AssertionError("encoded %r" % (bad,))
    try:
        cbor.dumps({(1,): 2})
    except cbor.CborError as e:
        assert e.kind == "cbor_unsupported"
    else:
        raise AssertionError("encoded a tuple key")


def test_bignums_round_trip_both_signs():
    for v in (1 << 64, (1 << 64) + 1, 1 << 100, -(1 << 64) - 1, -(1 << 200)):
        raw = cbor.dumps(v)
        assert raw[0] in (0xC2, 0xC3)
        assert raw[2] != 0  # no leading zero byte in the magnitude
        assert cbor.loads(raw) == v
    assert cbor.dumps((1 << 64) - 1)[0] == 0x1B
    assert cbor.dumps(-(1 << 64))[0] == 0x3B


def test_encode_into_writes_at_an_offset_and_refuses_overflow():
    buf = bytearray(b"\xee" * 12)
    end = cbor.encode_into(buf, 3, [1, 1000])
    assert end == 3 + 5
    assert bytes(buf[3:end]) == bytes.fromhex("82011903e8")
    assert buf[0] == 0xEE and buf[end] == 0xEE
    small = bytearray(4)
    try:
        cbor.encode_into(small, 0, b"12345")
    except cbor.CborError as e:
        assert e.kind == "cbor_buffer_full"
    else:
        raise AssertionError("wrote past the buffer")
    assert bytes(small) == b"\x45\x00\x00\x00"  # head written, nothing beyond len(buf)


def test_loads_prefix_reports_the_end_offset():
    data = cbor.dumps([1, 2]) + b"\xaa\xbb"
    obj, end = cbor.loads_prefix(data)
    assert obj == [1, 2] and end == 3
    obj, end = cbor.loads_prefix(data, 1)
    assert obj == 1 and end == 2
    assert _kind_of(data) == "cbor_trailing"


def test_non_bytes_input_is_a_typed_error():
    for bad in ("00", None, 5, [0]):
        assert _kind_of(bad) == "cbor_malformed"


def test_heads_for_31_bit_values_write_without_allocating():
    # Small ints on 32-bit boards stop at 2**30-1: every head below that must be
    # allocation-free. (The 64-bit unix port would hide bignum use above it.)
    buf = bytearray(16)
    values = (0, 23, 24, 255, 256, 65535, 65536, (1 << 30) - 1, -1, -(1 << 30))
    ends = [0] * len(values)
    heap_lock()
    try:
        for i in range(len(values)):
            ends[i] = cbor.write_int(buf, 0, values[i])
    finally:
        heap_unlock()
    assert ends == [1, 1, 2, 2, 3, 3, 5, 5, 1, 5]
    assert cbor.loads(bytes(buf[:5])) == -(1 << 30)


def test_decoded_bytes_are_independent_of_the_input_buffer():
    src = bytearray(b"\x42ab")
    out = cbor.loads(memoryview(src))
    src[1] = 0x7A
    assert out == b"ab" and type(out) is bytes

