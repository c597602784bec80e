"""Board set-up for the ports with a `machine` module (esp32, rp2): from hw/boards/*.json
(copied to flash as board.json), machine.UART for Modbus RTU and for the Wi-SUN module as
preallocated-buffer streams (firmware/lib/ports.py), the RTC as metering clock."""
import json

from clocks import SystemClock
from ports import UartStream

import agent_main
from edge.config import validate


def board_setup(board_path, config_path):
    """Returns (cfg, clock, meter_port, radio_port, clock_synced)."""
    import machine

    with open(board_path) as f:
        board = json.load(f)
    with open(config_path) as f:
        cfg = validate(json.load(f))
    dev = cfg["device"]
    meter_port = None
    if dev["transport"] == "rtu":
        mu = board["modbus_uart"]
        u = machine.UART(mu["id"], baudrate=dev["baud"], tx=machine.Pin(mu["tx"]),
                         rx=machine.Pin(mu["rx"]))
        meter_port = UartStream(u)
    wu = board["wisun_uart"]
    w = machine.UART(wu["id"], baudrate=cfg["wisun"]["baud"], tx=machine.Pin(wu["tx"]),
                     rx=machine.Pin(wu["rx"]))
    radio_port = UartStream(w)
    # An RTC that was never set (no battery, no NTP) reads its reset year: frames then say
    # "clock unsynced" (edge/frame.py ST_CLOCK_UNSYNCED) until someone sets it.
    synced = machine.RTC().datetime()[0] >= board.get("rtc_valid_from_year", 2024)
    return cfg, SystemClock(), meter_port, radio_port, synced


def run_board(board_path="/board.json", config_path="/config.json"):
    """Entry point of firmware/<port>/main.py."""
    cfg, clock, meter_port, radio_port, synced = board_setup(board_path, config_path)
    return agent_main.main(config_path, clock=clock, meter_port=meter_port, radio_port=radio_port,
                           clock_synced=synced)
