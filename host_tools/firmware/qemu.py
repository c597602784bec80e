"""Running the MPS2-AN385 firmware under qemu-system-arm as the agent (`smeter agent
--runtime qemu`, `smeter demo --runtime qemu`).

One QEMU process per agent: UART0 is the console (the launcher's start command goes in on
stdin, the agent's log lines come out on stdout), UART1 the Modbus RTU device's serial
port, UART2 the Wi-SUN module's; -semihosting gives the board its flash region (the
config's data_dir on the host) and its wall clock. A power cut is SIGKILL of QEMU itself:
the argv returned here execs QEMU in place of the shell, so the pid a supervisor holds is
QEMU's.
"""
import json
import os
import shutil

from host_tools.firmware import build as fw

ROOT = fw.ROOT
QEMU = "qemu-system-arm"


def available():
    """None when the board lane can run here, else the reason it cannot."""
    miss = fw.missing_tools("mps2-an385") + ([QEMU] if shutil.which(QEMU) is None else [])
    if miss:
        return "missing %s (bash scripts/install-debian-deps.sh)" % ", ".join(miss)
    try:
        fw.source_trees()
    except fw.BuildError as e:
        return str(e)
    return None


def qemu_argv(elf, modbus=None, wisun=None):
    """QEMU's argv; modbus/wisun: host serial devices (a pty path) for UART1/UART2."""
    argv = [QEMU, "-machine", "mps2-an385", "-nographic", "-monitor", "null", "-semihosting",
            "-serial", "stdio"]
    for i, path in enumerate((modbus, wisun)):
        if path:
            argv += ["-chardev", "serial,id=u%d,path=%s" % (i + 1, path), "-serial", "chardev:u%d" % (i + 1)]
        else:
            argv += ["-serial", "null"]
    return argv + ["-kernel", elf]


def raw_repl(code):
    """Bytes that make the REPL on UART0 run `code` (raw REPL: no echo)."""
    return b"\r\x03\x03\x01" + code.encode() + b"\x04"


def start_code(config, clock=None, until=None, for_s=None, exit_after=True):
    args = ["%r" % os.path.abspath(config), "hw=%r" % os.path.join(ROOT, "hw")]
    if clock:
        args.append("clock=%r" % os.path.abspath(clock))
    if until is not None:
        args.append("until=%d" % until)
    if for_s is not None:
        args.append("for_s=%d" % for_s)
    # An error that escapes the agent (a MemoryError while it starts on a small heap) ends
    # QEMU with status 1, so a supervisor sees the board die and restarts it.
    code = ("import smeter_board\ntry:\n    import board_mps2\n    r = board_mps2.run(%s)\n"
            "except Exception as e:\n    import sys\n    sys.print_exception(e)\n"
            "    smeter_board.exit(1)\n") % ", ".join(args)
    if exit_after:
        code += "smeter_board.exit(r)\n"
    return code


def command(config, clock=None, until=None, for_s=None, heap=None, progress=None):
    """(argv, env) that run the agent in QEMU: builds (or finds cached) the firmware, makes
    the config's data_dir on the host (semihosting cannot mkdir) and writes the start
    command beside the config."""
    rep = fw.build("mps2-an385", heap=heap, progress=progress)
    with open(config) as f:
        cfg = json.load(f)
    cdir = os.path.dirname(os.path.abspath(config))
    data_dir = cfg.get("data_dir", "data")
    os.makedirs(data_dir if data_dir.startswith("/") else os.path.join(cdir, data_dir), exist_ok=True)
    dev = cfg.get("device", {})
    if dev.get("transport") != "rtu":
        raise ValueError("the MPS2-AN385 board has no network: device.transport must be \"rtu\"")
    wisun = (cfg.get("wisun") or {}).get("serial")
    boot = os.path.join(cdir, ".qemu-start")
    with open(boot, "wb") as f:
        f.write(raw_repl(start_code(config, clock, until, for_s)))
    argv = qemu_argv(rep["firmware"], _abs(dev.get("port"), cdir), _abs(wisun, cdir))
    return ["/bin/sh", "-c", 'exec "$@" < "$0"', boot] + argv, dict(os.environ)


def _abs(path, base):
    if not path:
        return None
    return path if path.startswith("/") else os.path.join(base, path)


def run_code(code, elf=None, timeout=60, modbus=None, wisun=None):
    """Run `code` on a fresh board; returns (exit status, console text). The code ends QEMU
    with smeter_board.exit(n); a timeout kills QEMU (status None)."""
    import subprocess
    import tempfile

    elf = elf or fw.build("mps2-an385")["firmware"]
    with tempfile.TemporaryFile() as stdin:
        stdin.write(raw_repl(code))
        stdin.seek(0)
        p = subprocess.Popen(qemu_argv(elf, modbus, wisun), stdin=stdin, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        try:
            out, _ = p.communicate(timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            rc = None
    text = out.decode("utf-8", "replace").replace("\r\n", "\n")
    i = text.find("raw REPL; CTRL-B to exit\n>OK")
    return rc, text[i + 28:] if i >= 0 else text
