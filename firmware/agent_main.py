"""The agent's asyncio loop, the same file on MicroPython (boards, unix port) and CPython.

Three tasks around one edge.agent.Agent (docs/agent.md):
  meter   polls the device every device.poll_interval_s of the metering clock (Modbus TCP
          socket or RTU serial port), feeds the reply bytes to the agent;
  radio   pumps the Wi-SUN module's UART both ways and runs the agent's timers (slot close
          of a silent device, ack timeouts, next frame);
  status  every status.every_s prints an `ev=status` line and, if status.file is set,
          rewrites that JSON file atomically (what `smeter status` reads).
Everything that touches a clock, a port or a file is here or in firmware/lib; the agent
itself only sees ints and bytes. Clocks: `ticks()` for protocol timeouts, and a metering
clock adapter giving edge seconds (edge/timebase.py): the system/RTC clock on boards, or
the shared simulated clock file of host_tools/emulator/simclock.py on the host.
"""
import gc
import json
import sys
import time

try:
    import asyncio
except ImportError:  # older MicroPython builds
    import uasyncio as asyncio

import flash_store
import uart_lines

from edge.agent import Agent
from edge.backoff import ticks_diff
from edge.config import ConfigError, validate
from edge.errors import EdgeError
from edge.timebase import EDGE_EPOCH_FROM_2000, EDGE_EPOCH_UNIX

IS_MP = sys.implementation.name == "micropython"

try:
    ticks = time.ticks_ms  # wraps at 2**30 on MicroPython, as edge/backoff.py expects
