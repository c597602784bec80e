# Freeze the agent into MicroPython firmware (micropython-lib manifest syntax): the edge core,
# the board adapters and the asyncio loop. A board manifest includes this one, e.g.
# firmware/esp32/manifest.py; docs/flashing.md has the build commands.
# tests/host/test_firmware_manifest.py checks that every edge module is named here.
metadata(version="0.1.0", description="smeter special-meter (特例計量器) agent", license="MIT")

package("edge", base_path="..")
module("agent_main.py")
module("clocks.py", base_path="lib")
module("ports.py", base_path="lib")
module("flash_store.py", base_path="lib")
module("uart_lines.py", base_path="lib")
module("modbus_uart.py", base_path="lib")
module("modbus_socket.py", base_path="lib")
