# ESP32 firmware with the agent frozen in: the port's own manifest plus ours.
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=$PWD/firmware/esp32/manifest.py
include("$(PORT_DIR)/boards/manifest.py")
include("../manifest.py")
module("machine_board.py", base_path="../lib")
