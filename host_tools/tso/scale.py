"""The same correction on an engine that scales past one machine's memory: DuckDB SQL over
Parquet partitioned by date and demand BG (docs/scaling.md).

`export_long` writes the prepared per-resource inputs of one day in long form (one row per
resource and slot); `PATTERN2_SQL` is pattern 2 with the same integer micro-Wh arithmetic and
the same largest-remainder rounding as host_tools/tso/correction.py, so the two can be
compared exactly. DuckDB streams the partitions; the same SQL runs on Spark or Trino with
only the reader function changed.
"""
import os

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from host_tools.tso.model import SLOTS

PATTERN2_SQL = """
WITH v AS (
  SELECT date, slot, demand_bg, generation_bg,
         receiving_wh * 1000000 AS net,
         CASE WHEN event THEN
              meter_wh * (CASE WHEN is_device THEN 1000000 - loss_ppm ELSE 1000000 END)
            - baseline_wh * (CASE WHEN is_device AND base_ge THEN 1000000 - loss_ppm
                                  ELSE 1000000 END)
         ELSE 0 END AS delta
  FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)
), s AS (  -- the split rule: the part of N0 -> N on the export side of zero
  SELECT *, greatest(greatest(net - delta, net), 0)
          - greatest(least(net - delta, net), 0) AS export_part
  FROM v
), pair AS (
  SELECT date, slot, demand_bg, generation_bg,
         sum(CASE WHEN generation_bg = '' THEN delta
                  ELSE sign(delta) * (abs(delta) - export_part) END) AS dem,
         sum(CASE WHEN generation_bg = '' THEN 0 ELSE sign(delta) * export_part END) AS gen
  FROM s GROUP BY ALL
), side AS (
  SELECT date, slot, demand_bg, generation_bg, 0 AS side, dem AS u FROM pair
  UNION ALL
  SELECT date, slot, demand_bg, generation_bg, 1 AS side, gen AS u FROM pair
), fl AS (  -- floor to Wh with a non-negative remainder
  SELECT *, ((u % 1000000) + 1000000) % 1000000 AS rem FROM side
), tot AS (
  SELECT date, slot, sum(u) AS total, sum((u - rem) // 1000000) AS floors
  FROM fl GROUP BY ALL
), ranked AS (
  SELECT fl.*, (2 * total + 1000000 - ((2 * total + 1000000) % 2000000 + 2000000) % 2000000)
               // 2000000 - floors AS short,
         row_number() OVER (PARTITION BY fl.date, fl.slot
                            ORDER BY rem DESC, side, demand_bg, generation_bg) AS rank
  FROM fl JOIN tot USING (date, slot)
)
SELECT date, slot, demand_bg, generation_bg, side,
       CAST((u - rem) // 1000000 + CASE WHEN rank <= short THEN 1 ELSE 0 END AS BIGINT) AS wh
FROM ranked ORDER BY date, slot, side, demand_bg, generation_bg
"""


def export_long(data, day, inp, root):
    """Write one day's prepared inputs as Parquet under root/date=…/demand_bg=…/."""
    n = len(inp.pair)
    bg = data.bgs["bg_id"].astype(str)
    dem = data.bg_codes("demand_bg")
    gen = data.bg_codes("generation_bg")
    rep = lambda a: np.repeat(np.asarray(a), SLOTS)
    table = pa.table({
        "resource_id": pa.array(rep(data.resources["resource_id"].astype(str))),
        "date": pa.array(np.full(n * SLOTS, str(data.days[day]))),
        "slot": pa.array(np.tile(np.arange(1, SLOTS + 1, dtype=np.int64), n)),
        "demand_bg": pa.array(rep(bg[dem])),
        "generation_bg": pa.array(rep(np.where(gen >= 0, bg[np.maximum(gen, 0)], ""))),
        "is_device": pa.array(rep(inp.is_device)),
        "loss_ppm": pa.array(rep(inp.loss_ppm).astype(np.int64)),
        "receiving_wh": pa.array(inp.receiving.reshape(-1)),
        "meter_wh": pa.array(inp.meter.reshape(-1)),
        "baseline_wh": pa.array(inp.baseline.reshape(-1)),
        "base_ge": pa.array(inp.base_ge.reshape(-1)),
        "event": pa.array(inp.events.reshape(-1)),
    })
    os.makedirs(root, exist_ok=True)
    ds.write_dataset(table, root, format="parquet",
                     partitioning=ds.partitioning(
                         pa.schema([("date", pa.string()), ("demand_bg", pa.string())]),
                         flavor="hive"),
                     existing_data_behavior="overwrite_or_ignore")


def run_pattern2(root, threads=None):
    """Run PATTERN2_SQL with DuckDB; returns the result as a dict of numpy columns."""
    import duckdb
    con = duckdb.connect()
    if threads:
        con.execute("SET threads = %d" % int(threads))
    res = con.sql(PATTERN2_SQL.format(root=root)).to_arrow_table()
    return {name: res.column(name).to_numpy(zero_copy_only=False) for name in res.column_names}
