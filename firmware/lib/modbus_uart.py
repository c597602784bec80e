"""Modbus RTU adapter for a board's machine.UART around edge.modbus_rtu.RtuClient.

`uart` is a configured machine.UART (8N1 at `baud`, RS-485 direction handled by the
board or the transceiver). Any object with any(), readinto(buf, n) and write(buf) works,
which is how the host tests drive this file over a pseudo-terminal in the unix port.
Bytes are timestamped as they are read, so the edge client can drop a stale partial
frame after 3.5 character times of silence.
"""

from edge.compat import sleep_ms as _sleep_ms
from edge.compat import ticks as _ticks
from edge.modbus_pdu import REPLY
from edge.modbus_rtu import RtuClient, gap_ms_for_baud


class UartLink:
    def __init__(self, uart, baud, timeout_ms=1000):
        self.uart = uart
        self.client = RtuClient(gap_ms_for_baud(baud), timeout_ms)
        self.req = bytearray(8)
        self.rx = bytearray(256)

    def read(self, unit, function, address, count, words, woff=0):
        """Read `count` registers into words[woff:]; returns when they are there or raises."""
        u = self.uart
        c = self.client
        rx = self.rx
        while u.any():  # drop a late reply to an earlier request before asking again
            u.readinto(rx, min(u.any(), len(rx)))
        c.request(self.req, unit, function, address, count, words, woff, _ticks())
        u.write(self.req)
        while True:
            k = u.any()
            if k:
                k = u.readinto(rx, min(k, len(rx)))
                if k and c.feed(rx, _ticks(), k) == REPLY:
                    return
            else:
                c.check(_ticks())
                _sleep_ms(1)
