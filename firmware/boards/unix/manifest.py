# Frozen into the unix port built by `smeter firmware build --board unix`: asyncio and the
# agent, nothing else (the standard variant's own manifest wants mip-cmdline and ssl).
include("$(MPY_DIR)/extmod/asyncio")
include("../../manifest.py")