except AttributeError:

    def ticks():
        return (time.monotonic_ns() // 1000000) & 0x3FFFFFFF


if hasattr(asyncio, "sleep_ms"):
    sleep_ms = asyncio.sleep_ms
else:

    def sleep_ms(ms):
        return asyncio.sleep(ms / 1000)


def _wall_ms():
    if hasattr(time, "time_ns"):
        return time.time_ns() // 1000000
    return int(time.time() * 1000)


# ---- metering clocks ---------------------------------------------------------------------


class SystemClock:
    """time.time() of the host or the board's RTC: epoch 1970 (unix port, CPython) or 2000."""

    def __init__(self):
        self._off = EDGE_EPOCH_UNIX if time.gmtime(0)[0] == 1970 else EDGE_EPOCH_FROM_2000
        self.speed = (1, 1)

    def now(self):
        """(edge seconds, ms 0..999)"""
        ms = _wall_ms()
        return ms // 1000 - self._off, ms % 1000

    def real_ms_until(self, edge_s):
        s, ms = self.now()
        return (edge_s - s) * 1000 - ms


class SimFileClock:
    """The shared simulated clock (host_tools/emulator/simclock.py): one line
    `1 WALL_MS SIM_MS NUM DEN GEN ORIGIN_MS`; re-read at most every `refresh_ms` real ms."""

    def __init__(self, path, refresh_ms=100):
        self.path = path
        self.refresh_ms = refresh_ms
        self._vals = None
        self._read_at = 0
        self._load()

    def _load(self):
        try:
            with open(self.path) as f:
                parts = f.read().split()
            v = [int(p) for p in parts]
            if len(v) == 7 and v[0] == 1 and v[4] > 0 and v[3] >= 0:
                self._vals = v
        except (OSError, ValueError):
            pass  # keep the last good line; a rewrite is an atomic rename, so this is rare
        if self._vals is None:
            raise OSError("no valid clock line in " + self.path)
        self._read_at = ticks()

    @property
    def speed(self):
        return (self._vals[3], self._vals[4])

    def sim_ms(self):
        if ticks_diff(ticks(), self._read_at) >= self.refresh_ms:
            self._load()
        v = self._vals
        w = _wall_ms()
        if w <= v[1]:
            return v[2]
        return v[2] + (w - v[1]) * v[3] // v[4]

    def now(self):
        ms = self.sim_ms()
        return ms // 1000, ms % 1000

    def real_ms_until(self, edge_s):
        v = self._vals
        if v[3] == 0:
            return 50
        return (edge_s * 1000 - self.sim_ms()) * v[4] // v[3]


# ---- ports -------------------------------------------------------------------------------


class TcpPort:
    """A Modbus TCP connection with non-blocking reads; reconnects on the next poll."""

    def __init__(self, host, port, timeout_ms):
        self.addr = (host, port)
        self.timeout_ms = timeout_ms
        self.sock = None
        self.buf = bytearray(260)

    def ensure(self):
        if self.sock is not None:
            return
        import select
        import socket

        addr = socket.getaddrinfo(self.addr[0], self.addr[1], 0, socket.SOCK_STREAM)[0][-1]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(self.timeout_ms / 1000)
        try:
            s.connect(addr)
        except BaseException:
            s.close()
            raise
        s.setblocking(False)
        self._poll = select.poll()
        self._poll.register(s, select.POLLIN)
        self._recv = getattr(s, "recv_into", None) or s.readinto
        self.sock = s

    def write(self, data):
        self.sock.send(bytes(data))

    def read(self):
        """(buffer, n): n bytes arrived (0: none yet). OSError when the peer closed."""
        if not self._poll.poll(0):
            return self.buf, 0
        try:
            n = self._recv(self.buf)
        except OSError as e:
            if e.args and e.args[0] in (11, 110):
                return self.buf, 0
            raise
        if n is None:
            return self.buf, 0
        if n == 0:
            raise OSError("connection closed by the device")
        return self.buf, n

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


class SerialPort:
    """A byte port over firmware/lib/uart_lines.py (pty/tty path on a host, machine.UART on a
    board); read() gives (buffer, n) like TcpPort. Given a callable instead of a port, it opens
    the port on first use and again after a failure (a pty that appears later)."""

    def __init__(self, port):
        self.port = None if callable(port) else port
        self.opener = port if callable(port) else None

    def ensure(self):
        if self.port is None:
            self.port = self.opener()

    def write(self, data):
        self.port.write(data)

    def read(self):
        b = self.port.read_available(0)
        return b, len(b)

    def close(self):
        if self.opener is not None:
            self.port = None


def open_serial(path_or_uart, baud=9600):
    """A uart_lines port: a path opens a pty/tty raw; anything else is a machine.UART-like."""
    if not isinstance(path_or_uart, str):
        return uart_lines.UartPort(path_or_uart, time.sleep_ms)
    try:
        f = open(path_or_uart, "r+b", buffering=0)
    except TypeError:
        f = open(path_or_uart, "r+b")
    try:
        import termios

        if hasattr(termios, "setraw"):
            termios.setraw(f.fileno())
        else:
            import tty

            tty.setraw(f.fileno())
    except (ImportError, OSError):
        pass  # not a tty (e.g. a test pipe)
    return uart_lines.StreamPort(f)


class PaddedFlashStore(flash_store.FlashStore):
    """FlashStore whose write() pads a gap before `offset` in small zero blocks: the base
    class pads with one bytes(gap) allocation, which for the slot ring's first record near
    the end of the file is several KB at once (a MemoryError in a 32 KB heap)."""

    _ZERO = bytes(128)

    def write(self, name, offset, data):
        f = self._open(name, True)
        end = f.seek(0, 2)
        z = self._ZERO
        while end < offset:
            n = offset - end
            f.write(z if n >= len(z) else z[:n])
            end += len(z) if n >= len(z) else n
        f.seek(offset)
        f.write(data)


# ---- the loop ----------------------------------------------------------------------------


def emit(line):
    sys.stdout.write(line + "\n")
    fl = getattr(sys.stdout, "flush", None)
    if fl is not None:
        fl()


class Runner:
    def __init__(self, agent, clock, meter_port, radio_port, status_file=None, status_every_s=60,
                 stop_at=None):
        self.agent = agent
        self.clock = clock
        self.meter = meter_port
        self.radio = radio_port
        self.status_file = status_file
        self.status_every_s = status_every_s
        self.stop_at = stop_at  # edge second at which to stop (tests, demo); None: never
        self.running = True
        self.mem_free_min = -1  # lowest free heap seen by the status task (MicroPython)

    async def guarded(self, name, body):
        """Run a task body forever: an unexpected error (MemoryError on a tight heap, a bug)
        is counted as fault `internal_<name>` and the task starts over; the agent never exits."""
        while self.running:
            try:
                await body()
            except Exception as e:
                gc.collect()
                s, ms = self.clock.now()
                self.agent.log.fault("internal_" + name, s, type(e).__name__)
                await sleep_ms(100)

    async def meter_task(self):
        a = self.agent
        c = self.clock
        while self.running:
            s, ms = c.now()
            if self.stop_at is not None and s >= self.stop_at:
                self.running = False
                return
            if not a.poll_due(s):
                wait = c.real_ms_until(a.next_poll)
                await sleep_ms(1 if wait < 1 else (20 if wait > 20 else wait))
                continue
            try:
                self.meter.ensure()
                req = a.start_poll(s, ms, ticks())
                self.meter.write(req)
            except OSError as e:
                self.meter.close()
                a.link_fault("link_" + _errname(e), s, ticks())
                await sleep_ms(5)
                continue
            while a.modbus_busy():
                await sleep_ms(1)
                try:
                    buf, n = self.meter.read()
                except OSError as e:
                    self.meter.close()
                    s, ms = c.now()
                    a.link_fault("link_" + _errname(e), s, ticks())
                    break
                s, ms = c.now()
                if n:
                    a.modbus_feed(buf, n, ticks(), s, ms)
                else:
                    a.modbus_check(ticks(), s)

    async def radio_task(self):
        a = self.agent
        c = self.clock
        port = self.radio
        while self.running:
            s, ms = c.now()
            data = b""
            if port is None or callable(port):
                try:
                    port = self.radio()  # open the module's port (again)
                    a.radio_opened(ticks(), s)
                except OSError as e:
                    a.log.fault("radio_open_" + _errname(e), s)
                    a.service(ticks(), s)  # slots still close while the module is away
                    await sleep_ms(1000)
                    port = self.radio
                    continue
            try:
                out = a.service(ticks(), s)
                if out:
                    port.write(out)
                data = port.read_available(0)
                if data:
                    a.wisun_feed(data, ticks(), s)
                    out = a.service(ticks(), s)
                    if out:
                        port.write(out)
            except OSError as e:
                a.log.fault("radio_" + _errname(e), s)
                if callable(self.radio):
                    try:
                        port.f.close()
                    except (AttributeError, OSError):
                        pass
                    port = self.radio  # reopen on the next turn
                await sleep_ms(100)
            await sleep_ms(2 if data else 5)

    async def status_task(self):
        every = self.status_every_s * 1000
        since = every
        while self.running:
            self._sample_heap()
            if since >= every:
                since = 0
                s, ms = self.clock.now()
                st = self.agent.status(s)
                c = st["counters"]
                self.agent.log.line(s, "status", "polls", c["polls"], "faults", c["faults"],
                                    "slots", c["slots_closed"], "sent", c["frames_sent"],
                                    "acked", c["frames_acked"], "queue", st["queue_depth"],
                                    "wisun", st["wisun_state"])
            if self.status_file:
                self.write_status()
            await sleep_ms(500)
            since += 500
        if self.status_file:
            self.write_status()

    def _sample_heap(self):
        """Lowest free heap after a collection: what live data leaves free (a collect on a
        small heap takes well under a millisecond; it also keeps fragmentation down)."""
        if hasattr(gc, "mem_free"):
            gc.collect()
            f = gc.mem_free()
            if self.mem_free_min < 0 or f < self.mem_free_min:
                self.mem_free_min = f

    def write_status(self):
        s, ms = self.clock.now()
        st = self.agent.status(s)
        st["wall_ms"] = _wall_ms()
        if hasattr(gc, "mem_free"):
            st["mem_free"] = gc.mem_free()
            st["mem_free_min"] = self.mem_free_min
        tmp = self.status_file + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(st, f)  # streamed: no whole-document string on a small heap
            import os

            os.rename(tmp, self.status_file)
        except OSError:
            pass  # status is best effort; metering never depends on it

    async def run(self):
        tasks = [asyncio.create_task(self.guarded("meter", self.meter_task)),
                 asyncio.create_task(self.guarded("radio", self.radio_task)),
                 asyncio.create_task(self.guarded("status", self.status_task))]
        while self.running:
            await sleep_ms(50)
        await sleep_ms(600)
        for t in tasks:
            t.cancel()
        s, ms = self.clock.now()
        st = self.agent.status(s)
        c = st["counters"]
        self.agent.log.line(s, "stop", "polls", c["polls"], "faults", c["faults"],
                            "slots", c["slots_closed"], "acked", c["frames_acked"],
                            "queue", st["queue_depth"], "mem_free_min", self.mem_free_min)


def _errname(e):
    a = getattr(e, "args", None)
    if a and isinstance(a[0], int):
        return "errno_%d" % a[0]
    return "oserror"


# ---- start-up ----------------------------------------------------------------------------


def _dirname(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else "."


def load_json_named(value, kind, search):
    """An inline object, or NAME / path resolved in `search` dirs (NAME.json in <dir>/<kind>/)."""
    if isinstance(value, dict):
        return value
    cands = []
    if value.endswith(".json"):
        cands.append(value)
        for d in search:
            cands.append(d + "/" + value)
    else:
        for d in search:
            cands.append(d + "/" + kind + "/" + value + ".json")
            cands.append(d + "/" + value + ".json")
    for p in cands:
        try:
            with open(p) as f:
                return json.load(f)
        except OSError:
            continue
    raise ConfigError([(kind, "%r not found (looked in %s)" % (value, ", ".join(search)))])


def search_dirs(config_path, cfg_obj):
    ds = [_dirname(config_path)]
    try:
        import os

        hw = os.getenv("SMETER_HW")
        if hw:
            ds.append(hw)
    except (ImportError, AttributeError):
        pass
    ds.extend(("hw", "/hw", "/flash/hw"))
    return ds


def build(config_path, storage_factory=None, sink=emit, t=0):
    """Read and validate the config, resolve map and module profile, make the Agent."""
    with open(config_path) as f:
        raw = json.load(f)
    cfg = validate(raw)
    dirs = search_dirs(config_path, raw)
    map_obj = load_json_named(cfg["device"]["map"], "maps", dirs)
    profile = load_json_named(cfg["wisun"]["module"], "modules", dirs)
    data_dir = cfg["data_dir"]
    if not data_dir.startswith("/"):
        data_dir = _dirname(config_path) + "/" + data_dir
        cfg["data_dir"] = data_dir
    if storage_factory is None:
        storage_factory = PaddedFlashStore
    storage = storage_factory(data_dir)
    agent = Agent(cfg, map_obj, profile, storage, sink, t)
    return cfg, agent


def main(config_path, clock=None, meter_port=None, radio_port=None, stop_at=None, data_heap=None,
         clock_synced=None):
    """Run the agent until stop_at (edge seconds) or forever. Returns an exit code: 0 after a
    requested stop, 2 for a configuration error (printed, every bad field named)."""
    if clock is None:
        clock = SystemClock()
    if data_heap:
        free = _limit_heap(data_heap)
        emit("t=%d ev=heap_limited free=%d" % (clock.now()[0], free))
    s, ms = clock.now()
    try:
        cfg, agent = build(config_path, t=s)
    except ConfigError as e:
        for field, msg in e.problems:
            emit("t=%d ev=config_error field=%s msg=%s" % (s, field, msg.replace(" ", "_")))
        return 2
    except (EdgeError, ValueError, OSError) as e:
        # unreadable config or map file, or storage that cannot be opened
        emit("t=%d ev=start_error kind=%s msg=%s" % (
            s, getattr(e, "kind", type(e).__name__), str(e).replace(" ", "_")))
        return 2
    if clock_synced is not None:
        agent.clock_synced = cfg["clock_synced"] and clock_synced
    dev = cfg["device"]
    if meter_port is None:
        if dev["transport"] == "tcp":
            meter_port = TcpPort(dev["host"], dev["port"], dev["timeout_ms"])
        else:
            meter_port = SerialPort(lambda: open_serial(dev["port"], dev["baud"]))
    if radio_port is None:
        w = cfg["wisun"]
        radio_port = lambda: open_serial(w["serial"], w["baud"])  # noqa: E731 (opened lazily)
    st = cfg["status"]
    sf = st["file"]
    if sf and not sf.startswith("/"):
        sf = cfg["data_dir"] + "/" + sf
    gc.collect()
    r = Runner(agent, clock, meter_port, radio_port, sf, st["every_s"], stop_at)
    asyncio.run(r.run())
    return 0


# ---- boards (firmware/esp32, firmware/rp2) ------------------------------------------------


def board_setup(board_path, config_path):
    """Ports and clock of a board from its hw/boards/*.json (copied to flash as board.json):
    machine.UART for Modbus RTU and for the Wi-SUN module, the RTC as metering clock.
    Returns (cfg, clock, meter_port, radio_port, clock_synced)."""
    import machine

    with open(board_path) as f:
        board = json.load(f)
    with open(config_path) as f:
        cfg = validate(json.load(f))
    dev = cfg["device"]
    meter_port = None
    if dev["transport"] == "rtu":
        mu = board["modbus_uart"]
        u = machine.UART(mu["id"], baudrate=dev["baud"], tx=machine.Pin(mu["tx"]),
                         rx=machine.Pin(mu["rx"]))
        meter_port = SerialPort(uart_lines.UartPort(u, time.sleep_ms))
    wu = board["wisun_uart"]
    w = machine.UART(wu["id"], baudrate=cfg["wisun"]["baud"], tx=machine.Pin(wu["tx"]),
                     rx=machine.Pin(wu["rx"]))
    radio_port = uart_lines.UartPort(w, time.sleep_ms)
    # An RTC that was never set (no battery, no NTP) reads its reset year: frames then say
    # "clock unsynced" (edge/frame.py ST_CLOCK_UNSYNCED) until someone sets it.
    synced = machine.RTC().datetime()[0] >= board.get("rtc_valid_from_year", 2024)
    return cfg, SystemClock(), meter_port, radio_port, synced


def run_board(board_path="/board.json", config_path="/config.json"):
    """Entry point of firmware/<port>/main.py."""
    cfg, clock, meter_port, radio_port, synced = board_setup(board_path, config_path)
    return main(config_path, clock=clock, meter_port=meter_port, radio_port=radio_port,
                clock_synced=synced)


def _limit_heap(nbytes):
    """Leave exactly `nbytes` of free heap, in one piece, like a board whose code is frozen in
    flash: the unix port keeps imported bytecode in its heap, a board does not. Reserve the
    budget, fill every other free byte (the holes the imports left, then the rest) with
    ballast, release the reserve. Returns the free heap afterwards."""
    if not hasattr(gc, "mem_free"):
        return -1
    gc.collect()
    slots = [None] * 2048
    reserve = bytearray(nbytes)
    i = 0
    chunk = 65536
    while chunk >= 16 and i < len(slots):
        try:
            slots[i] = bytearray(chunk)
            i += 1
        except MemoryError:
            chunk //= 2
    _BALLAST[0] = slots  # never freed
    reserve = None
    gc.collect()
    return gc.mem_free()


_BALLAST = [None]
