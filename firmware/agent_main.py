"""The agent's loop, the same file on MicroPython (boards, unix port) and CPython.

One plain loop around one edge.agent.Agent (docs/agent.md) takes three turns in order, each
when its own wait has passed, then sleeps until the nearest one is due:
  meter   polls the device every device.poll_interval_s of the metering clock (Modbus TCP
          socket or RTU serial port) and feeds the reply bytes to the agent;
  radio   pumps the Wi-SUN module's UART both ways and runs the agent's timers (slot close
          of a silent device, ack timeouts, next frame);
  status  twice a second samples the heap; every status.every_s prints an `ev=status` line
          and, if status.file is set, rewrites that JSON file atomically (`smeter status`).
No asyncio: every port is non-blocking, so a loop of turns does the job without the event
loop's code and task objects on the heap (about 3 KB on a 32-bit board, docs/flashing.md).
This file is the runner and its wiring; clocks are in firmware/lib/clocks.py, ports in
firmware/lib/ports.py, files in firmware/lib/flash_store.py, board set-up in the board's own
module (firmware/lib/machine_board.py for esp32/rp2, firmware/boards/MPS2_AN385/modules/
board_mps2.py for the QEMU board). The agent itself only sees ints and bytes.
"""
import gc
import json
import sys

import flash_store
from clocks import SystemClock, wall_ms
from ports import SerialPort, TcpPort

from edge.agent import Agent, uplink_profile
from edge.compat import sleep_ms, ticks, ticks_add, ticks_diff
from edge.config import ConfigError, validate
from edge.errors import EdgeError
from edge.regmap import compile_map

_IDLE_MS = 20  # the longest sleep between turns
_REPLY_WAIT_MS = 3  # a poll's first read waits this long for the reply, the loop blocked
_TURNS = ("meter", "radio", "status")


# ---- the loop ----------------------------------------------------------------------------


def emit(line):
    sys.stdout.write(line + "\n")
    fl = getattr(sys.stdout, "flush", None)
    if fl is not None:
        fl()


class Runner:
    def __init__(self, agent, clock, meter_port, radio_port, status_file=None, status_every_s=60,
                 stop_at=None, sleep=sleep_ms):
        self.agent = agent
        self.sleep = sleep  # the idle wait between turns (a board's may sleep the CPU)
        self.clock = clock
        self.meter = meter_port
        self.radio = radio_port
        self.status_file = status_file
        self.status_every_s = status_every_s
        self.stop_at = stop_at  # edge second at which to stop (tests, demo); None: never
        self.running = True
        self.mem_free_min = -1  # lowest free heap seen by the status turn (MicroPython)
        self.heap_peak = 0  # largest live heap (gc.mem_alloc() after a collect) seen
        self.heap_size = gc.mem_free() + gc.mem_alloc() if hasattr(gc, "mem_free") else 0
        self._since = status_every_s * 1000  # ms since the last status line: one at once
        self._reply_wait = 0  # ms the next meter read may wait (a request just went out)
        self._mt = [0, 0]

    def now(self):
        """The metering clock: the board's clock corrected by the agent's clock sync."""
        s, ms = self.clock.now()
        mt = self._mt
        self.agent.clock.meter_into(s, ms, mt)
        return mt[0], mt[1]

    def turn(self, which):
        """Turn `which` (0 meter, 1 radio, 2 status); returns ms until it is due again. An
        unexpected error (a MemoryError on a tight heap, a bug) is counted as fault
        `internal_<name>` and the turn comes again after 100 ms; the agent never exits."""
        try:
            if which == 0:
                return self.meter_step()
            if which == 1:
                return self.radio_step()
            return self.status_step()
        except Exception as e:
            gc.collect()
            try:
                s, ms = self.now()
                self.agent.log.fault("internal_" + _TURNS[which], s, type(e).__name__)
            except Exception:
                pass  # no heap even for that: the turn simply comes again
            return 100

    def meter_step(self):
        """Finish the outstanding poll, or start one when it is due."""
        a = self.agent
        c = self.clock
        if a.modbus_busy():
            try:
                # The first read after a request waits for the reply before the other turns
                # run: the reading's time window (stamp to reply) is then the device's round
                # trip, not a loop turn (docs/agent.md "Boundary polls").
                n = self.meter.read(self._reply_wait)
                self._reply_wait = 0
            except OSError as e:
                self.meter.close()
                s, ms = self.now()
                a.link_fault("link_" + _errname(e), s, ticks())
                return 1
            s, ms = self.now()
            if n:
                a.modbus_feed(self.meter.buf, n, ticks(), s, ms)
            else:
                a.modbus_check(ticks(), s)
            return 1
        s, ms = self.now()
        if self.stop_at is not None and s >= self.stop_at:
            self.running = False
            return 1
        if not a.poll_due(s):
            wait = c.real_ms_until(a.clock.raw_s(a.next_poll))
            return 1 if wait < 1 else (_IDLE_MS if wait > _IDLE_MS else wait)
        try:
            self.meter.ensure()
            k = self.meter.discard()
            if k:
                a.log.count("modbus_stale_bytes", k)
            req = a.start_poll(s, ms, ticks())
            self.meter.write(req)
            self._reply_wait = _REPLY_WAIT_MS
        except OSError as e:
            self.meter.close()
            a.link_fault("link_" + _errname(e), s, ticks())
            return 5
        return 1

    def radio_step(self):
        """Open the module's port if it is closed, run the agent's timers, move the bytes."""
        a = self.agent
        port = self.radio
        s, ms = self.now()
        try:
            if port.ensure():  # (re)opened the module's port just now
                a.radio_opened(ticks(), s)
        except OSError as e:
            a.log.fault("radio_open_" + _errname(e), s)
            a.service(ticks(), s)  # slots still close while the module is away
            while a.next_output():
                pass  # nobody to hear it: the driver reopens the module when the port is back
            return 1000
        try:
            out = a.service(ticks(), s, ms)
            while out:  # piece by piece: never one block the size of a frame
                port.write(out)
                out = a.next_output()
            data = port.read_available(0)
            if data:
                s, ms = self.now()  # after the bytes came: an ack's arrival time
                a.wisun_feed(data, ticks(), s, ms)
                out = a.service(ticks(), s, ms)
                while out:
                    port.write(out)
                    out = a.next_output()
                return 2
        except OSError as e:
            a.log.fault("radio_" + _errname(e), s)
            port.close()  # reopened on the next turn (a board's UART stays open)
            return 100
        return 5

    def status_step(self):
        self._sample_heap()
        if self._since >= self.status_every_s * 1000:
            self._since = 0
            s, ms = self.now()
            st = self.agent.status(s)
            c = st["counters"]
            self.agent.log.line(s, "status", "polls", c["polls"], "faults", c["faults"],
                                "slots", c["slots_closed"], "sent", c["frames_sent"],
                                "acked", c["frames_acked"], "queue", st["queue_depth"],
                                "wisun", st["wisun_state"], "heap_peak", self.heap_peak,
                                "heap_size", self.heap_size)
        if self.status_file:
            self.write_status()
        self._since += 500
        return 500

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
        s, ms = self.now()
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

    def run(self):
        """Turns until stop_at; then the last status file and an `ev=stop` line."""
        now = ticks()
        due_m = due_r = due_s = now
        while self.running:
            now = ticks()
            if ticks_diff(now, due_m) >= 0:
                due_m = ticks_add(now, self.turn(0))
            if ticks_diff(now, due_r) >= 0:
                due_r = ticks_add(now, self.turn(1))
            if ticks_diff(now, due_s) >= 0:
                due_s = ticks_add(now, self.turn(2))
            now = ticks()
            wait = _IDLE_MS
            w = ticks_diff(due_m, now)
            if w < wait:
                wait = w
            w = ticks_diff(due_r, now)
            if w < wait:
                wait = w
            w = ticks_diff(due_s, now)
            if w < wait:
                wait = w
            if wait > 0:
                self.sleep(wait)
        if self.status_file:
            self.write_status()
        s, ms = self.now()
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


