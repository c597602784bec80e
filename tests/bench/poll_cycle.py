"""Microseconds per poll cycle (build request -> parse reply -> decode -> integrate), under the
MicroPython unix port, under CPython and, where qemu-system-arm and the firmware build work,
on the emulated Cortex-M3 board (the edge cycles only: the agent rig is not frozen), in one run:

    .venv/bin/python tests/bench/poll_cycle.py [N]

Three cycles are timed: Modbus TCP and Modbus RTU through the edge pieces directly
(TcpClient/RtuClient -> regmap.decode -> Integrator.feed), and the agent's own path
(Agent.start_poll + Agent.modbus_feed, which adds its bookkeeping). Replies are prepared
before timing (the device's work); a slot closes every 180 polls, so closing is included.
"""
import sys

try:
    import os

    HERE = os.path.dirname(os.path.abspath(__file__))
    ROOT = os.path.dirname(os.path.dirname(HERE))
except (ImportError, AttributeError):  # MicroPython: paths come from MICROPYPATH
    ROOT = "."

try:
    from time import ticks_diff, ticks_us

    def now_us():
        return ticks_us()

    def since_us(t0):
        return ticks_diff(ticks_us(), t0)
except ImportError:
    from time import perf_counter_ns

    def now_us():
        return perf_counter_ns() // 1000

    def since_us(t0):
        return now_us() - t0


def in_micropython(script, args=(), heap="1M"):
    """Run `script` (this directory) under the MicroPython unix port of this environment and
    return the numbers of its `MP ...` line, or None (no micropython, or it failed: its
    output is printed)."""
    import subprocess

    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if not os.path.exists(exe):
        return None
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([ROOT, os.path.join(ROOT, "tests", "portable"), ".frozen"])
    out = subprocess.run([exe, "-X", "heapsize=" + heap, os.path.join(HERE, script)] + list(args),
                         capture_output=True, env=env, cwd=ROOT)
    for ln in out.stdout.decode().splitlines():
        if ln.startswith("MP "):
            return [float(x) for x in ln.split()[1:]]
    print(out.stdout.decode() + out.stderr.decode())
    return None


def _words(i):
    w = [0] * 27
    w[0] = 103
    w[1] = 50
    w[14] = 3000 + (i % 7)  # W
    wh = 100000 + i * 8  # 3 kW for 10 s ~ 8 Wh per poll
    w[24] = wh >> 16
    w[25] = wh & 0xFFFF
    return w


def _pdu(words):
    b = bytearray([3, 2 * len(words)])
    for v in words:
        b.append(v >> 8)
        b.append(v & 0xFF)
    return b


def tcp_replies(n):
    out = []
    for i in range(n):
        p = _pdu(_words(i))
        out.append(bytearray([0, 0, 0, 0, 0, len(p) + 1, 1]) + p)
    return out


def rtu_replies(n):
    from edge.crc import crc16

    out = []
    for i in range(n):
        f = bytearray([1]) + _pdu(_words(i))
        c = crc16(f, 0, len(f))
        f.append(c & 0xFF)
        f.append(c >> 8)
        out.append(f)
    return out


MAP = {"name": "bench", "function": 3, "start": 40070, "count": 27,
       "checks": [{"addr": 40070, "value": 103}],
       "quantities": {"power": {"addr": 40084, "type": "int16", "sf_addr": 40085, "sign": -1},
                      "export": {"addr": 40094, "type": "acc32", "sf_addr": 40096}}}


def bench_edge(kind, n):
    from edge.integrator import REC_LEN, Integrator
    from edge.modbus_rtu import RtuClient
    from edge.modbus_tcp import TcpClient
    from edge.reading import new_reading
    from edge.regmap import compile_map, decode

    rm = compile_map(MAP)
    words = [0] * rm.count
    reading = new_reading()
    rec = [0] * REC_LEN
    ig = Integrator()
    req = bytearray(12)
    if kind == "tcp":
        c = TcpClient(1000)
        reps = tcp_replies(64)
    else:
        c = RtuClient(2, 1000)
        reps = rtu_replies(64)
    t = 200000 * 1800
    t0 = now_us()
    for i in range(n):
        c.request(req, 1, 3, rm.start, rm.count, words, 0, i)
        r = reps[i & 63]
        if kind == "tcp":
            r[0] = c.tid >> 8
            r[1] = c.tid & 0xFF
        c.feed(r, i, len(r))
        decode(rm, words, 0, reading)
        ig.feed(reading, t + i * 10, 0, rec)
    return since_us(t0) / n


