"""RP2040 (Raspberry Pi Pico) boot: nothing to do. The flash filesystem (littlefs) is mounted
at / by the firmware; the agent keeps its queue and state in /data (config data_dir). The
console (USB CDC) carries the agent's log lines; UART0/UART1 serve the device and the module.
"""
