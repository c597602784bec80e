"""The Dask engine against the in-memory engine on the same partitioned data set.

Runs only with --benchmark-enable (the normal suite proves equality on a small set in
tests/host/test_tso_dask.py). Each engine runs in a child process, so its peak memory is
its own (ru_maxrss), and the same run measures all of them:

- 100,000 resources x 8 days, pattern 2: the in-memory engine (load + validate + correct),
  then the Dask engine on a LocalCluster of 1 and of 2 worker processes (2 GB each; cluster
  start excluded, best of 2 runs); ratios and peaks in extra_info, results identical to
  the Wh.
- With SMETER_BENCH_1M=DIR: the 1,000,000-resource x 8-day set at DIR (written there first
  if absent, `smeter gen-tso-data --resources 1000000 --layout partitioned --seed 1`) on 2
  workers limited to 2 GB each: total time, the peak of each worker and of the driver, and
  that no worker was restarted (same worker addresses before and after).
"""
import json
import os
import subprocess
import sys
import time

import pytest

from host_tools.tso import generate

pytest.importorskip("distributed")
PATTERN = 2

MEMORY = """
import json, resource, sys, time
from host_tools.tso import config, correction, model, validate
rules = config.load_rules()
t0 = time.perf_counter()
data = model.load(sys.argv[1])
validate.validate(data, rules)
res = correction.correct(data, rules, int(sys.argv[2]))
print(json.dumps({"s": time.perf_counter() - t0,
                  "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "imbalance": [r.imbalance.tolist() for r in res]}))
"""

DASK = """
import json, resource, sys, time
from host_tools.tso import config, dask_engine
if __name__ == "__main__":
    rules = config.load_rules()
    path, pattern, workers, limit, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \\
        sys.argv[4], int(sys.argv[5])
    client, cluster = dask_engine.connect(None, workers, limit)
    before = sorted(client.scheduler_info()["workers"])
    times = []
    for _ in range(runs):
        timings = {}
        t0 = time.perf_counter()
        _, res = dask_engine.correct(path, rules, pattern, client, timings=timings)
        times.append(time.perf_counter() - t0)
    peaks = dask_engine.worker_peaks(client)
    after = sorted(client.scheduler_info()["workers"])
    client.close()
    cluster.close()
    print(json.dumps({"s": min(times[1:] or times), "times": times, "timings": timings,
                      "worker_peaks": sorted(peaks.values()), "restarted": before != after,
                      "driver_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "imbalance": [r.imbalance.tolist() for r in res]}))
"""


def child(code, *args):
    out = subprocess.run([sys.executable, "-c", code] + [str(a) for a in args],
                         capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def mb(x):
    return round(x / 1e6)


@pytest.fixture(scope="module")
def set_100k(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tso100k") / "data")
    generate.write(100000, path, days=8, seed=1, partitioned=True)
    return path


@pytest.mark.timeout(3600)
def test_bench_dask_vs_memory_100000(benchmark, set_100k):
    if benchmark.disabled:
        pytest.skip("100,000-resource case runs only with --benchmark-enable")
    mem = child(MEMORY, set_100k, PATTERN)
    runs = {}

    def dask_2_workers():
        runs[2] = child(DASK, set_100k, PATTERN, 2, "2GB", 2)
    runs[1] = child(DASK, set_100k, PATTERN, 1, "2GB", 2)
    benchmark.pedantic(dask_2_workers, rounds=1, iterations=1)
    for r in runs.values():
        assert r["imbalance"] == mem["imbalance"]
        assert not r["restarted"]
    benchmark.extra_info.update({
        "resources": 100000, "days": 8, "pattern": PATTERN,
        "memory_engine_s": round(mem["s"], 2), "memory_engine_peak_mb": mb(mem["peak"]),
        "dask_1_worker_s": round(runs[1]["s"], 2), "dask_2_workers_s": round(runs[2]["s"], 2),
        "dask_1_worker_over_memory": round(runs[1]["s"] / mem["s"], 2),
        "dask_2_workers_over_memory": round(runs[2]["s"] / mem["s"], 2),
        "speedup_2_over_1_worker": round(runs[1]["s"] / runs[2]["s"], 2),
        "dask_2_workers_phases_s": {k: round(v, 2) for k, v in runs[2]["timings"].items()},
        "dask_1_worker_peak_mb": [mb(p) for p in runs[1]["worker_peaks"]],
        "dask_2_workers_peak_mb": [mb(p) for p in runs[2]["worker_peaks"]],
        "dask_driver_peak_mb": mb(runs[2]["driver_peak"])})
    print(json.dumps(benchmark.extra_info, indent=1))


@pytest.mark.timeout(7200)
def test_bench_dask_1m_day_in_2gb_workers(benchmark, set_100k):
    path = os.environ.get("SMETER_BENCH_1M")
    if benchmark.disabled or not path:
        pytest.skip("1,000,000-resource day: --benchmark-enable and SMETER_BENCH_1M=DIR")
    if not os.path.isdir(os.path.join(path, "receiving")):
        t0 = time.perf_counter()
        generate.write(1000000, path, days=8, seed=1, partitioned=True)
        benchmark.extra_info["generate_and_write_s"] = round(time.perf_counter() - t0, 1)
    mem = child(MEMORY, set_100k, PATTERN)  # the in-memory engine's peak, same run
    got = {}

    def dask_1m():
        got.update(child(DASK, path, PATTERN, 2, "2GB", 1))
    benchmark.pedantic(dask_1m, rounds=1, iterations=1)
    benchmark.extra_info.update({
        "resources": 1000000, "days": 8, "workers": 2, "worker_memory_limit": "2GB",
        "total_s": round(got["s"], 1),
        "phases_s": {k: round(v, 1) for k, v in got["timings"].items()},
        "worker_peak_mb": [mb(p) for p in got["worker_peaks"]],
        "driver_peak_mb": mb(got["driver_peak"]), "worker_restarted": got["restarted"],
        "memory_engine_100000_peak_mb": mb(mem["peak"]),
        "memory_engine_100000_s": round(mem["s"], 2)})
    print(json.dumps(benchmark.extra_info, indent=1))
    assert not got["restarted"] and max(got["worker_peaks"]) < 2e9
