"""Before/after figures of the attribution bound (docs/integrator.md) over demo seeds, in one
run (not part of the suite).

    .venv/bin/python scripts/accuracy_seeds.py --seeds 1-20 [--baseline DIR] [--out FILE]

Runs `smeter demo --devices inverter,charger,meter --seed S --json` (standard faults,
default speed) from this checkout and, with --baseline, from another checkout (e.g. a git
worktree of the commit before boundary polls and bounds: `git worktree add /tmp/base
<commit>`, its own venv or this one with PYTHONPATH). Every figure is computed here from
summary.json's per-slot rows, the same way for both: slot error = |import - truth| +
|export - truth|; unflagged = neither `estimated` nor `missing`; the allowed error is the
estimate rule (host_tools/accuracy_rule.py) on the slot's truth energy. Prints one JSON
object per seed and side, then totals.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
from edge.flags import ESTIMATED, MISSING, flag_bound  # noqa: E402
from host_tools.accuracy_rule import load_rule, threshold_wh  # noqa: E402


def figures(summary, rule, rundir=None):
    out = {}
    for d in summary["devices"]:
        with open(os.path.join(HERE, "hw", "maps", d["map"] + ".json")) as f:
            q = json.load(f)["quantities"]
        digits = sum(1 for k in ("import", "export") if k in q)  # one per register direction
        n = est = outside = bound_missing = bound_broken = 0
        worst = (0.0, 0.0, 0.0)
        for r in d["slots"]:
            if not r.get("stored") or r.get("truth_import_wh") is None:
                continue
            n += 1
            ti, te = r["truth_import_wh"], r["truth_export_wh"]
            err = abs(r["import_wh"] - ti) + abs(r["export_wh"] - te)
            if r["flags"] & ESTIMATED:
                est += 1
                if r["flags"] >> 8:  # a bound code (none in a baseline from before the bound)
                    b = flag_bound(r["flags"])
                    if b < 0:
                        bound_missing += 1
                    elif err > b:
                        bound_broken += 1
                continue
            if r["flags"] & MISSING:
                continue
            e = ti + te
            share = err / max(e, 1)
            if share > worst[0]:
                worst = (share, err, e)
            if err > threshold_wh(rule, max(e, 0), digits):
                outside += 1
        out[d["kind"]] = {
            "slots": n, "estimated": est, "max_unflagged_error_pct": round(100 * worst[0], 3),
            "max_unflagged_error_wh": round(worst[1], 1), "of_wh": round(worst[2], 1),
            "unflagged_outside_rule": outside, "estimated_without_bound_code": bound_missing,
            "estimated_outside_bound": bound_broken, "wh_lost": d["wh_lost"],
            "wh_duplicated": d["wh_duplicated"],
        }
        if rundir:
            out[d["kind"]]["polls"], out[d["kind"]]["heap_peak"] = agent_counts(rundir, d["kind"])
    return out


def agent_counts(rundir, kind):
    """(polls, heap_peak) from an agent's log: the last status line of each agent process
    (a kill restarts the counters), summed; the largest heap seen. Status lines come every
    status interval, so the polls after a process's last one are not counted."""
    polls = seg = heap = 0
    try:
        with open(os.path.join(rundir, "run", kind, "agent.log")) as f:
            for line in f:
                kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
                if kv.get("ev") == "start":
                    polls += seg
                    seg = 0
                elif kv.get("ev") == "status":
                    seg = int(kv.get("polls", 0))
                    heap = max(heap, int(kv.get("heap_peak", 0)))
    except OSError:
        return None, None
    return polls + seg, heap


def run(checkout, seed, outdir, python):
    od = os.path.join(outdir, "seed%d" % seed)
    os.makedirs(outdir, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=checkout)
    t0 = time.time()
    p = subprocess.run([python, "-m", "host_tools.cli", "demo", "--devices", "inverter,charger,meter",
                        "--seed", str(seed), "--json", "--out", od], cwd=checkout, env=env,
                       capture_output=True, timeout=1800)
    if p.returncode not in (0, 1):
        return {"error": p.stderr.decode()[-500:]}, time.time() - t0
    return json.loads(p.stdout), time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="1-20")
    ap.add_argument("--baseline", help="checkout of the code before (same run, same seeds)")
    ap.add_argument("--out", default="/tmp/accuracy-seeds")
    a = ap.parse_args()
    lo, _, hi = a.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    rule = load_rule()
    sides = [("after", HERE)] + ([("before", os.path.abspath(a.baseline))] if a.baseline else [])
    tot = {}
    for seed in seeds:
        # Both sides of a seed run at the same time: the same machine load for both.
        with ThreadPoolExecutor(len(sides)) as ex:
            done = list(ex.map(lambda side: run(side[1], seed, os.path.join(a.out, side[0]), sys.executable),
                               sides))
        for (name, co), (s, dt) in zip(sides, done):
            if "error" in s:
                print(json.dumps({"seed": seed, "side": name, "error": s["error"]}), flush=True)
                continue
            f = figures(s, rule, os.path.join(a.out, name, "seed%d" % seed))
            print(json.dumps({"seed": seed, "side": name, "seconds": round(dt), "devices": f}), flush=True)
            t = tot.setdefault(name, {"seeds": 0, "slots": 0, "estimated": 0, "max_unflagged_error_pct": 0.0,
                                      "unflagged_outside_rule": 0, "estimated_outside_bound": 0,
                                      "wh_lost": 0, "wh_duplicated": 0})
            t["seeds"] += 1
            for d in f.values():
                t["slots"] += d["slots"]
                t["estimated"] += d["estimated"]
                t["max_unflagged_error_pct"] = max(t["max_unflagged_error_pct"], d["max_unflagged_error_pct"])
                t["unflagged_outside_rule"] += d["unflagged_outside_rule"]
                t["estimated_outside_bound"] += d["estimated_outside_bound"]
                t["wh_lost"] += float(d["wh_lost"])
                t["wh_duplicated"] += float(d["wh_duplicated"])
    print(json.dumps({"totals": tot, "rule": rule["basis"]}, indent=1))


if __name__ == "__main__":
    main()
