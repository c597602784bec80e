# RP2040 (Pico) firmware with the agent frozen in: the port's own manifest plus ours.
#   make -C ports/rp2 BOARD=RPI_PICO FROZEN_MANIFEST=$PWD/firmware/rp2/manifest.py
include("$(PORT_DIR)/boards/manifest.py")
include("../manifest.py")
module("machine_board.py", base_path="../lib")
