"""Starting and stopping every real process of a demo run.

One run = per device a `smeter emulate` process (Modbus TCP on loopback, or RTU on a
pseudo-terminal), a `smeter wisun-emulator` on a pseudo-terminal and one agent (MicroPython
unix port or CPython); one `smeter collect` on loopback UDP for all of them; one shared
simulated clock, owned by this process.

The clock is what makes the accounting exact (docs/demo.md#exact-ends):
  - it is created frozen at the run's start; agents start and take their first reading at
    exactly that instant, then the clock is released for everyone at once;
  - the line that releases it carries the run's end as its stop (simclock.py STOP_MS), so
    every process's clock stands at exactly the end at the same instant, with no rewrite
    that a reader could see late (a late reader would stamp a reading served at the end
    with an earlier time), and every agent's last reading is the register value at the last
    boundary.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

from host_tools.emulator.clockline import wall_ms_now
from host_tools.emulator.profiles import DEFAULT_PROFILE, make_profile
from host_tools.emulator.simclock import SimClock, parse_start, speed_ratio
from host_tools.emulator.wisun_link import START_PREFIX as WISUN_START, start_line_clock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = [sys.executable, "-m", "host_tools.cli"]
SLOT_S = 1800
WISUN_SCALE = 0.05  # module latencies and fault clock at 1/20 of emulated seconds
_HOLD_MAX_S = 60
_END_RETRY_S = 2.0  # real seconds without the last slot closed before an agent is restarted
_SEAL_RETRY_S = 5.0  # real seconds after the last slot without a full day's seal: restart
_WISUN_IMPORT_MS = 1000  # assumed; corrected by the start each emulator reports (below)

DEVICE_KINDS = ("inverter", "charger", "meter")
# kind -> (device id, Modbus transport, agent register map, max power W)
DEVICE_SETUP = {
    "inverter": (1001, "tcp", "sunspec_inverter_103"),
    "charger": (1002, "rtu", "eastron_sdm630"),  # a DIN-rail meter on RS-485 (a pty)
    "meter": (1003, "tcp", "sunspec_meter_203"),
}


class DemoError(Exception):
    pass


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_file_line(path, pred, timeout, proc=None):
    """First line of the file satisfying pred, waiting up to timeout s (None: gave up)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path, "rb") as f:
                for raw in f:
                    line = raw.decode("utf-8", "replace")
                    if pred(line):
                        return line
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def _wisun_epoch_wall_ms(start_line):
    """Wall ms at which a module emulator's time was 0, from the clock on its start line
    (docs/commands/wisun-emulator.md): its faults count from there."""
    try:
        _, wall, sim, num, den = start_line_clock(start_line)[:5]
    except ValueError as e:
        raise DemoError("Wi-SUN emulator start: %s" % e)
    if (num, den) != speed_ratio(1 / WISUN_SCALE):
        raise DemoError("Wi-SUN emulator runs at %d/%d, not 1/%g" % (num, den, WISUN_SCALE))
    return wall - sim * den / num


def _count_in(path, needle):
    try:
        with open(path, "rb") as f:
            return f.read().count(needle)
    except OSError:
        return 0


class Device:
    """One device's processes and files."""

    def __init__(self, run, kind, index):
        self.kind = kind
        self.index = index
        did, transport, rmap = DEVICE_SETUP[kind]
        self.device_id = did
        # the QEMU board has UARTs and no network: every device on RTU over a pty there
        self.transport = "rtu" if run.runtime == "qemu" else transport
        self.map = rmap
        # The device's rating (integrator.max_power_w): what its profile can draw or
        # deliver. It bounds what a boundary reading's round trip may hide
        # (docs/integrator.md "Attribution bound").
        spec = run.profiles.get(kind, DEFAULT_PROFILE[kind])
        self.max_power_w = int(make_profile(spec, run.seed).max_abs_w)
        self.key = bytes((run.seed * 7 + index * 31 + i) & 0xFF for i in range(16))
        self.seal_key = demo_seal_key(run.seed, index)
        d = os.path.join(run.dir, kind)
        os.makedirs(d, exist_ok=True)
        self.dir = d
        self.truth = os.path.join(d, "truth.jsonl")
        self.config = os.path.join(d, "agent.json")
        self.log = os.path.join(d, "agent.log")
        self.wisun_link = os.path.join(d, "wisun0")
        self.modbus_link = os.path.join(d, "modbus0")
        self.emu = self.wisun = self.agent = None
        self.modbus_port = None
        self.kills = []  # planned, simulated s from run start
        self.killed = []  # done
        self.wisun_t0 = None  # planned start of the module emulator's fault clock (wall ms)
        self.wisun_t0_seen = None  # its start as it reports it (the clock on its start line)
        self.wisun_outages_e = []  # [(start, length)] in its own seconds


