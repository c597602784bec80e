"""Group-management rules (seed 000 論点③): every broken rule, every offender named."""
import numpy as np
import pytest

from host_tools.tso import config, model, validate
from host_tools.tso.errors import ValidationError

DAY = np.datetime64("2026-04-08")


def dataset(n=6, points=None, contracts=None, gen_bgs=None, dem_bgs=None, members=None,
            groups=None, plans_slots=48, receiving=None):
    ids = np.array(["R%d" % i for i in range(n)], object)
    points = np.array(points or ["m"] * n, object)
    contracts = np.array(contracts or [0] * n, np.int64)
    gen_bgs = np.array(gen_bgs or [""] * n, object)
    dem_bgs = np.array(dem_bgs or ["D"] * n, object)
    groups = groups or {"group_id": ["g1", "g2"], "list_pattern_id": ["LP1", "LP1"],
                        "baseline_method": ["plan", "high4of5"]}
    members = members or {"group_id": ["g1"] * n, "resource_id": list(ids)}
    rec = np.zeros((1, n, 48), np.int64) if receiving is None else receiving
    bgs = ["D", "G"]
    return model.TsoData.build(
        balancing_groups={"bg_id": np.array(bgs, object),
                          "kind": np.array(["demand", "generation"], object)},
        resources={"resource_id": ids, "point": points,
                   "resource_type": np.full(n, "pv", object), "demand_bg": dem_bgs,
                   "generation_bg": gen_bgs, "gen_contract": contracts,
                   "loss_ppm": np.zeros(n, np.int64)},
        groups={k: np.array(v, object) for k, v in groups.items()},
        members={k: np.array(v, object) for k, v in members.items()},
        bg_plans={"bg_id": np.repeat(np.array(bgs, object), plans_slots),
                  "date": np.full(2 * plans_slots, DAY),
                  "slot": np.tile(np.arange(1, plans_slots + 1), 2),
                  "plan_wh": np.zeros(2 * plans_slots, np.int64)},
        days=[DAY], receiving=rec)


def kinds(problems):
    return {p.kind: p.offenders for p in problems}


RULES = config.load_rules()


def test_clean_data_set_passes():
    assert validate.check(dataset(), RULES) == []
    validate.validate(dataset(), RULES)


def test_list_pattern_limit_names_the_pattern_and_count_and_is_configurable():
    rules = config.load_rules(overrides={"group_management": {
        "max_resources_per_list_pattern": 5}})
    probs = kinds(validate.check(dataset(n=6), rules))
    assert probs["list_pattern_too_big"] == ["LP1(6)"]
    assert "list_pattern_too_big" not in kinds(validate.check(dataset(n=5), rules))
    assert RULES["group_management"]["max_resources_per_list_pattern"] == 100000


def test_list_pattern_count_limit():
    rules = config.load_rules(overrides={"group_management": {"max_list_patterns": 1}})
    groups = {"group_id": ["g1", "g2"], "list_pattern_id": ["LP1", "LP2"],
              "baseline_method": ["plan", "plan"]}
    probs = kinds(validate.check(dataset(groups=groups), rules))
    assert probs["too_many_list_patterns"] == ["LP1", "LP2"]


def test_mixed_points_in_a_group_names_every_minority_resource():
    d = dataset(points=["m", "M", "m", "M", "m", "m"])
    probs = kinds(validate.check(d, RULES))
    assert probs["mixed_points_in_group"] == ["g1[M: R1 R3]"]


def test_resource_in_two_groups_of_one_list_pattern_names_all():
    members = {"group_id": ["g1"] * 6 + ["g2", "g2"],
               "resource_id": ["R%d" % i for i in range(6)] + ["R2", "R5"]}
    probs = kinds(validate.check(dataset(members=members), RULES))
    assert probs["resource_in_two_groups"] == ["LP1:R2", "LP1:R5"]
    # the same resource in groups of two different list patterns is allowed
    groups = {"group_id": ["g1", "g2"], "list_pattern_id": ["LP1", "LP2"],
              "baseline_method": ["plan", "plan"]}
    assert "resource_in_two_groups" not in kinds(
        validate.check(dataset(members=members, groups=groups), RULES))


