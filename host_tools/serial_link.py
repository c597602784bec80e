"""Modbus RTU over a host serial port (pyserial) around edge.modbus_rtu.RtuClient.

The host counterpart of firmware/lib/modbus_uart.py: bytes are read as they arrive and
timestamped, so the edge client applies the inter-frame silence itself.
"""
import time

import serial

from edge.modbus_pdu import REPLY
from edge.modbus_rtu import RtuClient, gap_ms_for_baud


def ticks_ms():
    return (time.monotonic_ns() // 1_000_000) & 0x3FFFFFFF


class SerialLink:
    def __init__(self, port, baud=9600, timeout_ms=1000, parity="N", stopbits=1):
        self.ser = serial.Serial(
            port, baudrate=baud, bytesize=8, parity=parity, stopbits=stopbits, timeout=0.005
        )
        self.client = RtuClient(gap_ms_for_baud(baud), timeout_ms)
        self.req = bytearray(8)

    def read(self, unit, function, address, count, words, woff=0):
        """Read `count` registers into words[woff:]; returns when they are there or raises."""
        c = self.client
        self.ser.reset_input_buffer()
        c.request(self.req, unit, function, address, count, words, woff, ticks_ms())
        self.ser.write(self.req)
        while True:
            data = self.ser.read(max(1, self.ser.in_waiting))
            if data and c.feed(data, ticks_ms()) == REPLY:
                return
            c.check(ticks_ms())

    def close(self):
        self.ser.close()
