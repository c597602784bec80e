"""Start-up of the project's MPS2-AN385 board (Cortex-M3 under qemu-system-arm).

    import board_mps2; board_mps2.run(config, clock=..., hw=..., wall_ms=..., until=...)

is what the launcher (host_tools/firmware/qemu.py) types into the raw REPL on UART0. Paths
are host paths: the host filesystem is mounted at /host through semihosting (hostfs.py), so
the agent's data_dir (its flash region), the config and the shared simulated clock file are
the host's files. Modbus RTU is UART1, the Wi-SUN module UART2 (QEMU's 2nd and 3rd -serial),
both as preallocated-buffer streams; agent log lines go out on UART0 (QEMU's stdout).
"""
import sys
import vfs

import smeter_board
from clocks import SimFileClock, SystemClock
from hostfs import HostFS
from ports import UartStream

import agent_main

MODBUS_UART = 1
WISUN_UART = 2
HOST = "/host"


def emit(line):
    sys.stdout.write(line)
    sys.stdout.write("\n")


def mount_host():
    try:
        vfs.mount(HostFS(""), HOST)
    except OSError:
        pass  # already mounted (a second run in the same boot)


def clock_for(clock=None, wall_ms=None):
    """The metering clock: the shared simulated clock file, or host wall time (epoch 1970)."""
    if wall_ms is not None:
        smeter_board.set_wall_ms(wall_ms)
    else:
        smeter_board.sync_wall(1100)
    if clock:
        return SimFileClock(HOST + clock, wall=smeter_board.wall_ms)
    return SystemClock(wall=smeter_board.wall_ms, epoch_year=1970)


def run(config, clock=None, hw=None, wall_ms=None, until=None, for_s=None):
    """Run the agent; returns agent_main.main's exit code (0 after `until`, 2 bad config)."""
    mount_host()
    try:
        clk = clock_for(clock, wall_ms)
    except OSError as e:
        emit("t=0 ev=start_error kind=clock msg=%s" % str(e).replace(" ", "_"))
        return 2
    if for_s is not None:
        until = clk.now()[0] + for_s
    meter = UartStream(smeter_board.UART(MODBUS_UART))
    radio = UartStream(smeter_board.UART(WISUN_UART))
    hw_dirs = (HOST + hw,) if hw else ()
    return agent_main.main(HOST + config, clock=clk, meter_port=meter, radio_port=radio,
                           stop_at=until, hw_dirs=hw_dirs, sink=emit, sleep=smeter_board.sleep_ms)
