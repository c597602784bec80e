"""firmware/esp32/main.py and firmware/rp2/main.py inside the real MicroPython unix port.

No board runs here, so this is the ONE place a stand-in is used: a `machine` module providing
only what the unix port lacks and the entry points use (Pin, UART, RTC). Everything else is
real: the unix port, the agent, flash_store on a real directory, the board JSON from hw/boards.
The test imports main.py, runs its setup() (UARTs, RTC, clock state), builds the agent from the
config, and runs one service turn: the Wi-SUN driver's first command reaches the module UART.
"""
import json
import os
import shutil

import pytest

from conftest import ROOT, run_micropython

FAKE_MACHINE = '''
"""Stand-in for the board-only parts of `machine` (tests/host/test_firmware_boards.py)."""
LOG = []


class Pin:
    def __init__(self, n, *a, **k):
        self.n = n


class UART:
    def __init__(self, id, baudrate=9600, tx=None, rx=None, **k):
        self.id = id
        self.baudrate = baudrate
        self.tx = tx.n
        self.rx = rx.n
        self.out = bytearray()
        LOG.append(self)

    def any(self):
        return 0

    def read(self, n=-1):
        return None

    def readinto(self, buf, n=-1):
        return 0

    def write(self, data):
        self.out += data
        return len(data)


class RTC:
    def datetime(self, *a):
        return (2026, 6, 21, 6, 12, 0, 0, 0)
'''

SCRIPT = '''
import sys
import machine
import main
main.BOARD = sys.argv[1]
main.CONFIG = sys.argv[2]
cfg, clock, meter, radio, synced = main.setup()
import agent_main
cfg2, agent = agent_main.build(main.CONFIG, sink=lambda line: None)
s, ms = clock.now()
radio.write(agent.service(100, s))
u = machine.LOG
print("UARTS", [(x.id, x.baudrate, x.tx, x.rx) for x in u])
print("SYNCED", synced, "EPOCH_OK", 200000000 < s < 400000000)
print("WISUN", bytes(u[-1].out))
print("STATUS", agent.status(s)["wisun_state"], agent.status(s)["queue_depth"])
'''


@pytest.mark.micropython
@pytest.mark.parametrize("port,board", [("esp32", "esp32_devkitc"), ("rp2", "rp2_pico")])
def test_board_main_imports_and_sets_up_under_the_unix_port(tmp_path, port, board):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "machine.py").write_text(FAKE_MACHINE)
    shutil.copy(os.path.join(ROOT, "hw", "boards", board + ".json"), tmp_path / "board.json")
    with open(os.path.join(ROOT, "firmware", "unix", "agent.example.json")) as f:
        cfg = json.load(f)
    cfg["device"] = {"map": "sunspec_meter_203", "transport": "rtu", "port": "uart", "baud": 19200,
                     "unit": 3}
    cfg["wisun"]["serial"] = "uart"
    cfg["data_dir"] = str(tmp_path / "data")
    with open(tmp_path / "config.json", "w") as f:
        json.dump(cfg, f)
    (tmp_path / "hw").symlink_to(os.path.join(ROOT, "hw"))
    script = tmp_path / "boot_check.py"
    script.write_text(SCRIPT)
    proc = run_micropython([str(script), str(tmp_path / "board.json"), str(tmp_path / "config.json")],
                           heap="512K", cwd=str(tmp_path),
                           extra_paths=[str(fake), os.path.join(ROOT, "firmware", port),
                                        os.path.join(ROOT, "firmware"),
                                        os.path.join(ROOT, "firmware", "lib")])
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 0, out
    with open(tmp_path / "board.json") as f:
        b = json.load(f)
    mu, wu = b["modbus_uart"], b["wisun_uart"]
    assert "UARTS [(%d, 19200, %d, %d), (%d, 115200, %d, %d)]" % (
        mu["id"], mu["tx"], mu["rx"], wu["id"], wu["tx"], wu["rx"]) in out, out
    assert "SYNCED True EPOCH_OK True" in out, out
    assert "WISUN b'SKRESET\\r\\n'" in out, out
    assert "STATUS reset 0" in out, out
    assert os.path.isdir(tmp_path / "data")
