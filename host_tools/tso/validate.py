"""Group management rules (群管理, seed 000 論点③: docs/glossary.md#group-management) and
data completeness, checked all at once.

`check(data, rules)` returns every broken rule as a Problem naming all its offenders, so an
aggregator fixes a list pattern in one pass instead of one error per upload;
`validate(data, rules)` raises ValidationError carrying them. Vectorised where it scales
with resources (100,000 per list pattern).
"""
import numpy as np

from host_tools.tso.errors import Problem, raise_if
from host_tools.tso.model import (BASELINE_METHODS, BG_DEMAND, BG_GENERATION, POINT_DEVICE,
                                  POINT_RECEIVING, SLOTS)


def _dups(values):
    uniq, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
    return uniq[counts > 1].tolist()


def _collector(problems):
    return lambda kind, text, offenders: offenders and problems.append(
        Problem(kind, text, offenders))


def check(data, rules):
    return list(data.load_problems) + check_tables(data, rules) + check_values(data, rules)


def check_values(data, rules):
    """The rules that read per-slot values, per (day, resource): a data set split into
    (date, demand BG) partitions gives the union of its partitions' problems."""
    problems = []
    add = _collector(problems)
    _check_dispatch(data, add)
    _check_values(data, add, data.bg_codes("generation_bg"),
                  rules["correction"]["max_abs_wh_per_slot"])
    return problems


