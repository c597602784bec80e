# Frozen into the MPS2-AN385 firmware: MicroPython's asyncio package (its C half, _asyncio,
# is enabled in mpconfigport.h), the agent (firmware/manifest.py) and this board's modules.
include("$(MPY_DIR)/extmod/asyncio")
include("../../manifest.py")
module("hostfs.py", base_path="modules")
module("board_mps2.py", base_path="modules")
