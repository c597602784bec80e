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