class Run:
    """A whole demo run in a directory. Use as a context manager; call start(), then
    step() until it returns False (or run_to_end()), then finish()."""

    def __init__(self, out_dir=None, devices=("inverter", "charger"), runtime="micropython",
                 speed=1440, hours=24, faults=None, seed=1, start="2026-06-21", poll_s=30,
                 profiles=None, heap="512K", data_heap=None, rule=None, board_heap=None):
        from host_tools.accuracy_rule import load_rule
        from host_tools.demo.faults import FaultPlan

        if hours <= 0 or hours * 3600 % SLOT_S:
            raise DemoError("hours must be a positive multiple of 0.5")
        self.dir = out_dir or tempfile.mkdtemp(prefix="smeter-demo-")
        os.makedirs(self.dir, exist_ok=True)
        self.runtime = runtime
        self.speed = speed_ratio(speed)
        if self.speed[0] == 0:
            raise DemoError("speed must be > 0")
        self.hours = hours
        self.faults = faults if faults is not None else FaultPlan("none")
        self.seed = seed
        self.start_ms = parse_start(start)
        if self.start_ms % (SLOT_S * 1000):
            raise DemoError("the run must start on a 30-minute boundary")
        self.start_s = self.start_ms // 1000
        self.run_s = int(hours * 3600)
        self.end_s = self.start_s + self.run_s
        self.poll_s = poll_s
        self.heap = heap
        self.data_heap = data_heap
        self.board_heap = board_heap  # qemu: MICROPY_HEAP_SIZE of the firmware (None: its default)
        self.profiles = profiles or {}
        self.rule = rule or load_rule()  # when a value is flagged estimated (accuracy_rule.py)
        self.devices = [Device(self, k, i) for i, k in enumerate(devices)]
        self.clock_path = os.path.join(self.dir, "clock")
        self.db = os.path.join(self.dir, "collector.db")
        self.keys = os.path.join(self.dir, "keys.json")
        self.pubkeys = os.path.join(self.dir, "pubkeys.json")
        self.collector_log = os.path.join(self.dir, "collector.log")
        self.collector_port = None
        self.procs = []
        self.clock = None
        self._run_wall_ms = None
        self.real_start = None
        self.real_end = None
        self.started = False

    # -- helpers --
    def _spawn(self, argv, out, err=subprocess.STDOUT, cwd=ROOT, env=None):
        fo = open(out, "ab")
        fe = fo if err == subprocess.STDOUT else open(err, "ab")
        p = subprocess.Popen(argv, cwd=cwd, env=env or _env(), stdout=fo,
                             stderr=subprocess.STDOUT if err == subprocess.STDOUT else fe,
                             stdin=subprocess.DEVNULL)
        fo.close()
        if fe is not fo:
            fe.close()
        self.procs.append(p)
        return p

    def sim_ms(self):
        return self.clock.now_ms()

    def _write_clock(self, wall_ms, sim_ms, num, den, stop_ms=None):
        v = self.clock._vals
        self.clock._vals = (1, wall_ms, sim_ms, num, den, v[5] + 1, self.start_ms)
        if stop_ms is not None:
            self.clock._vals += (stop_ms,)
        self.clock._write()

    def sim_to_wall_ms(self, sim_s):
        """Wall ms at which the running clock reaches sim_s (edge seconds)."""
        num, den = self.speed
        return self._run_wall_ms + (sim_s * 1000 - self.start_ms) * den // num

    # -- start --
    def start(self):
        from host_tools.collector.keys import write_keys

        self.real_start = time.time()
        # The clock holds at the start until released (its wall time is far ahead).
        self.clock = SimClock.create(self.clock_path, self.start_ms, "%d/%d" % self.speed,
                                     wall_start_ms=wall_ms_now() + 3600 * 1000)
        write_keys(self.keys, [(d.device_id, 0, d.key) for d in self.devices])
        self.write_pubkeys()
        col = self._spawn(CLI + ["collect", "--db", self.db, "--listen", "127.0.0.1:0", "--keys",
                                 self.keys, "--pubkeys", self.pubkeys, "--clock", self.clock_path,
                                 "--stats-interval", "3600"],
                          self.collector_log)
        for d in self.devices:
            argv = CLI + ["emulate", d.kind, "--clock", self.clock_path, "--truth", d.truth,
                          "--seed", str(self.seed)]
            argv += ["--tcp", "127.0.0.1:0"] if d.transport == "tcp" else ["--pty-link", d.modbus_link]
            if d.kind in self.profiles:
                argv += ["--profile", self.profiles[d.kind]]
            spec = self.faults.emulator_spec(self.seed + d.index)
            if spec:
                argv += ["--faults", spec]
            d.emu = self._spawn(argv, os.path.join(d.dir, "emulator.out"),
                                err=os.path.join(d.dir, "emulator.err"))
        line = _wait_file_line(self.collector_log, lambda s: "listening on" in s, 20, col)
        if line is None:
            raise DemoError("collector did not start: " + _tail(self.collector_log))
        self.collector_port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        # The module emulators count fault time from their own start, in real seconds /
        # scale: plan the release of the clock now, so outages land at their simulated time.
        hold_s = 2.5 if self.runtime == "micropython" else 4.0  # qemu: boot + 1 s clock sync
        self._run_wall_ms = wall_ms_now() + int((hold_s + 0.3 * len(self.devices)) * 1000)
        for d in self.devices:
            t0 = wall_ms_now() + _WISUN_IMPORT_MS  # its fault clock starts after its imports
            d.wisun_t0 = t0
            num, den = self.speed

            def conv(sim_s, t0=t0):
                wall = self._run_wall_ms + sim_s * 1000 * den / num
                return (wall - t0) / 1000.0 / WISUN_SCALE

            argv = CLI + ["wisun-emulator", "--pty-link", d.wisun_link, "--collector",
                          "127.0.0.1:%d" % self.collector_port, "--time-scale", str(WISUN_SCALE),
                          "--stats-json", os.path.join(d.dir, "wisun-stats.json")]
            spec = self.faults.wisun_spec(conv, self.seed + d.index)
            d.wisun_outages_e = self.faults.wisun_outages(conv)
            if spec:
                argv += ["--faults", spec]
            d.wisun = self._spawn(argv, os.path.join(d.dir, "wisun.out"),
                                  err=os.path.join(d.dir, "wisun.err"))
        for d in self.devices:
            line = _wait_file_line(os.path.join(d.dir, "emulator.out"), lambda s: '"ready"' in s, 20, d.emu)
            if line is None:
                raise DemoError("%s emulator did not start: %s" % (
                    d.kind, _tail(os.path.join(d.dir, "emulator.err"))))
            ready = json.loads(line)
            if d.transport == "tcp":
                d.modbus_port = ready["tcp"][1]
        errs = []
        for d in self.devices:
            line = _wait_file_line(os.path.join(d.dir, "wisun.out"),
                                   lambda s: s.startswith(WISUN_START) and s.endswith("\n"),
                                   20, d.wisun)
            if line is None:
                raise DemoError("%s Wi-SUN emulator did not start: %s" % (
                    d.kind, _tail(os.path.join(d.dir, "wisun.err"))))
            d.wisun_t0_seen = _wisun_epoch_wall_ms(line.strip())
            errs.append(d.wisun_t0_seen - d.wisun_t0)
        # Shift the planned release by how late the module emulators really started, so
        # their outages land at the planned simulated time (within the spread between them).
        self._run_wall_ms += int(sum(errs) / len(errs))
        for d in self.devices:
            self._write_agent_config(d)
            d.kills = self.faults.kill_times(self.run_s, self.seed, d.index)
            self._start_agent(d)
        # Release the clock once every agent has read the device at the start instant (its
        # status file counts a good poll). An agent whose first poll failed (an injected
        # fault) would poll next only after the release: restart it while the clock holds.
        deadline = time.time() + _HOLD_MAX_S
        # a QEMU board boots and aligns its clock on a host second edge first (up to 2 s)
        retry_s = 4.0 if self.runtime == "qemu" else 1.0
        for d in self.devices:
            t_start = time.time()
            while time.time() < deadline:
                if d.agent.poll() is not None:
                    raise DemoError("%s agent exited at start: %s" % (d.kind, _tail(d.log)))
                polls, ok = _status_polls(d)
                if ok:
                    break
                if polls and time.time() - t_start > retry_s:
                    os.kill(d.agent.pid, signal.SIGKILL)
                    d.agent.wait()
                    d.killed.append(("start_retry", 0, 0))
                    self._start_agent(d)
                    t_start = time.time()
                time.sleep(0.05)
            else:
                raise DemoError("%s agent did not read its device: %s" % (d.kind, _tail(d.log)))
        now = wall_ms_now()
        if now + 200 > self._run_wall_ms:  # slow machine: late release (outages shift later)
            self._run_wall_ms = now + 200
        self._write_clock(self._run_wall_ms, self.start_ms, *self.speed, stop_ms=self.end_s * 1000)
        self.started = True

    def _write_agent_config(self, d):
        # A reply deadline a few times the loopback round trip (1-7 ms): at 1440x every real
        # ms is 1.44 simulated s, and a poll that hangs past a boundary delays its reading
        # (the slot's bound grows with it). The QEMU board is slower.
        dev = {"map": d.map, "transport": d.transport, "unit": 1, "poll_interval_s": self.poll_s,
               "timeout_ms": 300 if self.runtime == "qemu" else 40}
        if d.transport == "tcp":
            dev.update(host="127.0.0.1", port=d.modbus_port)
        else:
            dev["port"] = d.modbus_link
            if self.runtime == "qemu":
                # QEMU hands a pty's bytes to the emulated UART one main-loop turn at a
                # time: on a loaded host they come with pauses far above 3.5 characters
                dev["rtu_gap_ms"] = 100
        cfg = {
            "comment": "written by smeter demo (docs/demo.md)",
            "device_id": d.device_id, "key": d.key.hex(), "key_no": 0, "data_dir": "data",
            "seal_key": d.seal_key.hex(), "seal_key_no": 0,
            "device": dev,
            # max_gap_s at its limit and missing_ms at 10 min: accelerated time turns an
            # agent restart (0.2-1 s real) into minutes of simulated time
            # (docs/demo.md#agent-settings).
            "integrator": {"max_power_w": d.max_power_w, "max_gap_s": 1800, "missing_ms": 600000,
                           "estimate_bp": self.rule["estimate_bp"],
                           "estimate_min_wh": self.rule["estimate_min_wh"],
                           "estimate_res_wh": self.rule["estimate_res_wh"]},
            "wisun": {"module": "bp35a1", "serial": d.wisun_link,
                      "rbid": "00112233445566778899AABBCCDDEEFF", "pwd": "0123456789AB",
                      "channel": 33, "pan_id": 34952,
                      "coordinator": "FE80:0000:0000:0000:021D:1290:1234:5678",
                      "backoff_base_ms": 200, "backoff_max_ms": 2000},
            "uplink": {"max_batch": 48, "ack_timeout_ms": 3000, "retry_ms": 300},
            # the agents read the run's simulated clock, which is JST by construction; at
            # this speed a real ms is seconds, too coarse for a sync over the acks
            "clock": {"source": "external"},
            "status": {"file": "status.json", "every_s": 5},
        }
        with open(d.config, "w") as f:
            json.dump(cfg, f, indent=1)

    def write_pubkeys(self):
        """The public seal keys of the run's devices (docs/seals.md), for the collector and
        for anyone checking the run afterwards with `smeter seal verify --pubkeys`."""
        from edge import p256
        from host_tools.seal import pubkeys

        pubkeys.write(self.pubkeys, pubkeys.Registry(
            pubkeys.PubKey(d.device_id, 0, p256.public_key(d.seal_key), comment="smeter demo")
            for d in self.devices))

    def _start_agent(self, d):
        from host_tools.agent_process import command

        heap = self.board_heap if self.runtime == "qemu" else self.heap
        argv, env = command(d.config, self.runtime, heap, self.data_heap, self.clock_path)
        d.agent = self._spawn(argv, d.log, cwd=d.dir, env=env)

    def outage_windows(self, d):
        """The link outages of device d as they happened: [(start, end)] in simulated
        seconds from the run's start (from the module emulator's own clock, whose start it
        reports on its start line, mapped through the clock's running line)."""
        num, den = self.speed
        out = []
        for a, n in d.wisun_outages_e:
            w0 = d.wisun_t0_seen + a * WISUN_SCALE * 1000
            w1 = w0 + n * WISUN_SCALE * 1000
            s0, s1 = ((w - self._run_wall_ms) * num / den / 1000.0 for w in (w0, w1))
            out.append((max(0.0, min(self.run_s, s0)), max(0.0, min(self.run_s, s1))))
        return out

    # -- running --
    def sim_progress_s(self):
        return max(0, min(self.run_s, self.sim_ms() // 1000 - self.start_s))

    def step(self):
        """One turn of the supervisor: kills and restarts of agents that died.
        Returns False once the clock stands at the end (its stop, written at the start)."""
        now_s = self.sim_ms() // 1000 - self.start_s
        for d in self.devices:
            if d.agent.poll() is not None:  # must not happen: restart it, and say so
                d.killed.append(("exited", now_s, d.agent.returncode))
                self._start_agent(d)
            while d.kills and now_s >= d.kills[0]:
                t = d.kills.pop(0)
                os.kill(d.agent.pid, signal.SIGKILL)
                d.agent.wait()
                d.killed.append(("sigkill", t, now_s))
                self._start_agent(d)
        return wall_ms_now() < self.sim_to_wall_ms(self.end_s)

    def stored_count(self):
        try:
            con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=5)
            try:
                return dict(con.execute("SELECT device_id, COUNT(*) FROM slot_values WHERE slot >= ? "
                                        "AND slot < ? GROUP BY device_id",
                                        (self.start_s // SLOT_S, self.end_s // SLOT_S)).fetchall())
            finally:
                con.close()
        except sqlite3.Error:
            return {}

    def drain(self, timeout=60):
        """Wait until every device's slots up to the end are stored (or timeout).

        With the clock frozen at the end, an agent whose poll at the end instant failed (an
        injected timeout or exception) would never poll again and never close the last
        slot. Such an agent is restarted (SIGKILL, like a kill) after _END_RETRY_S: it
        resumes from its last slot close and reads the registers at the end instant, so the
        last slot still gets the exact register delta (flagged partial)."""
        want = self.run_s // SLOT_S
        last = self.end_s // SLOT_S - 1
        needle = b" ev=slot_closed slot=%d " % last
        end = time.time() + timeout
        since = {d.kind: time.time() for d in self.devices}
        while time.time() < end:
            got = self.stored_count()
            if all(got.get(d.device_id, 0) >= want for d in self.devices):
                return self._drain_seals(end)
            for d in self.devices:
                if d.agent.poll() is not None:
                    d.killed.append(("exited", self.run_s, d.agent.returncode))
                    self._start_agent(d)
                    since[d.kind] = time.time()
                elif (got.get(d.device_id, 0) < want and _count_in(d.log, needle) == 0
                      and time.time() - since[d.kind] > _END_RETRY_S):
                    os.kill(d.agent.pid, signal.SIGKILL)
                    d.agent.wait()
                    d.killed.append(("end_retry", self.run_s, self.run_s))
                    self._start_agent(d)
                    since[d.kind] = time.time()
            time.sleep(0.1)
        return False

    def unsealed_days(self, device_id):
        """JST days (yyyymmdd) of the run for which the collector holds no seal reaching the
        run's last slot of that day (a seal covers slots 1..k of a day)."""
        from edge import seal

        out = []
        try:
            from host_tools.collector.store import Store

            st = Store(self.db, readonly=True)
        except sqlite3.Error:
            return ["?"]
        try:
            first, last = self.start_s // SLOT_S, self.end_s // SLOT_S - 1
            for day_no in range(first // 48, last // 48 + 1):
                need = min(last, day_no * 48 + 47) - day_no * 48 + 1  # slots of the day to cover
                code = seal.day_code(day_no)
                if not any(r.first_slot == 1 and r.n_slots >= need
                           for r in st.seals(device_id, code)):
                    out.append(code)
        except sqlite3.Error:
            return ["?"]
        finally:
            st.db.close()
        return out

    def _drain_seals(self, end):
        """After the last slot: wait for every day of the run to be sealed. A full day seals
        itself at its close (an agent still missing one after _SEAL_RETRY_S is restarted,
        once); a day the run ends inside gets its partial seal when the agent restarts
        (edge/sealing.py), so that agent is restarted at once, like a power cut."""
        from edge import seal

        t0 = time.time()
        restarted = set()
        last = self.end_s // SLOT_S - 1
        # a run ending inside a JST day: that day can only be sealed by a restart
        partial = seal.day_code(last // 48) if last % 48 != 47 else None
        while time.time() < end:
            missing = [(d, self.unsealed_days(d.device_id)) for d in self.devices]
            missing = [(d, days) for d, days in missing if days]
            if not missing:
                return True
            for d, days in missing:
                if d.kind not in restarted and (partial in days or
                                                time.time() - t0 > _SEAL_RETRY_S):
                    restarted.add(d.kind)
                    os.kill(d.agent.pid, signal.SIGKILL)
                    d.agent.wait()
                    d.killed.append(("seal_restart", self.run_s, self.run_s))
                    self._start_agent(d)
            time.sleep(0.1)
        return False

    def finish(self):
        """Stop everything: agents first (their queues are drained), then the module
        emulators, the device emulators (they write their truth summary) and the collector."""
        self.real_end = time.time()
        order = [d.agent for d in self.devices] + [d.wisun for d in self.devices] + \
                [d.emu for d in self.devices]
        self._terminate([p for p in order if p is not None])
        self._terminate(self.procs)

    def _terminate(self, procs):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._terminate(self.procs)
        return False


def demo_seal_key(seed, index):
    """A device's private seal key, derived from the run's seed so a run can be repeated
    (the demo only: real keys come from `smeter keys generate` or a secure element)."""
    import hashlib

    from edge import p256

    h = hashlib.sha256(b"smeter demo seal key %d %d" % (seed, index)).digest()
    return (1 + int.from_bytes(h, "big") % (p256.N - 1)).to_bytes(32, "big")


def _status_polls(d):
    """(polls, polls_ok) from the agent's status file (0, 0 while there is none)."""
    try:
        with open(os.path.join(d.dir, "data", "status.json")) as f:
            c = json.load(f).get("counters", {})
        return c.get("polls", 0), c.get("polls_ok", 0)
    except (OSError, ValueError):
        return 0, 0


def _tail(path, n=1500):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")
    except OSError:
        return "(no output)"
