# Frozen into the unix port built by `smeter firmware build --board unix`: the agent, nothing
# else (the standard variant's own manifest wants mip-cmdline and ssl).
include("../../manifest.py")
