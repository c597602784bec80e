"""One emulated device at work: model + clock + faults + Modbus server + ground-truth file.

Used in-process by tests and the demo, and by `smeter emulate` (host_tools/commands/emulate.py).
Every read advances the device to the clock's time before the registers are served, so a
reply always shows the exact energy at the simulated instant of the read; a ticker advances
it between reads so slot rows reach the truth file on time and the clock owner's scheduled
jumps happen.
"""
import asyncio

from host_tools.emulator.device import DEFAULT_INITIAL_WH, DEFAULT_MAP, Device, DeviceError, TruthWriter, load_map
from host_tools.emulator.faults import EXCEPTION, corrupt_reply, parse_faults
from host_tools.emulator.profiles import DEFAULT_PROFILE, Profile, make_profile
from host_tools.emulator.server import RegisterServer
from host_tools.emulator.simclock import edge_ms_to_iso


class Emulator:
    """Build with the device kind and options, then `await start_tcp()` / `start_rtu()`."""

    def __init__(self, kind, clock, map_name=None, profile=None, seed=1, faults="", unit=1,
                 truth_path=None, clock_owner=False, initial_wh=DEFAULT_INITIAL_WH, start_ms=None):
        self.kind = kind
        self.clock = clock
        self.clock_owner = clock_owner
        self.plan = parse_faults(faults)
        rmap = load_map(map_name or DEFAULT_MAP.get(kind, ""))
        if isinstance(profile, Profile):  # built by the caller (e.g. a test plan, plan_play.py)
            prof = profile
        else:
            prof = make_profile(profile or DEFAULT_PROFILE.get(kind, "const"), seed)
        if not 1 <= unit <= 247:
            raise DeviceError("unit id must be 1..247")
        self.origin_ms = clock.origin_ms
        # start_ms: the exact start when this process just created the clock (it has moved on
        # by the time we get here); otherwise the device joins the run at the clock's now.
        start = clock.now_ms() if start_ms is None else start_ms
        rollover = self.plan.rollover
        if self.plan.rollover_optional and not any(
            q.get("type") in ("acc32", "uint32") for k, q in rmap["quantities"].items() if k != "power"
        ):
            rollover = None  # 'rollover=N?': this map has no 32-bit integer accumulator
        self.device = Device(kind, rmap, prof, start, unit=unit, rollover=rollover,
                             initial_wh=initial_wh)
        for at, units in self.plan.replace:
            self.device.schedule(self.origin_ms + at, "replace", units)
        for at, sf in self.plan.sf:
            self.device.schedule(self.origin_ms + at, "sf", sf)
        for at, sf in self.plan.wsf:
            self.device.schedule(self.origin_ms + at, "wsf", sf)
        if self.plan.jumps and not clock_owner:
            raise DeviceError("jump faults need the clock's owner (this process did not create --clock FILE)")
        self._jumps = list(self.plan.jumps)
        self.device.registers()
        self.truth = None
        if truth_path:
            self.truth = TruthWriter(truth_path, self.header(faults, seed))
            self.device.on_row.append(self.truth.write)
        self.server = RegisterServer(self.device.image.start, self.device.image.words, unit, self._on_read, self._corrupt)
        self._ticker = None
        self.until_ms = None  # set to stop the model at a simulated time (a run of fixed length)

    def header(self, faults="", seed=1):
        num, den = self.clock.speed
        d = self.device
        return {
            "device": self.kind,
            "map": d.rmap["name"],
            "unit": d.unit,
            "profile": d.profile.describe(),
            "seed": seed,
            "faults": faults,
            "start_ms": d.start_ms,
            "start": edge_ms_to_iso(d.start_ms),
            "origin_ms": self.origin_ms,
            "speed": [num, den],
            "energy_unit": "mJ (1 Wh = 3600000 mJ); *_wh fields are the same energy as floats",
            "counters": d.counter_states(),
        }

    # -- per request --
    def _on_read(self, function, address, count):
        t = self.now_ms()
        self.device.advance(t)
        self.device.registers()
        decision = self.plan.decide(t, self.origin_ms)
        if decision is not None:
            if isinstance(decision, tuple):
                self.device.log_fault(EXCEPTION, t, decision[1])
            else:
                self.device.log_fault(decision, t)
        return decision

    def _corrupt(self, frame, framing):
        return corrupt_reply(frame, framing, self.plan.rng)

    # -- time --
    def now_ms(self):
        t = self.clock.now_ms()
        if self.until_ms is not None and t > self.until_ms:
            t = self.until_ms
        return t

    def tick(self):
        """Advance the model to now; the clock owner also performs due clock jumps."""
        t = self.now_ms()
        while self._jumps and t >= self.origin_ms + self._jumps[0][0]:
            _, delta = self._jumps.pop(0)
            self.device.advance(t)
            self.clock.jump(delta)
            self.device._emit({"type": "event", "kind": "clock_jump", "t_ms": t, "time": edge_ms_to_iso(t), "delta_ms": delta})
            t = self.now_ms()
        self.device.advance(t)

    async def _tick_forever(self, period_s):
        while True:
            self.tick()
            await asyncio.sleep(period_s)

    # -- life cycle --
    async def start_tcp(self, host="127.0.0.1", port=0, tick_s=0.05):
        addr = await self.server.start_tcp(host, port)
        self._ticker = asyncio.ensure_future(self._tick_forever(tick_s))
        return addr

    async def start_rtu(self, link_path, tick_s=0.05):
        path = await self.server.start_rtu(link_path)
        self._ticker = asyncio.ensure_future(self._tick_forever(tick_s))
        return path

    def summary(self):
        d = self.device
        return {
            "type": "summary",
            "t_ms": d.t_ms,
            "time": edge_ms_to_iso(d.t_ms),
            "import_mj": d.import_mj,
            "export_mj": d.export_mj,
            "requests": self.server.requests,
            "faults": dict(self.plan.counts),
            "counters": d.counter_states(),
        }

    async def stop(self):
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None
        self.tick()
        await self.server.stop()
        if self.truth is not None:
            self.truth.write(self.device.partial_slot_row())
            self.truth.write(self.summary())
            self.truth.close()
            self.truth = None


class EmulatorThread:
    """Emulators served from a private asyncio loop in a daemon thread, for blocking callers
    (tests, a demo that drives processes synchronously). Touch a running emulator's state only
    through `call(fn)`, which runs fn in the loop's thread."""

    def __init__(self):
        import threading

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="emulators", daemon=True)
        self._thread.start()
        self.emulators = []

    def _await(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        async def _run():
            return fn(*args)

        return self._await(_run())

    def start_tcp(self, emulator, host="127.0.0.1", port=0, tick_s=0.05):
        """Serve emulator on TCP; returns (host, port)."""
        addr = self._await(emulator.start_tcp(host, port, tick_s))
        self.emulators.append(emulator)
        return addr

    def start_rtu(self, emulator, link_path, tick_s=0.05):
        path = self._await(emulator.start_rtu(link_path, tick_s))
        self.emulators.append(emulator)
        return path

    def stop(self, emulator):
        self._await(emulator.stop())
        self.emulators.remove(emulator)

    def close(self):
        for em in list(self.emulators):
            self.stop(em)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()
