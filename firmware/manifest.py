# Freeze the agent into MicroPython firmware (micropython-lib manifest syntax): what the agent
# runs on a board and nothing else, the way micropython-lib splits a package with require()
# so a board installs only what it uses. A board manifest includes this one, e.g.
# firmware/esp32/manifest.py; docs/flashing.md has the build commands.
#
# Host-only modules stay out (frozen code costs flash, and imported code costs heap):
#   edge/replay_core.py      the replay CLI's core (host_tools/replay_cmd.py compiles it itself)
#   edge/memstore.py         MemStorage, RAM storage with simulated power cuts (tests)
#   lib/uart_lines.py        the Wi-SUN driver pump the host tests use (the agent uses ports.py)
# tests/host/test_firmware_manifest.py checks that every module a board entry point imports,
# directly or inside a function, is frozen here, and that nothing else of edge/ is.
metadata(version="0.1.0", description="smeter special-meter (特例計量器) agent", license="MIT")

package(
    "edge",
    files=[
        "__init__.py",
        "agent.py",
        "agent_log.py",
        "backoff.py",
        "cbor.py",
        "clock_sync.py",
        "compat.py",
        "config.py",
        "crc.py",
        "errors.py",
        "flags.py",
        "frame.py",
        "int31.py",
        "integrator.py",
        "mac.py",
        "modbus_pdu.py",
        "modbus_rtu.py",
        "modbus_tcp.py",
        "p256.py",
        "persist.py",
        "reading.py",
        "regmap.py",
        "seal.py",
        "sealing.py",
        "slot_queue.py",
        "slots.py",
        "timebase.py",
        "wisun.py",
        "wisun_lines.py",
    ],
    base_path="..",
)
module("agent_main.py")
module("clocks.py", base_path="lib")
module("ports.py", base_path="lib")
module("flash_store.py", base_path="lib")
