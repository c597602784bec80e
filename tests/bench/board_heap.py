"""The smallest MICROPY_HEAP_SIZE that runs a whole simulated day on the MPS2-AN385 board:
for each heap size, build the firmware and run `smeter demo --runtime qemu --faults standard`
(two QEMU boards, SIGKILLs, a radio outage, Modbus faults), then print one row per size:

    .venv/bin/python tests/bench/board_heap.py [64K 48K 40K 32K ...] [--seed N]

A day is clean when every slot is stored once (96 of 96), nothing is lost or doubled
(`wh_lost` 0, `wh_duplicated` 0) and no board died at start (`agent_exits` 0). heap_peak is
the largest live heap each board saw (gc.mem_alloc() after a collect, sampled twice a
second by the agent). About 90 s per size plus a build; not run in CI (the board lane runs
the day once, at the heap docs/flashing.md names).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def size(text):
    t = text.upper()
    return int(t[:-1]) * 1024 if t.endswith("K") else int(t)


def day(heap, seed):
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        p = subprocess.run([sys.executable, "-m", "host_tools.cli", "demo", "--runtime", "qemu",
                            "--board-heap", str(heap), "--faults", "standard", "--seed", str(seed),
                            "--json", "--no-chart", "-q", "--out", os.path.join(tmp, "d")],
                           capture_output=True, text=True, cwd=ROOT)
        took = time.time() - t0
    try:
        s = json.loads(p.stdout)
    except ValueError:
        return {"heap": heap, "error": (p.stderr.strip().splitlines() or ["no output"])[-1]}
    devs = s["devices"]
    clean = (p.returncode == 0 and s["slots_missing"] == 0 and s["wh_lost"] == 0
             and s["wh_duplicated"] == 0 and all(d["agent_exits"] == 0 for d in devs)
             and s["slots_stored"] == 48 * len(devs))
    return {"heap": heap, "clean": clean, "slots_stored": s["slots_stored"],
            "slots_expected": 48 * len(devs), "wh_lost": s["wh_lost"],
            "wh_duplicated": s["wh_duplicated"], "seconds": round(took),
            "devices": [{"kind": d["kind"], "heap_peak": d["heap_peak"],
                         "heap_size": d["heap_size"], "agent_exits": d["agent_exits"],
                         "agent_kills": d["agent_kills"]} for d in devs]}


def main(argv):
    seed = 1
    if "--seed" in argv:
        i = argv.index("--seed")
        seed = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    heaps = [size(a) for a in argv] or [64 * 1024, 48 * 1024, 40 * 1024, 32 * 1024]
    from host_tools.firmware import build as fw

    print("%7s %5s %7s %8s %6s %s" % ("heap", "clean", "slots", "wh_lost", "dup", "heap_peak per board (exits)"))
    rows = []
    for h in heaps:
        rep = fw.build("mps2-an385", heap=h)
        r = day(h, seed)
        r["text"], r["frozen_bytes"] = rep["text"], rep["frozen_bytes"]
        rows.append(r)
        if "error" in r:
            print("%7d error: %s" % (h, r["error"]))
            continue
        peaks = ", ".join("%s %d (%d)" % (d["kind"], d["heap_peak"], d["agent_exits"]) for d in r["devices"])
        print("%7d %5s %3d/%-3d %8s %6s %s" % (h, "yes" if r["clean"] else "NO", r["slots_stored"],
                                              r["slots_expected"], r["wh_lost"], r["wh_duplicated"], peaks))
        sys.stdout.flush()
    clean = [r["heap"] for r in rows if r.get("clean")]
    print(json.dumps({"smallest_clean_heap": min(clean) if clean else None, "runs": rows}))


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main(sys.argv[1:])
