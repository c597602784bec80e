"""Modbus device emulators (PV inverter, EV charger, meter) and the shared simulated clock.

Importing this package pulls in nothing heavy: pymodbus is imported by server.py only.
"""