# Heap kept in one piece while the config, map and profile JSON are parsed, released just
# before the Agent is made: parsing leaves a trail of small holes, and the agent's buffers
# (the Wi-SUN line buffer, the frame buffer, the queue's state) each want one contiguous block.
# 2 KB: the largest of them (the 1.6 KB line buffer); with 4 KB held, a 48 KB board with a
# long data path had no 726-byte block left to parse its register map and never started.
_BOOT_RESERVE = 2048
_RESERVE = [None]


def _reserve(n):
    """Hold n bytes in one block (n = 0: let it go). A function of its own, with the block
    only in a module-level list, so no stale pointer to it stays on the caller's stack (the
    collector is conservative and would keep the block alive)."""
    _RESERVE[0] = bytearray(n) if n and hasattr(gc, "mem_free") else None  # MicroPython only


def build(config_path, storage_factory=None, sink=emit, t=0, hw_dirs=()):
    """Read and validate the config, resolve map and module profile (looked up beside the
    config, then in `hw_dirs`, $SMETER_HW, hw/), make the Agent."""
    _reserve(_BOOT_RESERVE)
    with open(config_path) as f:
        raw = json.load(f)
    cfg = validate(raw)
    raw = None  # validate() made a copy; each parsed document goes as soon as it is used
    dirs = search_dirs(config_path, hw_dirs)
    rmap = compile_map(load_json_named(cfg["device"]["map"], "maps", dirs))
    profile = uplink_profile(cfg, load_json_named(cfg["wisun"]["module"], "modules", dirs))
    data_dir = cfg["data_dir"]
    if not data_dir.startswith("/"):
        data_dir = _dirname(config_path) + "/" + data_dir
        cfg["data_dir"] = data_dir
    if storage_factory is None:
        storage_factory = flash_store.FlashStore
    storage = storage_factory(data_dir)
    _reserve(0)  # the agent's buffers go here
    gc.collect()
    agent = Agent(cfg, rmap, profile, storage, sink, t)
    return cfg, agent


def main(config_path, clock=None, meter_port=None, radio_port=None, stop_at=None, data_heap=None,
         clock_synced=None, hw_dirs=(), sink=emit, sleep=sleep_ms):
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
        # the board's word on its RTC (e.g. its reset year): trusted only by clock.source
        # "external"; an "uplink" clock is unsynced until the collector's time comes anyway
        agent.clock.external_ok = clock_synced
    dev = cfg["device"]
    if meter_port is None:  # a host: ports opened on first use and again after a failure
        if dev["transport"] == "tcp":
            meter_port = TcpPort(dev["host"], dev["port"], dev["timeout_ms"])
        else:
            meter_port = SerialPort(dev["port"], dev["baud"])
    if radio_port is None:
        radio_port = SerialPort(cfg["wisun"]["serial"], cfg["wisun"]["baud"])
    st = cfg["status"]
    sf = st["file"]
    if sf and not sf.startswith("/"):
        sf = cfg["data_dir"] + "/" + sf
    every = st["every_s"]
    cfg = dev = st = None  # the parsed config is not needed while running: free its heap
    gc.collect()
    r = Runner(agent, clock, meter_port, radio_port, sf, every, stop_at, sleep)
    r.run()
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