def test_unknown_and_mismatched_bgs_all_named():
    d = dataset(dem_bgs=["D", "X1", "D", "G", "X2", "D"],
                gen_bgs=["", "", "G", "", "", "Y"], contracts=[0, 0, 1, 0, 0, 1])
    probs = validate.check(d, RULES)
    unknown = [o for p in probs if p.kind == "unknown_bg" for o in p.offenders]
    assert unknown == ["R1->X1", "R4->X2", "R5->Y"]
    assert kinds(probs)["bg_kind_mismatch"] == ["R3"]


def test_generation_contract_and_generation_bg_go_together():
    d = dataset(contracts=[1, 0, 1, 0, 0, 0], gen_bgs=["G", "G", "", "", "", ""])
    probs = kinds(validate.check(d, RULES))
    assert probs["gen_contract_without_bg"] == ["R2"]
    assert probs["bg_without_gen_contract"] == ["R1"]


def test_missing_plan_slots_named_per_bg_with_ranges():
    probs = kinds(validate.check(dataset(plans_slots=45), RULES))
    assert probs["plan_missing"] == ["D@2026-04-08 slots 46-48"]
    d = dataset(plans_slots=48, contracts=[1] + [0] * 5, gen_bgs=["G"] + [""] * 5)
    keep = ~((d.bg_plans["bg_id"] == "G") & np.isin(d.bg_plans["slot"], [3, 7, 8]))
    d.bg_plans = d.bg_plans.take(keep)
    assert kinds(validate.check(d, RULES))["plan_missing"] == ["G@2026-04-08 slots 3,7-8"]


def test_export_without_generation_bg_and_value_bounds():
    rec = np.zeros((1, 6, 48), np.int64)
    rec[0, 1, 10] = 5
    rec[0, 4, 20] = 10 ** 8
    probs = kinds(validate.check(dataset(receiving=rec), RULES))
    assert probs["export_without_generation_bg"] == ["R1", "R4"]
    assert probs["value_out_of_range"] == ["R4"]


def test_dispatched_twice_in_one_slot():
    groups = {"group_id": ["g1", "g2"], "list_pattern_id": ["LP1", "LP2"],
              "baseline_method": ["plan", "plan"]}
    members = {"group_id": ["g1", "g1", "g2"], "resource_id": ["R0", "R1", "R1"]}
    d = dataset(n=2, groups=groups, members=members)
    d.events = model.Table(group_id=np.array(["g1", "g2"], object), date=np.array([DAY, DAY]),
                           start_slot=np.array([10, 12]), end_slot=np.array([12, 14]))
    assert kinds(validate.check(d, RULES))["dispatched_twice"] == ["R1@2026-04-08"]


def test_validate_raises_with_all_problems():
    d = dataset(points=["m", "M", "x", "m", "m", "m"], plans_slots=47)
    with pytest.raises(ValidationError) as exc:
        validate.validate(d, RULES)
    assert exc.value.kind == "tso_validation"
    assert {p.kind for p in exc.value.problems} >= {"bad_point", "mixed_points_in_group",
                                                    "plan_missing"}
    assert "R2" in str(exc.value)


def test_loader_reports_unknown_and_duplicate_rows(tmp_path):
    d = dataset()
    d.save(str(tmp_path), "csv")
    path = tmp_path / "receiving.csv"
    lines = path.read_text().splitlines()
    lines.append(lines[1])  # duplicate of R0
    lines.append(lines[1].replace('"R0"', '"R99"'))
    path.write_text("\n".join(lines) + "\n")
    loaded = model.load(str(tmp_path))
    probs = kinds(validate.check(loaded, RULES))
    assert probs["unknown_resource"] == ["R99"]
    assert probs["duplicate_row"] == ["R0@2026-04-08"]
