# Frozen into the MPS2-AN385 firmware: the agent (firmware/manifest.py: what a board runs and
# nothing else) and this board's modules. No asyncio: the agent's loop is a plain loop
# (firmware/agent_main.py).
include("../../manifest.py")
module("hostfs.py", base_path="modules")
module("board_mps2.py", base_path="modules")
