"""The collector server's socket: receive buffer sizing and the kernel's drop counter."""
import socket
import sys

import pytest

from host_tools.collector import server


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/net/udp is Linux's")
def test_kernel_drops_counts_what_the_full_buffer_refused():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a few datagrams' worth
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert server.kernel_drops(rx) == 0
    sent = 300
    for _ in range(sent):
        tx.sendto(bytes(40), rx.getsockname())
    got = 0
    try:
        while True:
            rx.recv(100)
            got += 1
    except BlockingIOError:
        pass
    assert 0 < got < sent
    assert server.kernel_drops(rx) == sent - got
    rx.close()
    tx.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux socket options")
def test_recv_buffer_is_what_the_kernel_granted():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    granted = server.set_recv_buffer(s, 8 << 20)
    assert granted == s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    with open("/proc/sys/net/core/rmem_max") as f:
        cap = int(f.read())
    # root (SO_RCVBUFFORCE) gets the size asked for, others at most rmem_max (Linux: doubled)
    assert granted >= 2 * min(8 << 20, cap)
    s.close()


def _pair(family, host):
    a = socket.socket(family, socket.SOCK_DGRAM)
    b = socket.socket(family, socket.SOCK_DGRAM)
    for s in (a, b):
        server.set_recv_buffer(s, 4 << 20)
        s.bind((host, 0))
        s.setblocking(False)
    return a, b


@pytest.mark.skipif(server._batchio is None, reason="_batchio not built (Linux, setup.py)")
@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_batch_io_matches_the_socket_module(family, host):
    """recvmmsg/sendmmsg give the bytes and addresses recvfrom and sendto give, and read
    every datagram whole (raw_len of a rejection is the true length)."""
    try:
        rx, tx = _pair(family, host)
    except OSError as e:
        pytest.skip("no %s loopback: %s" % (host, e))
    sizes = [0, 1, 31, 2048, 4097, 65507 if family == socket.AF_INET else 65527] + [40] * 200
    sent = [bytes([i & 255]) * n for i, n in enumerate(sizes)]
    for d in sent:
        tx.sendto(d, rx.getsockname())
    got = server._batchio.recv_batch(rx.fileno(), 10000)
    assert [d for d, a in got] == sent
    assert {a for d, a in got} == {tx.getsockname()}
    assert server._batchio.recv_batch(rx.fileno(), 10) == []
    # max_n is respected; the rest stays queued
    for d in sent[:100]:
        tx.sendto(d, rx.getsockname())
    assert len(server._batchio.recv_batch(rx.fileno(), 70)) == 70
    assert len(server._batchio.recv_batch(rx.fileno(), 70)) == 30
    # acks out: to the address the datagram came from, in order
    replies = [(tx.getsockname(), b"ack%d" % i) for i in range(150)]
    assert server._batchio.send_batch(rx.fileno(), replies) == []
    back = []
    while True:
        try:
            back.append(tx.recvfrom(100))
        except BlockingIOError:
            break
    assert back == [(d, rx.getsockname()) for a, d in replies]
    rx.close()
    tx.close()


@pytest.mark.skipif(server._batchio is None, reason="_batchio not built (Linux, setup.py)")
def test_send_acks_falls_back_and_logs_failures():
    rx, tx = _pair(socket.AF_INET, "127.0.0.1")
    logged = []
    replies = [(("not-an-address.invalid", 9), b"x"), (tx.getsockname(), b"ok"),
               (("localhost", tx.getsockname()[1]), b"by name")]
    server._send_acks(rx, replies, logged.append)  # the bad tuple is tried by sendto, logged
    assert len(logged) == 1 and "not-an-address" in logged[0]
    assert sorted(tx.recv(100) for _ in range(2)) == [b"by name", b"ok"]
    rx.close()
    tx.close()


def test_recv_all_without_batch_io(monkeypatch):
    """The one-by-one fallback reads the same datagrams whole."""
    monkeypatch.setattr(server, "_batchio", None)
    rx, tx = _pair(socket.AF_INET, "127.0.0.1")
    sent = [bytes(n) for n in (1, 4097, 65507)]
    for d in sent:
        tx.sendto(d, rx.getsockname())
    got = server.recv_all(rx, 100, bytearray(server.RECV_SIZE))
    assert [d for d, a in got] == sent
    rx.close()
    tx.close()


@pytest.mark.skipif(server._batchio is None, reason="_batchio not built (Linux, setup.py)")
def test_receiver_queues_what_recv_batch_reads():
    """The C receiver thread hands over the same datagrams and addresses as recv_batch, in
    order, take(n) at most n; one notification byte when the queue turns non-empty."""
    rx, tx = _pair(socket.AF_INET, "127.0.0.1")
    import os
    import time

    nr, nw = os.pipe()
    r = server.start_receiver(rx, nw, print, limit=10000)
    try:
        sent = [bytes([i & 255]) * n for i, n in enumerate([0, 1, 31, 2048, 65507] + [40] * 300)]
        for d in sent:
            tx.sendto(d, rx.getsockname())
        deadline = time.monotonic() + 10
        while len(r) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.read(nr, 100) == b"\0"  # once, however many arrived
        assert len(r.take(0)) == 0
        got = r.take(5) + r.take(10000)
        assert [d for d, a in got] == sent
        assert {a for d, a in got} == {tx.getsockname()}
        assert len(r) == 0 and r.take(10) == []
        tx.sendto(b"again", rx.getsockname())
        deadline = time.monotonic() + 10
        while not len(r) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.read(nr, 100) == b"\0"  # notified again once the queue was emptied
    finally:
        r.stop()
    assert r.take(10) == [(b"again", tx.getsockname())]  # what was queued stays after stop
    for fd in (nr, nw):
        os.close(fd)
    rx.close()
    tx.close()


_SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
addr = ("127.0.0.1", int(sys.argv[1]))
sys.stdin.read(1)
for i in range(int(sys.argv[2])):
    s.sendto(b"%040d" % i, addr)
    if i % 20 == 19:
        time.sleep(0.001)  # about 20,000 datagrams/s
"""


@pytest.mark.skipif(server._batchio is None, reason="_batchio not built (Linux, setup.py)")
def test_receiver_reads_while_the_server_holds_the_gil():
    """The server holds the GIL for as long as it verifies a batch. The receiver thread never
    needs it, so it keeps reading meanwhile and the kernel drops nothing; a thread that needs
    the GIL for each datagram (server.Drain) cannot read then, and a buffer of ~80 datagrams
    overflows (docs/collector.md has what it dropped)."""
    import os
    import subprocess
    import time

    n = 5000
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    nr, nw = os.pipe()
    r = server.start_receiver(rx, nw, print, limit=10 * n)
    p = subprocess.Popen([sys.executable, "-c", _SENDER, str(rx.getsockname()[1]), str(n)],
                         stdin=subprocess.PIPE)
    try:
        p.stdin.write(b"x")
        p.stdin.flush()
        t = time.monotonic()
        while p.poll() is None and time.monotonic() - t < 60:
            sum(range(3000000))  # holds the GIL (no bytecode runs inside) for ~50 ms
        p.wait(60)
        time.sleep(0.2)
        got = r.take(10 * n)
    finally:
        r.stop()
        os.close(nr)
        os.close(nw)
    drops = server.kernel_drops(rx)
    rx.close()
    assert len(got) + drops == n
    assert drops <= n // 100, "%d of %d dropped" % (drops, n)
    assert [d for d, a in got] == sorted(d for d, a in got)  # in order
