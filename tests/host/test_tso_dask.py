"""`smeter correct --engine dask` on a real `distributed` cluster equals the in-memory engine.

One cluster per module, started with the documented command lines (`dask scheduler`,
`dask worker --nworkers 2`) on loopback: two worker processes, each under a nanny that
restarts it. A generated multi-day data set (three event days, weekday and weekend High 4
of 5, prev_day, plan baselines) is corrected by both engines for patterns 1, 2 and 3 and the
written tables must be byte-identical. A worker killed while it runs a correction task is
replaced and the task rerun; bad partitions give the in-memory engine's named errors.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cloudpickle
import numpy as np
import pyarrow.parquet as pq
import pytest

from host_tools.commands import correct as correct_cmd
from host_tools.tso import config, dask_engine, generate, model, partitions, validate
from host_tools.tso.errors import LoadError, TsoError, ValidationError

distributed = pytest.importorskip("distributed")  # in the dev extra: present in CI
pytestmark = pytest.mark.xdist_group("dask_cluster")  # one cluster under --dist loadgroup
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the plugin below, by value

RULES = config.load_rules()
RESOURCES, DAYS, EVENT_DAYS = 600, 12, 3  # events Fri 04-10, Sat 04-11, Sun 04-12


def smeter(*argv):
    parser = argparse.ArgumentParser(prog="smeter")
    correct_cmd.register(parser.add_subparsers())
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """A generated multi-day set (partitioned) and, for pattern 3, the same set without the
    sites that have a generation contract and with the BG table reversed."""
    root = tmp_path_factory.mktemp("tso")
    full = root / "full"
    generate.write(RESOURCES, str(full), days=DAYS, seed=4, partitioned=True,
                   event_days=EVENT_DAYS)
    data = model.load(str(full))
    keep = np.flatnonzero(data.resources["gen_contract"] == 0)
    # BGs listed in reverse: the pair order (by BG index) then differs from the order of
    # the demand-BG partitions (by name), which the driver must not confuse
    no_contract = model.TsoData.build(
        balancing_groups=data.bgs.take(np.arange(len(data.bgs))[::-1]), resources=data.resources.take(keep), groups=data.groups,
        members=data.members.take(np.isin(data.members["resource_id"],
                                          data.resources["resource_id"][keep])),
        bg_plans=data.bg_plans, days=data.days, events=data.events,
        list_patterns=data.list_patterns,
        receiving=data.receiving[:, keep], receiving_present=data.receiving_present[:, keep],
        device=data.device[:, keep], device_present=data.device_present[:, keep],
        device_plans=data.device_plans[:, keep],
        device_plans_present=data.device_plans_present[:, keep])
    no_contract.save(str(root / "p3"), partitioned=True)
    return {1: full, 2: full, 3: root / "p3"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`dask scheduler` + `dask worker --nworkers 2` as real processes on loopback."""
    where = tmp_path_factory.mktemp("cluster")
    sched_file = where / "scheduler.json"
    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    procs = [subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(sched_file)],
        stdout=subprocess.DEVNULL, stderr=open(where / "scheduler.log", "w"))]
    deadline = time.monotonic() + 120
    while not sched_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    procs.append(subprocess.Popen(
        [dask, "worker", "--scheduler-file", str(sched_file), "--nworkers", "2",
         "--nthreads", "1", "--memory-limit", "2GB", "--no-dashboard", "--host", "127.0.0.1",
         "--local-directory", str(where)],
        stdout=subprocess.DEVNULL, stderr=open(where / "workers.log", "w")))
    client = None
    try:
        address = json.loads(sched_file.read_text())["address"]
        client = distributed.Client(address, timeout="60s")
        client.wait_for_workers(2, timeout=120)
        yield client, address
    finally:
        if client is not None:
            client.shutdown()  # scheduler and workers exit
            client.close()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def run_both(tmp_path, data_dir, pattern, *dask_args):
    """(memory outputs, dask outputs): the per-BG and per-pair tables as bytes."""
    outs = {}
    for engine, extra in (("memory", ()), ("dask", ("--engine", "dask") + dask_args)):
        out, pairs = tmp_path / (engine + ".csv"), tmp_path / (engine + "-pairs.csv")
        assert smeter("correct", "--data", data_dir, "--pattern", pattern, "--out", out,
                      "--pairs-out", pairs, *extra) == 0
        outs[engine] = (out.read_bytes(), pairs.read_bytes())
    return outs["memory"], outs["dask"]


@pytest.mark.parametrize("pattern", [1, 2, 3])
def test_cluster_equals_memory_to_the_wh(tmp_path, datasets, cluster, pattern, capsys):
    _, address = cluster
    memory, dask = run_both(tmp_path, datasets[pattern], pattern, "--scheduler", address)
    assert dask == memory
    rows = memory[0].decode().splitlines()
    dates = {r.split(",")[0] for r in rows[1:]}
    assert len(dates) == EVENT_DAYS  # every event day corrected, partition by partition
    err = capsys.readouterr().err
    assert "corrected: %d/%d partitions" % (EVENT_DAYS * 2, EVENT_DAYS * 2) in err
    # the dispatch is really corrected (not an all-zero comparison)
    pairs = memory[1].decode().splitlines()[1:]
    assert sum(abs(int(r.split(",")[4])) for r in pairs) > 100000


class KillOnce(distributed.WorkerPlugin):
    """SIGKILLs the worker process that starts the first correction task (once per marker)."""

    def __init__(self, marker):
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and str(key).startswith("correct-") \
                and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)


