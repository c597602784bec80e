"""The partitioned layout: written by the streaming generator and by TsoData.save, read back
by the in-memory loader to the same arrays as the flat layout and as the generator in memory."""
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from host_tools.tso import generate, model, partitions, validate, config

ARRAYS = ("receiving", "device", "device_plans")


def same(a, b):
    assert (a.days == b.days).all()
    assert (a.resources["resource_id"] == b.resources["resource_id"]).all()
    for name in ARRAYS:
        assert (getattr(a, name) == getattr(b, name)).all(), name
        assert (getattr(a, name + "_present") == getattr(b, name + "_present")).all(), name
    for col in ("bg_id", "date", "slot", "plan_wh"):
        assert (a.bg_plans[col] == b.bg_plans[col]).all(), col
    assert (a.events["group_id"] == b.events["group_id"]).all()


def test_streamed_layouts_equal_the_in_memory_generator(tmp_path):
    want = generate.generate(900, days=9, seed=6, event_days=2)
    generate.write(900, str(tmp_path / "flat"), days=9, seed=6, event_days=2)
    generate.write(900, str(tmp_path / "part"), days=9, seed=6, event_days=2, partitioned=True)
    want.save(str(tmp_path / "saved"), partitioned=True)
    for sub in ("flat", "part", "saved"):
        same(model.load(str(tmp_path / sub)), want)
    assert partitions.is_partitioned(str(tmp_path / "part"))
    assert not partitions.is_partitioned(str(tmp_path / "flat"))
    # one directory per (date, demand BG), resources of that BG only
    parts = partitions.list_partitions(str(tmp_path / "part"), "receiving")
    assert len(parts) == 9 * 2
    dem = dict(zip(want.resources["resource_id"], want.resources["demand_bg"]))
    for (_, bg), files in parts.items():
        ids = pq.read_table(files[0]).column("resource_id").to_pylist()
        assert {dem[r] for r in ids} == {bg}
    assert validate.check(want, config.load_rules()) == []


def test_rows_in_a_foreign_partition_are_reported_and_not_used(tmp_path):
    root = str(tmp_path / "d")
    generate.write(300, root, days=3, seed=2, partitioned=True)
    a = partitions.partition_dir(root, "receiving", "2026-04-02", "D01") + "/part-0.parquet"
    b = partitions.partition_dir(root, "receiving", "2026-04-02", "D02") + "/part-0.parquet"
    ta, tb = pq.read_table(a), pq.read_table(b)
    pq.write_table(ta.slice(1), a)
    pq.write_table(pa.concat_tables([tb, ta.slice(0, 1)]), b)
    rid = ta.column("resource_id")[0].as_py()
    data = model.load(root)
    (p,) = [p for p in data.load_problems if p.kind == "wrong_partition"]
    assert p.offenders == ["%s@2026-04-02 in demand_bg=D02 (its demand BG: D01)" % rid]
    r = data.resource_index[rid]
    assert not data.receiving_present[1, r]  # not used: the day reads as missing


def test_bg_ids_are_escaped_in_paths(tmp_path):
    where = partitions.partition_dir(str(tmp_path), "receiving", "2026-04-01", "D/1 x")
    assert os.path.basename(where) == "demand_bg=D%2F1%20x"
    sink = partitions.WideSink(str(tmp_path), "receiving", partitioned=True)
    sink.write(np.datetime64("2026-04-01"), "D/1 x", np.array(["R1"], object),
               np.zeros((1, 48), np.int64))
    sink.close()
    assert list(partitions.list_partitions(str(tmp_path), "receiving")) == [
        (np.datetime64("2026-04-01"), "D/1 x")]
