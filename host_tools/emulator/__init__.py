"""Emulators of what the agent talks to, and the shared simulated clock: Modbus devices (PV
inverter, EV charger, meter: device.py, server.py, runner.py) and the Wi-SUN radio module
(wisun_module.py, wisun_faults.py, wisun_link.py).

Importing this package pulls in nothing heavy: pymodbus is imported by server.py only.
"""