def test_worker_killed_mid_run_is_survived(tmp_path, datasets, cluster):
    client, _ = cluster
    marker = str(tmp_path / "killed")
    before = set(client.scheduler_info()["workers"])
    client.register_plugin(KillOnce(marker), name="kill-once")
    try:
        _, got = dask_engine.correct(str(datasets[2]), RULES, 2, client)
    finally:
        client.unregister_worker_plugin("kill-once")
    assert os.path.exists(marker), "no worker was killed: the test proved nothing"
    want = dask_engine.correction.correct(model.load(str(datasets[2])), RULES, 2)
    for a, b in zip(want, got):
        for k in ("dem_share", "gen_share", "plan", "actual", "correction", "imbalance"):
            assert (getattr(a, k) == getattr(b, k)).all(), k
    # the nanny replaced the dead process: a new worker address, two workers again
    client.wait_for_workers(2, timeout=120)
    assert set(client.scheduler_info()["workers"]) != before


def problem_set(problems):
    return {(p.kind, frozenset(map(str, p.offenders))) for p in problems}


def memory_problems(path):
    """The in-memory engine's problems: load + validate, then correct."""
    data = model.load(str(path))
    found = validate.check(data, RULES)
    if found:
        return found
    with pytest.raises(TsoError) as exc:
        dask_engine.correction.correct(data, RULES, 2)
    return exc.value.problems


def dask_problems(path, client):
    with pytest.raises(ValidationError) as exc:
        dask_engine.correct(str(path), RULES, 2, client)
    return exc.value.problems


def _part(root, name, date, bg):
    return os.path.join(partitions.partition_dir(str(root), name, date, bg), "part-0.parquet")


def _rewrite(path, fn):
    table = pq.read_table(path)
    pq.write_table(fn(table), path)


def test_bad_partitions_give_the_same_named_errors(tmp_path, datasets, cluster):
    client, _ = cluster
    src = datasets[2]
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    last, prev = "2026-04-12", "2026-04-11"
    # 1. a resource's values filed under the other demand BG (moved from D01 to D02)
    moved = {}

    def take_first(t):
        moved["row"] = t.slice(0, 1)
        return t.slice(1)
    _rewrite(_part(bad, "receiving", prev, "D01"), take_first)
    _rewrite(_part(bad, "receiving", prev, "D02"),
             lambda t: __import__("pyarrow").concat_tables([t, moved["row"]]))
    # 2. a resource in two groups of one list pattern, the groups in different partitions
    members = pq.read_table(bad / "members.parquet").to_pydict()
    res = pq.read_table(bad / "resources.parquet").to_pydict()
    dem = dict(zip(res["resource_id"], res["demand_bg"]))
    group_of = dict(zip(members["resource_id"], members["group_id"]))
    r1 = next(r for r in members["resource_id"] if dem[r] == "D01" and "-ev-" in group_of[r])
    other = next(g for r, g in group_of.items() if dem[r] == "D02" and "-demand-" in g)
    members["group_id"].append(other)
    members["resource_id"].append(r1)
    pq.write_table(__import__("pyarrow").table(members), bad / "members.parquet")
    # 3. a value beyond the configured bound on a history day
    big = RULES["correction"]["max_abs_wh_per_slot"] + 1
    _rewrite(_part(bad, "device", "2026-04-02", "D02"),
             lambda t: t.set_column(t.column_names.index("s10"), "s10",
                                    __import__("pyarrow").array([big] * t.num_rows,
                                                                t.schema.field("s10").type)))
    want = memory_problems(bad)
    got = dask_problems(bad, client)
    kinds = {p.kind for p in want}
    assert {"wrong_partition", "resource_in_two_groups", "value_out_of_range",
            "dispatched_twice", "actual_missing"} <= kinds
    assert problem_set(got) == problem_set(want)

    # device plans missing for some dispatched PV sites (passes validation, fails in the
    # kernel's baseline step, on a worker)
    plans = tmp_path / "plans"
    shutil.copytree(src, plans)
    _rewrite(_part(plans, "device_plans", "2026-04-10", "D01"), lambda t: t.slice(5))
    want = memory_problems(plans)
    assert {p.kind for p in want} == {"plan_missing"} and len(want[0].offenders) == 5
    assert problem_set(dask_problems(plans, client)) == problem_set(want)


def test_missing_column_is_the_same_load_error(tmp_path, datasets, cluster, capsys):
    _, address = cluster
    bad = tmp_path / "bad"
    shutil.copytree(datasets[2], bad)
    path = _part(bad, "device", "2026-04-05", "D02")
    _rewrite(path, lambda t: t.drop_columns(["s17"]))
    with pytest.raises(LoadError) as mem:
        model.load(str(bad))
    for engine in (("--engine", "memory"), ("--engine", "dask", "--scheduler", address)):
        assert smeter("correct", "--data", bad, "--pattern", 2, *engine) == 2  # USAGE: unreadable data set (docs/commands/exit-codes.md)
        assert "%s: missing column(s) s17" % path in capsys.readouterr().err
    assert str(mem.value) == "%s: missing column(s) s17" % path


def test_local_cluster_without_an_address(tmp_path, datasets, capsys):
    """No --scheduler: a LocalCluster of worker processes is started and closed (one
    worker here, to keep CI time down; the module's cluster has two)."""
    memory, dask = run_both(tmp_path, datasets[2], 2, "--workers", "1")
    assert dask == memory
    err = capsys.readouterr().err
    assert "dask: local cluster, 1 worker(s)" in err and "worker peak memory" in err


def test_flat_layout_is_refused_by_the_dask_engine(tmp_path, cluster, capsys):
    _, address = cluster
    generate.write(50, str(tmp_path / "flat"), days=3)
    assert smeter("correct", "--data", tmp_path / "flat", "--pattern", 1, "--engine", "dask",
                  "--scheduler", address) == 2  # USAGE
    assert "not a partitioned data set" in capsys.readouterr().err