def check_tables(data, rules):
    """Every rule on the tables other than per-slot values (needs no value arrays)."""
    gm = rules["group_management"]
    problems = []
    add = _collector(problems)

    res = data.resources
    rid = res["resource_id"].astype(str)
    for name, table, col in (("balancing_groups", data.bgs, "bg_id"), ("resources", res,
                             "resource_id"), ("groups", data.groups, "group_id"),
                             ("list_patterns", data.list_patterns, "list_pattern_id")):
        add("duplicate_id", "%s ids appear more than once" % name, _dups(table[col]))
    kinds = data.bgs["kind"].astype(str)
    add("bad_bg_kind", "balancing groups whose kind is not demand/generation",
        data.bgs["bg_id"][(kinds != BG_DEMAND) & (kinds != BG_GENERATION)].tolist())

    # resources
    point = res["point"].astype(str)
    add("bad_point", "resources whose point is not M (受電点) or m (機器点)",
        rid[(point != POINT_RECEIVING) & (point != POINT_DEVICE)].tolist())
    dem = data.bg_codes("demand_bg")
    gen = data.bg_codes("generation_bg")
    add("unknown_bg", "resources naming a demand BG that does not exist",
        ["%s->%s" % (r, b) for r, b in zip(rid[dem < 0], res["demand_bg"][dem < 0])])
    add("unknown_bg", "resources naming a generation BG that does not exist",
        ["%s->%s" % (r, b) for r, b in zip(rid[gen == -2], res["generation_bg"][gen == -2])])
    kind_of = np.append(kinds, "")  # "" for codes -1/-2 (none / unknown)
    bad = (dem >= 0) & (kind_of[np.where(dem >= 0, dem, len(kinds))] != BG_DEMAND)
    add("bg_kind_mismatch", "demand_bg is not a demand BG", rid[bad].tolist())
    bad = (gen >= 0) & (kind_of[np.where(gen >= 0, gen, len(kinds))] != BG_GENERATION)
    add("bg_kind_mismatch", "generation_bg is not a generation BG", rid[bad].tolist())
    contract = res["gen_contract"]
    add("bad_gen_contract", "gen_contract must be 0 or 1",
        rid[(contract != 0) & (contract != 1)].tolist())
    add("gen_contract_without_bg", "sites with a generation contract but no generation BG",
        rid[(contract == 1) & (gen == -1)].tolist())
    add("bg_without_gen_contract", "sites with a generation BG but no generation contract",
        rid[(contract == 0) & (gen != -1)].tolist())
    loss = res["loss_ppm"]
    add("bad_loss", "loss_ppm outside 0..999999", rid[(loss < 0) | (loss >= 1000000)].tolist())

    # list patterns, groups, membership
    lp_ids = set(data.list_patterns["list_pattern_id"].astype(str).tolist())
    if len(lp_ids) > gm["max_list_patterns"]:
        add("too_many_list_patterns", "more list patterns than the limit %d"
            % gm["max_list_patterns"], sorted(lp_ids))
    g_lp = data.groups["list_pattern_id"].astype(str)
    gid = data.groups["group_id"].astype(str)
    add("unknown_list_pattern", "groups naming a list pattern that does not exist",
        ["%s->%s" % (g, lp) for g, lp in zip(gid, g_lp) if lp not in lp_ids])
    add("bad_baseline_method", "groups whose baseline_method is not one of %s"
        % "/".join(BASELINE_METHODS),
        ["%s:%s" % (g, m) for g, m in zip(gid, data.groups["baseline_method"].astype(str))
         if m not in BASELINE_METHODS])
    m_gid = data.members["group_id"].astype(str)
    m_rid = data.members["resource_id"].astype(str)
    g_code, r_code = data.member_codes()
    add("unknown_group", "members naming a group that does not exist",
        sorted(set(m_gid[g_code < 0].tolist())))
    add("unknown_resource", "members naming a resource that does not exist",
        sorted(set(m_rid[r_code < 0].tolist())))
    ok = (g_code >= 0) & (r_code >= 0)
    g_ok, r_ok = g_code[ok], r_code[ok]
    lp_of_member = g_lp[g_ok] if len(g_ok) else np.empty(0, str)
    pair_keys = np.char.add(np.char.add(lp_of_member.astype(str), "\x1f"), rid[r_ok]) \
        if len(g_ok) else np.empty(0, str)
    uniq, counts = np.unique(pair_keys, return_counts=True)
    add("resource_in_two_groups", "resources in more than one group of one list pattern",
        [k.replace("\x1f", ":") for k in uniq[counts > 1]])
    lp_counts_unique = {}
    for lp in np.unique(lp_of_member.astype(str)).tolist():
        lp_counts_unique[lp] = len(np.unique(r_ok[lp_of_member == lp]))
    add("list_pattern_too_big", "list patterns with more than %d resources"
        % gm["max_resources_per_list_pattern"],
        ["%s(%d)" % (lp, n) for lp, n in sorted(lp_counts_unique.items())
         if n > gm["max_resources_per_list_pattern"]])
    # one kind of point per group (seed 000 論点③-6)
    mixed = []
    if len(g_ok):
        is_dev = point[r_ok] == POINT_DEVICE
        n_dev = np.bincount(g_ok, weights=is_dev, minlength=len(gid))
        n_all = np.bincount(g_ok, minlength=len(gid))
        for g in np.nonzero((n_dev > 0) & (n_dev < n_all))[0]:
            sel = g_ok == g
            minority_dev = n_dev[g] * 2 < n_all[g]
            odd = rid[r_ok[sel & (is_dev if minority_dev else ~is_dev)]]
            mixed.append("%s[%s: %s]" % (gid[g], "m" if minority_dev else "M",
                                         " ".join(sorted(odd.tolist()))))
    add("mixed_points_in_group", "groups mixing receiving-point and device-point resources "
        "(the resources of the minority kind are listed)", mixed)

    # plans, events
    _check_plans(data, add, dem, gen, rules["correction"]["max_bg_plan_wh_per_slot"])
    _check_events(data, add)
    return problems


def _check_plans(data, add, dem, gen, max_plan_wh):
    plans = data.bg_plans
    p_bg = plans["bg_id"].astype(str)
    wh = np.asarray(plans["plan_wh"], np.int64)
    bad = np.nonzero((wh < 0) | (wh > max_plan_wh))[0]
    add("bad_plan_value", "bg_plans rows with plan_wh outside 0..%d Wh (a plan is an amount "
        "in the BG's own direction)" % max_plan_wh,
        ["%s@%s#%d: %d" % (p_bg[i], plans["date"][i], plans["slot"][i], wh[i]) for i in bad])
    known = np.array([b in data.bg_index for b in p_bg], bool)
    add("unknown_bg", "bg_plans rows naming a BG that does not exist",
        sorted(set(p_bg[~known].tolist())))
    slot = plans["slot"]
    add("bad_slot", "bg_plans rows with slot outside 1..48",
        ["%s@%s#%d" % (b, d, s) for b, d, s in zip(p_bg, plans["date"], slot)
         if not 1 <= s <= SLOTS])
    days = data.plan_days()
    off_days = [str(d) for d in days if d.tolist() not in data.day_index]
    add("plan_day_without_data", "plan dates with no receiving-point data", off_days)
    used = sorted(set(np.concatenate([dem[dem >= 0], gen[gen >= 0]]).tolist()))
    have = np.zeros((len(days), len(data.bgs), SLOTS), np.int64)
    ok = known & (slot >= 1) & (slot <= SLOTS)
    d_pos = np.searchsorted(days, plans["date"].astype("datetime64[D]")[ok])
    b_pos = np.array([data.bg_index[b] for b in p_bg[ok]], np.int64)
    np.add.at(have, (d_pos, b_pos, slot[ok] - 1), 1)
    missing, doubled = [], []
    for di, d in enumerate(days):
        for b in used:
            gaps = np.nonzero(have[di, b] == 0)[0]
            if len(gaps):
                missing.append("%s@%s slots %s" % (data.bgs["bg_id"][b], d,
                                                   _ranges(gaps + 1)))
        for b, s in zip(*np.nonzero(have[di] > 1)):
            doubled.append("%s@%s#%d" % (data.bgs["bg_id"][b], d, s + 1))
    add("plan_missing", "BGs used by resources without a plan for some slots of a plan date",
        missing)
    add("plan_duplicate", "BG plan given more than once for a slot", doubled)


