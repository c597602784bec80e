"""Cost of one daily seal on the device, under the MicroPython unix port and CPython in one run:

    .venv/bin/python tests/bench/seal_signing.py [ops_per_step]

Signs a full-day seal (48 slots) with Sealer.step(ops) until done and reports: the whole seal
(entries, digest, fingerprints, signature) in ms, the number of steps, the longest single
step, the heap the signer holds at its peak, and, as the same-run baseline, one agent poll
cycle (tests/bench/poll_cycle.py) so a step can be read as "so many poll cycles".
"""
import gc
import sys

try:
    import os

    HERE = os.path.dirname(os.path.abspath(__file__))
    ROOT = os.path.dirname(os.path.dirname(HERE))
    sys.path[:0] = [ROOT, HERE]
except (ImportError, AttributeError):  # MicroPython: paths come from MICROPYPATH
    ROOT = "."
    sys.path.append("tests/bench")

from poll_cycle import bench_agent, in_micropython, now_us, since_us  # noqa: E402

PRIV = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")


def one_seal(ops, heap=False):
    """(ms total, steps, longest step, heap held at the peak, seal bytes). With heap=True a
    gc.collect() after every step measures what the signer holds (and slows the run)."""
    from edge import seal

    values = {}
    for s in range(1, 49):
        values[s] = (s * 37, 5000 - s, 0)
    gc.collect()
    base = gc.mem_alloc() if heap and hasattr(gc, "mem_alloc") else 0
    peak = 0
    longest = 0
    steps = 0
    t0 = now_us()
    sealer = seal.Sealer(1234567, PRIV, 0, 20261203, 1, 48, seal.entries(1, 48, values))
    while True:
        t = now_us()
        done = sealer.step(ops)
        dt = since_us(t)
        steps += 1
        if dt > longest:
            longest = dt
        if base:
            gc.collect()  # what the signer holds, not the garbage a step left
            live = gc.mem_alloc() - base
            if live > peak:
                peak = live
        if done:
            break
    return since_us(t0), steps, longest, peak, len(sealer.seal())


def measure(ops, reps=5):
    poll = min(bench_agent(300) for _ in range(3))
    best_total = best_longest = None
    for _ in range(reps):
        total, _, longest, _, _ = one_seal(ops)
        best_total = total if best_total is None else min(best_total, total)
        best_longest = longest if best_longest is None else min(best_longest, longest)
    _, steps, _, peak, size = one_seal(ops, heap=True)
    return best_total, steps, best_longest, peak, size, poll


def main():
    ops = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    r = measure(ops)
    line = "%d %d %d %d %d %.1f" % r
    if sys.implementation.name == "micropython":
        print("MP " + line)
        return
    mp = in_micropython("seal_signing.py", [str(ops)], "1M")
    print("full-day seal (48 slots), Sealer.step(%d) until done; best of 5" % ops)
    print("%-40s %12s %12s" % ("", "micropython", "cpython"))
    names = ("whole seal, ms", "steps", "longest step, ms", "signer heap at peak, bytes",
             "seal size, bytes", "agent poll cycle (baseline), us")
    scale = (1000.0, 1, 1000.0, 1, 1, 1)
    for i, name in enumerate(names):
        m = ("%.2f" % (mp[i] / scale[i]) if scale[i] != 1 else "%d" % mp[i]) if mp else "n/a"
        c = "%.2f" % (r[i] / scale[i]) if scale[i] != 1 else ("%d" % r[i] if i != 5 else "%.1f" % r[i])
        if i == 3:
            c = "n/a"
        print("%-40s %12s %12s" % (name, m, c))
    if mp:
        print("longest step = %.1f agent poll cycles (MicroPython); whole seal = %.0f poll cycles"
              % (mp[2] / mp[5], mp[0] / mp[5]))


if __name__ == "__main__":
    main()
