"""The SunSpec maps under hw/maps/ agree with the model definitions shipped in pysunspec2."""
import json
import os

import pytest
import sunspec2.mdef as mdef

from conftest import ROOT

MAPS = os.path.join(ROOT, "hw", "maps")
SUNSPEC_MAPS = ["sunspec_inverter_103", "sunspec_meter_203"]
# map type -> pysunspec2 point type
TYPES = {"int16": "int16", "uint16": "uint16", "acc32": "acc32", "uint32": "uint32", "int32": "int32"}


def model_points(model_id):
    """{point name: (offset from model start, type, sf name, size)} from pysunspec2's JSON."""
    path = os.path.join(os.path.dirname(mdef.__file__), "models", "json", "model_%d.json" % model_id)
    with open(path) as f:
        model = json.load(f)
    out = {}
    off = 0
    for p in model["group"]["points"]:
        out[p["name"]] = (off, p["type"], p.get("sf"), p["size"])
        off += p["size"]
    return out, off


@pytest.mark.parametrize("name", SUNSPEC_MAPS)
def test_offsets_types_and_scale_factors_match_pysunspec2(name):
    with open(os.path.join(MAPS, name + ".json")) as f:
        m = json.load(f)
    ss = m["sunspec"]
    points, model_len = model_points(ss["model"])
    # Standard layout: 'SunS' (2 words) + common model 1 (ID, L, 66 words) precede the model.
    common, common_len = model_points(1)
    assert points["ID"][0] == 0 and points["L"][0] == 1
    assert ss["model_start"] == ss["base"] + 2 + common_len
    assert common_len == 2 + 66
    checks = {c["addr"]: c["value"] for c in m["checks"]}
    assert checks[ss["model_start"]] == ss["model"]
    assert checks[ss["model_start"] + 1] == model_len - 2  # L excludes ID and L
    for key, q in m["quantities"].items():
        off, typ, sf, size = points[q["point"]]
        assert q["addr"] == ss["model_start"] + off, (key, q["point"])
        assert TYPES[q["type"]] == typ, (key, typ)
        assert sf == q["sf_point"]
        sf_off, sf_typ, _, _ = points[sf]
        assert sf_typ == "sunssf"
        assert q["sf_addr"] == ss["model_start"] + sf_off
        assert m["start"] <= q["addr"] and q["addr"] + size <= m["start"] + m["count"]
        assert m["start"] <= q["sf_addr"] < m["start"] + m["count"]


def test_the_points_the_issue_names():
    p103, _ = model_points(103)
    assert (p103["W"][0], p103["W_SF"][0], p103["WH"][0], p103["WH_SF"][0]) == (14, 15, 24, 26)
    p203, _ = model_points(203)
    got = tuple(p203[n][0] for n in ("W", "W_SF", "TotWhExp", "TotWhImp", "TotWh_SF"))
    assert got == (18, 22, 38, 46, 54)