def _check_events(data, add):
    ev = data.events
    if not len(ev):
        return
    e_gid = ev["group_id"].astype(str)
    add("unknown_group", "events naming a group that does not exist",
        sorted(set(g for g in e_gid if g not in data.group_index)))
    dates = ev["date"].astype("datetime64[D]")
    add("unknown_date", "events on dates with no receiving-point data",
        sorted(set(str(d) for d in dates if d.tolist() not in data.day_index)))
    bad = (ev["start_slot"] < 1) | (ev["end_slot"] > SLOTS) | (ev["start_slot"] > ev["end_slot"])
    add("bad_event_slots", "events whose slots are not 1 <= start_slot <= end_slot <= 48",
        ["%s@%s" % (g, d) for g, d in zip(e_gid[bad], dates[bad])])


def _check_dispatch(data, add):
    """A resource dispatched by two groups in one slot would be counted twice."""
    ev = data.events
    if not len(ev):
        return
    e_gid = ev["group_id"].astype(str)
    dates = ev["date"].astype("datetime64[D]")
    bad = (ev["start_slot"] < 1) | (ev["end_slot"] > SLOTS) | (ev["start_slot"] > ev["end_slot"])
    nd, nr = len(data.days), len(data.resources)
    count = np.zeros((nd, nr, SLOTS), np.int16)
    members_of = data.group_rows()
    for i in np.nonzero(~bad)[0]:
        d = data.day_index.get(dates[i].tolist())
        if d is None or e_gid[i] not in members_of:
            continue
        count[d, members_of[e_gid[i]], ev["start_slot"][i] - 1:ev["end_slot"][i]] += 1
    d_idx, r_idx = np.nonzero((count > 1).any(axis=2))
    add("dispatched_twice", "resources dispatched by two events in one slot",
        ["%s@%s" % (data.resources["resource_id"][r], data.days[d])
         for d, r in zip(d_idx, r_idx)])


def _check_values(data, add, gen, limit_wh):
    rid = data.resources["resource_id"]
    days = [data.day_index[d.tolist()] for d in data.plan_days()
            if d.tolist() in data.day_index]
    for d in days:
        miss = ~data.receiving_present[d]
        add("actual_missing", "resources without receiving-point values on %s"
            % data.days[d], rid[miss].tolist())
        exporting = (data.receiving[d] > 0).any(axis=1) & (gen == -1)
        add("export_without_generation_bg", "sites exporting (逆潮流) on %s without a "
            "generation BG" % data.days[d], rid[exporting].tolist())
    for name in ("receiving", "device", "device_plans"):
        values = getattr(data, name)
        big = (values.max(axis=(0, 2), initial=0) > limit_wh) | \
            (values.min(axis=(0, 2), initial=0) < -limit_wh)
        add("value_out_of_range", "%s values beyond +-%d Wh per slot" % (name, limit_wh),
            rid[big].tolist())


def _ranges(slots):
    out, start, prev = [], None, None
    for s in list(slots) + [None]:
        if start is None:
            start = prev = s
        elif s is not None and s == prev + 1:
            prev = s
        else:
            out.append(str(start) if start == prev else "%d-%d" % (start, prev))
            start = prev = s
    return ",".join(out)


def validate(data, rules):
    raise_if(check(data, rules))
