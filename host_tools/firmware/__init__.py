"""Building MicroPython with the agent frozen (build.py) and running it under QEMU (qemu.py)."""
