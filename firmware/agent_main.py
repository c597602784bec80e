"""The agent's asyncio loop, the same file on MicroPython (boards, unix port) and CPython.

Three tasks around one edge.agent.Agent (docs/agent.md):
  meter   polls the device every device.poll_interval_s of the metering clock (Modbus TCP
          socket or RTU serial port), feeds the reply bytes to the agent;
  radio   pumps the Wi-SUN module's UART both ways and runs the agent's timers (slot close
          of a silent device, ack timeouts, next frame);
  status  every status.every_s prints an `ev=status` line and, if status.file is set,
          rewrites that JSON file atomically (what `smeter status` reads).
This file is the runner and its wiring; clocks are in firmware/lib/clocks.py, ports in
firmware/lib/ports.py, files in firmware/lib/flash_store.py, board set-up in the board's own
module (firmware/lib/machine_board.py for esp32/rp2, firmware/boards/MPS2_AN385/modules/
board_mps2.py for the QEMU board). The agent itself only sees ints and bytes.
"""
import gc
import json
import sys

try:
    import asyncio
except ImportError:  # older MicroPython builds
    import uasyncio as asyncio

import flash_store
from clocks import SystemClock, wall_ms
from ports import SerialPort, TcpPort, open_serial

from edge.agent import Agent
from edge.compat import ticks
from edge.config import ConfigError, validate
from edge.errors import EdgeError

if hasattr(asyncio, "sleep_ms"):
    sleep_ms = asyncio.sleep_ms
else:

    def sleep_ms(ms):
        return asyncio.sleep(ms / 1000)


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
        self.heap_peak = 0  # largest live heap (gc.mem_alloc() after a collect) seen
        self.heap_size = gc.mem_free() + gc.mem_alloc() if hasattr(gc, "mem_free") else 0

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
                    n = self.meter.read()
                except OSError as e:
                    self.meter.close()
                    s, ms = c.now()
                    a.link_fault("link_" + _errname(e), s, ticks())
                    break
                s, ms = c.now()
                if n:
                    a.modbus_feed(self.meter.buf, n, ticks(), s, ms)
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
                                    "wisun", st["wisun_state"], "heap_peak", self.heap_peak,
                                    "heap_size", self.heap_size)
            if self.status_file:
                self.write_status()
            await sleep_ms(500)
            since += 500
        if self.status_file:
            self.write_status()

    def _sample_heap(self):
        """Largest live heap and lowest free heap after a collection: what live data takes
        and leaves free (a collect on a small heap takes well under a millisecond; it also
        keeps fragmentation down)."""
        if hasattr(gc, "mem_free"):
            gc.collect()
            f = gc.mem_free()
            a = gc.mem_alloc()
            if self.mem_free_min < 0 or f < self.mem_free_min:
                self.mem_free_min = f
            if a > self.heap_peak:
                self.heap_peak = a

    def write_status(self):
        s, ms = self.clock.now()
        st = self.agent.status(s)
        st["wall_ms"] = getattr(self.clock, "wall", wall_ms)()
        if hasattr(gc, "mem_free"):
            st["mem_free"] = gc.mem_free()
            st["mem_free_min"] = self.mem_free_min
            st["heap_peak"] = self.heap_peak
            st["heap_size"] = self.heap_size
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
                            "queue", st["queue_depth"], "mem_free_min", self.mem_free_min,
                            "heap_peak", self.heap_peak, "heap_size", self.heap_size)


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


def search_dirs(config_path, extra=()):
    ds = [_dirname(config_path)]
    ds.extend(extra)
    try:
        import os

        hw = os.getenv("SMETER_HW")
        if hw:
            ds.append(hw)
    except (ImportError, AttributeError):
        pass
    ds.extend(("hw", "/hw", "/flash/hw"))
    return ds


def build(config_path, storage_factory=None, sink=emit, t=0, hw_dirs=()):
    """Read and validate the config, resolve map and module profile (looked up beside the
    config, then in `hw_dirs`, $SMETER_HW, hw/), make the Agent."""
    with open(config_path) as f:
        raw = json.load(f)
    cfg = validate(raw)
    dirs = search_dirs(config_path, hw_dirs)
    map_obj = load_json_named(cfg["device"]["map"], "maps", dirs)
    profile = load_json_named(cfg["wisun"]["module"], "modules", dirs)
    data_dir = cfg["data_dir"]
    if not data_dir.startswith("/"):
        data_dir = _dirname(config_path) + "/" + data_dir
        cfg["data_dir"] = data_dir
    if storage_factory is None:
        storage_factory = flash_store.FlashStore
    storage = storage_factory(data_dir)
    agent = Agent(cfg, map_obj, profile, storage, sink, t)
    return cfg, agent


def main(config_path, clock=None, meter_port=None, radio_port=None, stop_at=None, data_heap=None,
         clock_synced=None, hw_dirs=(), sink=emit):
    """Run the agent until stop_at (edge seconds) or forever. Returns an exit code: 0 after a
    requested stop, 2 for a configuration error (printed, every bad field named)."""
    if clock is None:
        clock = SystemClock()
    if data_heap:
        free = _limit_heap(data_heap)
        emit("t=%d ev=heap_limited free=%d" % (clock.now()[0], free))
    s, ms = clock.now()
    gc.collect()  # the agent's buffers want contiguous blocks: start from a compacted heap
    try:
        cfg, agent = build(config_path, sink=sink, t=s, hw_dirs=hw_dirs)
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
