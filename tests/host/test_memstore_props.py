"""MemStorage's paged files against a flat bytearray model: every read, load and restart
sees the bytes a plain file would hold, across page boundaries and skipped pages."""
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.memstore import MemStorage

_write = st.tuples(st.just("w"), st.integers(0, 1300), st.binary(min_size=1, max_size=600))
_read = st.tuples(st.just("r"), st.integers(0, 1400), st.integers(0, 700))
_sync = st.tuples(st.just("s"))
_cycle = st.tuples(st.just("c"), st.integers(0, 255))
_replace = st.tuples(st.just("R"), st.binary(max_size=700))


def _put(f, offset, data):
    if len(f) < offset + len(data):
        f.extend(bytes(offset + len(data) - len(f)))
    f[offset : offset + len(data)] = data


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_write, _read, _sync, _cycle, _replace), max_size=40))
def test_paged_files_read_like_a_flat_file(ops):
    m = MemStorage()
    live = None  # the model: bytes a reader sees, bytes a restart keeps, unsynced writes
    durable = None
    pending = []
    for op in ops:
        if op[0] == "w":
            m.write("f", op[1], op[2])
            live = live if live is not None else bytearray()
            _put(live, op[1], op[2])
            pending.append((op[1], op[2]))
        elif op[0] == "r":
            got = m.read("f", op[1], op[2])
            assert got == (b"" if live is None else bytes(live[op[1] : op[1] + op[2]]))
        elif op[0] == "s":
            m.sync("f")
            if pending:
                durable = durable if durable is not None else bytearray()
                for o, d in pending:
                    _put(durable, o, d)
            pending = []
        elif op[0] == "R":
            m.replace("f", op[1])
            live, durable, pending = bytearray(op[1]), bytearray(op[1]), []
        else:
            mask = op[1]
            m.power_cycle(lambda i: mask >> (i % 8) & 1)
            if pending:
                d = durable if durable is not None else bytearray()
                for i, (o, data) in enumerate(pending):
                    if mask >> (i % 8) & 1:
                        _put(d, o, data)
                if durable is None and not d:
                    live = None  # never synced, nothing kept: the file never existed
                else:
                    durable, live = d, bytearray(d)
            pending = []
        assert m.load("f") == (None if live is None else bytes(live))
