"""The DuckDB SQL of docs/scaling.md gives the same Wh, to the unit, as the numpy kernel."""
import numpy as np

from host_tools.tso import config, correction, generate, scale

RULES = config.load_rules()


def test_duckdb_pattern2_matches_numpy(tmp_path):
    data = generate.generate(3000, days=8, seed=5)
    day = len(data.days) - 1
    inp, pair_dem, pair_gen = correction.prepare_day(data, day, RULES, 2)
    dem_wh, gen_wh = correction.round_shares(*correction.shares_micro(inp, 2))
    scale.export_long(data, day, inp, str(tmp_path / "long"))
    assert len(list((tmp_path / "long").glob("date=*/demand_bg=*/*.parquet"))) == \
        len(set(pair_dem.tolist()))
    got = scale.run_pattern2(str(tmp_path / "long"))
    bg = data.bgs["bg_id"].astype(str)
    key = {(bg[d], bg[g] if g >= 0 else ""): i for i, (d, g) in enumerate(zip(pair_dem, pair_gen))}
    want = {0: dem_wh, 1: gen_wh}
    seen = 0
    for d, g, slot, side, wh in zip(got["demand_bg"], got["generation_bg"], got["slot"],
                                    got["side"], got["wh"]):
        assert want[side][key[(d, g)], slot - 1] == wh
        seen += 1
    assert seen == 2 * len(pair_dem) * 48
    assert np.abs(dem_wh).sum() > 0 and np.abs(gen_wh).sum() > 0
