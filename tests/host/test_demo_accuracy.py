"""Issue 16 "Done means" on the real demo: with the standard fault mix, no unflagged 30-minute
value is off by more than the configured share of its class tolerance, every flagged one
carries its bound and lies within it, and the totals stay exact to the Wh.

In the suite: one seed over 6 hours (~30 s). The 20-seed sweep (about 90 s a seed) runs with
SMETER_DEMO_SEEDS=1-20 (a range or a list: 3,7,9); scripts/accuracy_seeds.py gives the same
figures against an older checkout (docs/demo.md "Accuracy over 20 seeds")."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def _demo(tmp_path, seed, hours):
    out = tmp_path / ("demo%d" % seed)
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    argv = [sys.executable, "-m", "host_tools.cli", "demo", "--devices", "inverter,charger,meter",
            "--seed", str(seed), "--faults", "standard", "--json", "--no-chart", "--out", str(out)]
    if hours:
        argv += ["--hours", str(hours)]
    p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=900)
    assert p.returncode in (0, 1), p.stderr.decode()[-3000:]
    return json.loads(p.stdout)


def _check(s):
    assert s["wh_lost"] == 0 and s["wh_duplicated"] == 0
    for d in s["devices"]:
        a = d["accuracy"]
        assert d["stored_wh"] == d["register_delta_wh"], d["kind"]  # exact to the Wh
        assert a["unflagged_outside_share"] == 0, (d["kind"], a)
        assert a["estimated_outside_bound"] == 0, (d["kind"], a)
        assert a["estimated_without_bound"] == 0, (d["kind"], a)
        for r in d["slots"]:
            if r.get("stored") and r["flags"] & 64:
                assert r["bound_wh"] is not None and r["bound_wh"] >= 0, r


@pytest.mark.slow
def test_standard_faults_every_value_exact_within_the_rule_or_flagged_with_its_bound(tmp_path):
    _check(_demo(tmp_path, 7, 6))


def _seeds():
    spec = os.environ.get("SMETER_DEMO_SEEDS", "")
    out = []
    for part in filter(None, spec.split(",")):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not _seeds(), reason="the 20-seed demo sweep runs with SMETER_DEMO_SEEDS=1-20 "
                                          "(about 90 s a seed)")
@pytest.mark.parametrize("seed", _seeds() or [0])
def test_demo_seed_sweep(tmp_path, seed):
    _check(_demo(tmp_path, seed, None))