def bench_agent(n):
    sys.path.append(ROOT + "/tests/portable")
    from agent_rig import PROFILE, config, map_json

    from edge.agent import Agent
    from edge.memstore import MemStorage

    a = Agent(config(), map_json(), PROFILE, MemStorage(), None, 0)
    reps = tcp_replies(64)
    t = 200000 * 1800
    t0 = now_us()
    for i in range(n):
        s = t + i * 10
        a.next_poll = s
        a.start_poll(s, 0, i)
        r = reps[i & 63]
        r[0] = a.modbus.tid >> 8
        r[1] = a.modbus.tid & 0xFF
        a.modbus_feed(r, len(r), i, s)
    us = since_us(t0) / n
    assert a.log.counters["polls_ok"] == n and a.log.counters["faults"] == 0
    return us


def measure(n, reps=5):
    """Best of `reps` runs per cycle: the figure least disturbed by other load."""
    best = None
    for _ in range(reps):
        r = (bench_edge("tcp", n), bench_edge("rtu", n), bench_agent(n))
        best = r if best is None else tuple(min(a, b) for a, b in zip(best, r))
    return best


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    if sys.implementation.name == "micropython":
        measure(200, 1)
        print("MP %.1f %.1f %.1f" % measure(n))
        return
    import subprocess

    sys.path[:0] = [ROOT]
    measure(200, 1)  # warm-up: first-call costs out of the figures
    cp = measure(n)
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    mp = None
    if os.path.exists(exe):
        env = dict(os.environ)
        env["MICROPYPATH"] = ":".join([ROOT, os.path.join(ROOT, "tests", "portable"), ".frozen"])
        out = subprocess.run([exe, "-X", "heapsize=1M", os.path.abspath(__file__), str(n)],
                             capture_output=True, env=env, cwd=ROOT).stdout.decode()
        for line in out.splitlines():
            if line.startswith("MP "):
                mp = [float(x) for x in line.split()[1:]]
    board = board_figures(n)
    print("poll cycle, us per poll (best of 5 x %d polls; request -> parse -> decode -> integrate)" % n)
    print("%-34s %12s %12s %14s" % ("", "micropython", "cpython", "qemu cortex-m3"))
    names = ("edge, Modbus TCP", "edge, Modbus RTU (CRC check)", "agent (TCP, with bookkeeping)")
    for i, name in enumerate(names):
        b = "%.1f" % board[i] if board and i < len(board) else "n/a"
        print("%-34s %12s %12.1f %14s" % (name, "%.1f" % mp[i] if mp else "n/a", cp[i], b))


def board_figures(n):
    """The edge cycles on the MPS2-AN385 firmware under QEMU (this file's functions typed into
    its REPL), or None where the board lane cannot run. QEMU's SysTick is the clock: it runs
    up to ~7 % slow on a loaded host, so these figures are lower bounds."""
    from host_tools.firmware import build as fw
    from host_tools.firmware import qemu

    if qemu.available():
        return None
    # this file is compiled on the board from source: a 64 KB heap, more than the agent needs
    elf = fw.build("mps2-an385", heap=65536)["firmware"]
    with open(os.path.abspath(__file__)) as f:
        src = f.read().split('\nif __name__ == "__main__":')[0]
    code = src + ("\nbench_edge('rtu', 50)\nt = min(bench_edge('tcp', %d) for _ in range(3))\n"
                  "r = min(bench_edge('rtu', %d) for _ in range(3))\nprint('QEMU', t, r)\n"
                  "import smeter_board\nsmeter_board.exit(0)\n") % (n, n)
    rc, out = qemu.run_code(code, elf, timeout=600)
    for line in out.splitlines():
        if line.startswith("QEMU "):
            return [float(x) for x in line.split()[1:]]
    return None


if __name__ == "__main__":
    main()
