"""ESP32 entry point: the agent on machine.UART (Modbus RTU, Wi-SUN module), the RTC and the
flash filesystem. Pins come from /board.json (a copy of hw/boards/esp32_devkitc.json or your
own), settings from /config.json (docs/config.md). Flashing: docs/flashing.md.
"""
import machine_board

BOARD = "/board.json"
CONFIG = "/config.json"


def setup():
    """Ports and clock without running the loop (used by tests/host/test_firmware_boards.py)."""
    return machine_board.board_setup(BOARD, CONFIG)


if __name__ == "__main__":
    machine_board.run_board(BOARD, CONFIG)
