"""Synthetic TSO data sets: any number of resources, reproducible from a seed.

Mix of resources (shares of the total):
- 40 % PV inverters (`pv`, device point m, generation contract): curtailed to half from
  11:00 to 13:00 on the event day (a downward adjustment), baseline `plan`;
- 15 % home batteries (`battery`, m, generation contract): discharge 17:00-19:00 on the
  event day, often turning an importing site into an exporting one, baseline `prev_day`;
- 25 % EV chargers (`ev`, m, no generation contract): stop evening charging 17:00-19:00,
  baseline `high4of5`;
- 20 % demand sites (`demand`, receiving point M, no contract): cut load by 30 %
  17:00-19:00, baseline `high4of5`.
The last day is the event day and the only day with BG plans (the counterfactual BG
values with +-2 % noise); earlier days are history for the baselines. Days start on
2026-04-01, so with the default 8 days the event day is a Wednesday with five weekdays
before it.
"""
import math

import numpy as np

from host_tools.tso.model import SLOTS, TsoData

START = np.datetime64("2026-04-01")
MIX = (("pv", "m", 1, "plan", 0.40), ("battery", "m", 1, "prev_day", 0.15),
       ("ev", "m", 0, "high4of5", 0.25), ("demand", "M", 0, "high4of5", 0.20))
GROUP_SIZE = 10000
LIST_PATTERN_SIZE = 100000
PV_EVENT = (23, 26)      # slots 1-based inclusive: 11:00-13:00
EVENING_EVENT = (35, 38)  # 17:00-19:00


