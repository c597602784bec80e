"""Portable metering core: runs unchanged on MicroPython and CPython.

Nothing in this package touches a UART, a socket, a file or the clock; adapters in
firmware/ and host_tools/ do the I/O and feed bytes and integers in.
"""
