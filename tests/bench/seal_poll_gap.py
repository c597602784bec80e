"""How much a seal in progress delays the agent's polls, under the MicroPython unix port and
CPython in one run:

    .venv/bin/python tests/bench/seal_poll_gap.py

The agent core runs in the in-memory rig of tests/portable/agent_rig.py (device, Wi-SUN
module, collector as bytes) across a JST day end, once with a seal key and once without.
The firmware loop (firmware/agent_main.py) runs service() between polls, so the most a
poll can be held up by sealing is the longest single service() call. Reported: the longest
service() call while a seal is being built or signed, the longest with no seal key over the
same simulated time (the baseline, same run), and the longest whole loop turn (poll, reply,
integration, service calls) in each run. Each figure is the smallest of three runs.
"""
import sys

try:
    import os

    HERE = os.path.dirname(os.path.abspath(__file__))
    ROOT = os.path.dirname(os.path.dirname(HERE))
    sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "portable"), HERE]
except (ImportError, AttributeError):  # MicroPython: paths come from MICROPYPATH
    ROOT = "."
    sys.path.append("tests/bench")

from poll_cycle import in_micropython, now_us, since_us  # noqa: E402

PRIV = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
DAY = 4167
T0 = (DAY * 48 - 2) * 1800


def run(with_seal):
    from agent_rig import PROFILE, Inverter, Rig, config, map_json

    from edge.agent import Agent
    from edge.memstore import MemStorage

    prof = dict(PROFILE)
    prof["max_payload"] = 1232
    cfg = config(seal_key=PRIV.hex()) if with_seal else config()
    st = MemStorage()
    rig = Rig(lambda t: Agent(cfg, map_json(), prof, st, None, t), Inverter(3600), T0)
    a = rig.agent
    longest_busy = 0
    longest_idle = 0
    longest_turn = 0
    busy_calls = 0
    orig = a.service

    def timed(now_ms, t):
        nonlocal longest_busy, longest_idle, busy_calls
        busy = a.sealjob is not None and a.sealjob.busy()
        t0 = now_us()
        out = orig(now_ms, t)
        dt = since_us(t0)
        if busy:
            busy_calls += 1
            if dt > longest_busy:
                longest_busy = dt
        elif dt > longest_idle:
            longest_idle = dt
        return out

    a.service = timed
    for _ in range(3 * 1800 // 2):
        t0 = now_us()
        rig.step(2000)
        dt = since_us(t0)
        if dt > longest_turn:
            longest_turn = dt
    made = a.log.counters.get("seals_acked", 0)
    return longest_busy, longest_idle, longest_turn, busy_calls, made


def measure(reps=3):
    """Each maximum is the smallest over `reps` runs: the figure least disturbed by other
    load on the machine (and by where a garbage collection happened to fall)."""
    best = None
    for _ in range(reps):
        s = run(True)
        b = run(False)
        r = (s[0], s[1], s[2], s[3], s[4], b[1], b[2])
        best = r if best is None else tuple(min(x, y) for x, y in zip(best, r))
    return best


def main():
    r = measure()
    line = "%d %d %d %d %d %d %d" % r
    if sys.implementation.name == "micropython":
        print("MP " + line)
        return
    mp = in_micropython("seal_poll_gap.py", (), "2M")
    print("agent across a JST day end: seal built, signed one op per service() call, sent, acked")
    print("%-52s %12s %12s" % ("", "micropython", "cpython"))
    rows = (("longest service() call, seal in progress (ms)", 0, 1000.0),
            ("longest service() call, with seal key, seal idle (ms)", 1, 1000.0),
            ("longest service() call, no seal key: baseline (ms)", 5, 1000.0),
            ("longest loop turn with seal key (ms)", 2, 1000.0),
            ("longest loop turn, no seal key: baseline (ms)", 6, 1000.0),
            ("service() calls with a seal in progress", 3, 1),
            ("seals acked", 4, 1))
    for name, i, sc in rows:
        m = ("%.2f" % (mp[i] / sc) if sc != 1 else "%d" % mp[i]) if mp else "n/a"
        c = "%.2f" % (r[i] / sc) if sc != 1 else "%d" % r[i]
        print("%-52s %12s %12s" % (name, m, c))
    if mp:
        print("added to a poll by sealing (MicroPython): at most %.2f ms (longest seal step - "
              "longest baseline call)" % ((mp[0] - mp[5]) / 1000.0))


if __name__ == "__main__":
    main()