def generate(resources, days=8, seed=0, start=START):
    """Return a TsoData with `resources` sites over `days` days (>= 2)."""
    if resources < 1 or days < 2:
        raise ValueError("need at least 1 resource and 2 days")
    rng = np.random.default_rng(seed)
    n, nd = resources, days
    counts = [int(math.floor(share * n)) for *_, share in MIX]
    counts[0] += n - sum(counts)
    kind = np.repeat(np.arange(len(MIX)), counts)
    rng.shuffle(kind)
    rtype = np.array([m[0] for m in MIX], object)[kind]
    point = np.array([m[1] for m in MIX], object)[kind]
    contract = np.array([m[2] for m in MIX], np.int64)[kind]
    ids = np.array(["R%07d" % i for i in range(n)], object)

    n_dem = max(2, math.ceil(n / 20000))
    n_gen = max(1, math.ceil(n / 40000))
    dem_ids = np.array(["D%02d" % i for i in range(1, n_dem + 1)], object)
    gen_ids = np.array(["G%02d" % i for i in range(1, n_gen + 1)], object)
    demand_bg = dem_ids[rng.integers(0, n_dem, n)]
    generation_bg = np.where(contract == 1, gen_ids[rng.integers(0, n_gen, n)], "")
    loss = np.where(point == "m", rng.integers(0, 30001, n), 0).astype(np.int64)

    # groups: per list pattern (100,000 resources) and type, chunks of GROUP_SIZE
    lp_of = np.arange(n) // LIST_PATTERN_SIZE
    g_ids, g_lp, g_method, m_gid, m_rid = [], [], [], [], []
    for lp in range(lp_of.max() + 1):
        for k, (name, _, _, method, _) in enumerate(MIX):
            rows = np.nonzero((lp_of == lp) & (kind == k))[0]
            for c in range(0, len(rows), GROUP_SIZE):
                gid = "LP%02d-%s-%03d" % (lp + 1, name, c // GROUP_SIZE + 1)
                g_ids.append(gid)
                g_lp.append("LP%02d" % (lp + 1))
                g_method.append(method)
                chunk = rows[c:c + GROUP_SIZE]
                m_gid.append(np.full(len(chunk), gid, object))
                m_rid.append(ids[chunk])
    lp_ids = sorted(set(g_lp))

    # profiles (Wh per slot), counterfactual (no dispatch)
    t = (np.arange(SLOTS) + 0.5) / 2.0  # hour of day at slot middle
    load_shape = 0.6 + 0.25 * np.exp(-((t - 8) / 2.0) ** 2) + 0.6 * np.exp(-((t - 19) / 2.5) ** 2)
    sun = np.clip(np.sin((t - 6) / 12 * np.pi), 0, None)
    base_load = rng.uniform(100, 350, n)[None, :, None]
    day_factor = rng.uniform(0.85, 1.15, (nd, n, 1))
    load = base_load * day_factor * load_shape[None, None, :] \
        * rng.uniform(0.9, 1.1, (nd, n, SLOTS))
    load = np.where((kind == 3)[None, :, None], load * 8, load)  # demand sites are larger
    device = np.zeros((nd, n, SLOTS))
    is_pv, is_bat, is_ev = kind == 0, kind == 1, kind == 2
    cap = rng.uniform(1000, 2800, n)  # Wh per slot at full sun (2-5.6 kW)
    weather = rng.uniform(0.3, 1.0, (nd, 1, 1))
    device[:, is_pv] = (cap[is_pv][None, :, None] * weather * sun[None, None, :]
                        * rng.uniform(0.9, 1.0, (nd, is_pv.sum(), SLOTS)))
    ev_on = (t >= 17) & (t < 22)
    charge = rng.uniform(800, 1600, (nd, is_ev.sum(), 1)) * (rng.random((nd, is_ev.sum(), 1)) < 0.7)
    device[:, is_ev] = -charge * ev_on[None, None, :]
    bat_night = (t < 6)
    device[:, is_bat] = -rng.uniform(200, 500, (1, is_bat.sum(), 1)) * bat_night[None, None, :]
    device = np.rint(device).astype(np.int64)
    load = np.rint(load).astype(np.int64)

    # dispatch on the last day
    actual_dev = device.copy()
    actual_load = load.copy()
    last = nd - 1
    pv_sl = slice(PV_EVENT[0] - 1, PV_EVENT[1])
    ev_sl = slice(EVENING_EVENT[0] - 1, EVENING_EVENT[1])
    actual_dev[last, is_pv, pv_sl] = device[last, is_pv, pv_sl] // 2
    actual_dev[last, is_bat, ev_sl] = rng.integers(600, 1500, (is_bat.sum(), 1))
    actual_dev[last, is_ev, ev_sl] = 0
    is_dem = kind == 3
    actual_load[last, is_dem, ev_sl] = (load[last, is_dem, ev_sl] * 7) // 10

    def receiving(dev, ld):
        se = (dev * (1000000 - loss)[None, :, None]) // 1000000
        return np.where((point == "m")[None, :, None], se, 0) - ld

    rec_actual = receiving(actual_dev, actual_load)
    rec_cf = receiving(device, load)
    # sites without a generation contract never export
    ok = contract == 1
    rec_actual = np.where(ok[None, :, None], rec_actual, np.minimum(rec_actual, 0))
    rec_cf = np.where(ok[None, :, None], rec_cf, np.minimum(rec_cf, 0))

    dates = start + np.arange(nd)
    bg_all = np.concatenate([dem_ids, gen_ids])
    kinds = np.array(["demand"] * n_dem + ["generation"] * n_gen, object)
    cf = rec_cf[last]
    plan = np.zeros((len(bg_all), SLOTS), np.int64)
    for i, b in enumerate(dem_ids):
        plan[i] = np.maximum(-cf[demand_bg == b], 0).sum(axis=0)
    for i, b in enumerate(gen_ids):
        plan[n_dem + i] = np.maximum(cf[generation_bg == b], 0).sum(axis=0)
    plan = np.rint(plan * rng.uniform(0.98, 1.02, plan.shape)).astype(np.int64)

    dplans = np.zeros((nd, n, SLOTS), np.int64)
    dplans_present = np.zeros((nd, n), bool)
    dplans[last, is_pv] = np.rint(device[last, is_pv] * rng.uniform(0.97, 1.03, (is_pv.sum(), 1)))
    dplans_present[last, is_pv] = True

    ev_g, ev_s, ev_e = [], [], []
    for gid in g_ids:
        s, e = PV_EVENT if "-pv-" in gid else EVENING_EVENT
        ev_g.append(gid)
        ev_s.append(s)
        ev_e.append(e)

    dev_present = np.repeat((point == "m")[None, :], nd, axis=0)
    return TsoData.build(
        balancing_groups={"bg_id": bg_all, "kind": kinds},
        resources={"resource_id": ids, "point": point, "resource_type": rtype,
                   "demand_bg": demand_bg, "generation_bg": generation_bg.astype(object),
                   "gen_contract": contract, "loss_ppm": loss},
        list_patterns={"list_pattern_id": np.array(lp_ids, object),
                       "kind": np.full(len(lp_ids), "mixed", object)},
        groups={"group_id": np.array(g_ids, object), "list_pattern_id": np.array(g_lp, object),
                "baseline_method": np.array(g_method, object)},
        members={"group_id": np.concatenate(m_gid), "resource_id": np.concatenate(m_rid)},
        bg_plans={"bg_id": np.repeat(bg_all, SLOTS),
                  "date": np.full(len(bg_all) * SLOTS, dates[last]),
                  "slot": np.tile(np.arange(1, SLOTS + 1), len(bg_all)),
                  "plan_wh": plan.reshape(-1)},
        events={"group_id": np.array(ev_g, object),
                "date": np.full(len(ev_g), dates[last]),
                "start_slot": np.array(ev_s, np.int64), "end_slot": np.array(ev_e, np.int64)},
        days=dates, receiving=rec_actual, device=np.where(dev_present[:, :, None], actual_dev, 0),
        device_present=dev_present, device_plans=dplans, device_plans_present=dplans_present)
