"""Seed 000's worked example (論点①): BG level, generation 20 -> 80, demand 20 -> 0,
device-point adjustment plan 40 -> actual 150, a correction of 110.

Site-level reading of the seed's figure (docs/imbalance-correction.md):
- customer A: receiving point exports 20 (plan) -> 40 (actual), device point 20 -> 50;
- customer B: receiving point imports 20 (plan) -> exports 40 (actual), device 20 -> 100.
Both have a generation contract, one demand BG D and one generation BG G, loss 0.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from host_tools.tso import config, correction, model
from host_tools.tso.correction import PatternError

SLOT = 36  # 18:00-18:30, slot 37 in files
DAY = np.datetime64("2026-04-08")


def example(loss_ppm=(0, 0), gen_contract=(1, 1)):
    rec = np.zeros((1, 2, 48), np.int64)
    dev = np.zeros((1, 2, 48), np.int64)
    plans = np.zeros((1, 2, 48), np.int64)
    rec[0, :, SLOT] = (40, 40)
    dev[0, :, SLOT] = (50, 100)
    plans[0, :, SLOT] = (20, 20)
    bg_plan = {"D": np.zeros(48, np.int64), "G": np.zeros(48, np.int64)}
    bg_plan["D"][SLOT] = 20
    bg_plan["G"][SLOT] = 20
    gen_bg = np.array(["G" if c else "" for c in gen_contract], object)
    return model.TsoData.build(
        balancing_groups={"bg_id": np.array(["D", "G"], object),
                          "kind": np.array(["demand", "generation"], object)},
        resources={"resource_id": np.array(["A", "B"], object),
                   "point": np.array(["m", "m"], object),
                   "resource_type": np.array(["pv", "pv"], object),
                   "demand_bg": np.array(["D", "D"], object), "generation_bg": gen_bg,
                   "gen_contract": np.array(gen_contract, np.int64),
                   "loss_ppm": np.array(loss_ppm, np.int64)},
        groups={"group_id": np.array(["g1"], object), "list_pattern_id": np.array(["LP1"], object),
                "baseline_method": np.array(["plan"], object)},
        members={"group_id": np.array(["g1", "g1"], object),
                 "resource_id": np.array(["A", "B"], object)},
        bg_plans={"bg_id": np.repeat(np.array(["D", "G"], object), 48),
                  "date": np.full(96, DAY), "slot": np.tile(np.arange(1, 49), 2),
                  "plan_wh": np.concatenate([bg_plan["D"], bg_plan["G"]])},
        events={"group_id": np.array(["g1"], object), "date": np.array([DAY]),
                "start_slot": np.array([SLOT + 1]), "end_slot": np.array([SLOT + 1])},
        days=[DAY], receiving=rec, device=dev, device_plans=plans)


def run(pattern, data=None, basis=None):
    data = data or example()
    (res,) = correction.correct(data, config.load_rules(), pattern, plan_basis=basis)
    d, g = 0, 1
    return {"delivered": int(res.delivered[:, SLOT].sum()),
            "actual": (int(res.actual[d, SLOT]), int(res.actual[g, SLOT])),
            "correction": (int(res.correction[d, SLOT]), int(res.correction[g, SLOT])),
            "imbalance": (int(res.imbalance[d, SLOT]), int(res.imbalance[g, SLOT]))}


def test_bg_level_figures_of_the_seed():
    r = run(2)
    assert r["actual"] == (0, 80)  # demand 20 -> 0, generation 20 -> 80
    assert r["delivered"] == 110  # 150 - 40


def test_pattern_2_splits_each_site_by_its_own_flow():
    # A exported before and after: its 30 goes to G. B moved from importing 40
    # (counterfactual 40 - 80 = -40) to exporting 40: 40 to D, 40 to G.
    r = run(2)
    assert r["correction"] == (40, -70)
    assert r["imbalance"] == (0 + 40 - 20, 80 - 70 - 20) == (20, -10)


def test_pattern_2_leaves_each_bg_its_counterfactual_imbalance():
    # Without the dispatch: A exports 40 - 30 = 10, B imports 80 - 40 = 40.
    counterfactual_import, counterfactual_export = 40, 10
    r = run(2)
    assert r["imbalance"] == (counterfactual_import - 20, counterfactual_export - 20)


def test_pattern_1_nets_the_pair_as_one_site():
    # Pair net 80, counterfactual 80 - 110 = -30: 30 to D, 80 to G.
    r = run(1)
    assert r["correction"] == (30, -80)
    assert r["imbalance"] == (10, -20)


def test_pattern_3_rejects_both_sites_by_name():
    with pytest.raises(PatternError) as exc:
        run(3)
    assert exc.value.kind == "tso_pattern"
    assert exc.value.problems[0].offenders == ["A", "B"]
    assert "A, B" in str(exc.value)


def test_pattern_3_without_generation_contracts_corrects_the_demand_bg():
    # Same device values on sites that cannot export: the receiving point is clipped to
    # import-only by construction, so rebuild: A imports 10, B imports 0 in the slot.
    data = example(gen_contract=(0, 0))
    data.receiving[0, :, SLOT] = (-10, 0)
    r = run(3, data)
    assert r["correction"] == (110, 0)
    assert r["imbalance"] == (10 + 110 - 20, 0 - 20)
    assert run(1, data)["correction"] == run(2, data)["correction"] == (110, 0)


def test_loss_factor_converts_generation_end_to_sending_end():
    # 3 % loss at both sites, plans at the generation end (pattern 2 default):
    # delivered = (150 - 40) * 0.97 = 106.7 Wh -> 107 after largest remainder.
    data = example(loss_ppm=(30000, 30000))
    r = run(2, data)
    assert r["delivered"] == 107
    # A: 30 * 0.97 = 29.1 to G; B: 80 * 0.97 = 77.6, N0 = 40 - 77.6 = -37.6: 37.6 D, 40 G
    # G share 69.1, D share 37.6; total 106.7 -> 107: D 38 (rem .6), G 69 (rem .1)
    assert r["correction"] == (38, -69)


def test_plan_basis_sending_end_takes_plans_as_already_converted():
    data = example(loss_ppm=(30000, 30000))
    # actual 150 ge -> 145.5 se; plans 40 taken as sending end: 105.5 -> 106 (half up)
    assert run(2, data, basis="sending")["delivered"] == 106
    assert run(1, data)["delivered"] == 106  # pattern 1 default basis: sending end


def test_example_through_files_and_cli(tmp_path):
    data = example()
    data.save(str(tmp_path / "ex"), "csv")
    out = tmp_path / "out.csv"
    code = ("import sys, argparse\n"
            "from host_tools.commands import correct as correct_cmd\n"
            "p = argparse.ArgumentParser(); s = p.add_subparsers(); correct_cmd.register(s)\n"
            "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n")
    proc = subprocess.run([sys.executable, "-c", code, "correct", "--data", str(tmp_path / "ex"),
                           "--pattern", "2", "--out", str(out)],
                          capture_output=True, text=True, cwd=os.getcwd())
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(",") for line in out.read_text().splitlines()]
    header = [h.strip('"') for h in rows[0]]
    want = {(r[header.index("bg_id")].strip('"'), int(r[header.index("slot")])):
            (int(r[header.index("correction_wh")]), int(r[header.index("imbalance_wh")]))
            for r in rows[1:]}
    assert want[("D", SLOT + 1)] == (40, 20)
    assert want[("G", SLOT + 1)] == (-70, -10)
    assert "corrected 1 day(s), pattern 2" in proc.stderr
