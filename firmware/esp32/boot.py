"""ESP32 boot: quiet ROM debug output on UART0 (the console carries the agent's log lines).

The flash filesystem (littlefs) is mounted at / by the firmware before this runs; the agent
keeps its queue and state in /data (config data_dir). Wi-Fi is only needed for Modbus TCP:
put {"ssid": ..., "key": ...} in /wlan.json and it connects here.
"""
try:
    import esp

    esp.osdebug(None)
except ImportError:
    pass

try:
    import json

    with open("/wlan.json") as f:
        _w = json.load(f)
    import network

    _sta = network.WLAN(network.STA_IF)
    _sta.active(True)
    _sta.connect(_w["ssid"], _w["key"])
except (OSError, ImportError, KeyError, ValueError):
    pass  # no Wi-Fi configured: Modbus RTU only
