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
The last `event_days` days (default 1) are event days and the only days with BG plans (the
counterfactual BG values with +-2 % noise); earlier days are history for the baselines.
Days start on 2026-04-01, so with the default 8 days the event day is a Wednesday with five
weekdays before it.

Values are made one demand BG at a time, each from its own random stream (seed, BG), so a
data set of any size is written block by block (`write`) in bounded memory, and the same
seed gives the same values whether the set is built in memory (`generate`) or streamed to
either layout.
"""
import math
import os

import numpy as np

from host_tools.tso import partitions
from host_tools.tso.model import SLOTS, TsoData, assemble

START = np.datetime64("2026-04-01")
MIX = (("pv", "m", 1, "plan", 0.40), ("battery", "m", 1, "prev_day", 0.15),
       ("ev", "m", 0, "high4of5", 0.25), ("demand", "M", 0, "high4of5", 0.20))
GROUP_SIZE = 10000
LIST_PATTERN_SIZE = 100000
PV_EVENT = (23, 26)      # slots 1-based inclusive: 11:00-13:00
EVENING_EVENT = (35, 38)  # 17:00-19:00
T = (np.arange(SLOTS) + 0.5) / 2.0  # hour of day at slot middle
LOAD_SHAPE = 0.6 + 0.25 * np.exp(-((T - 8) / 2.0) ** 2) + 0.6 * np.exp(-((T - 19) / 2.5) ** 2)
SUN = np.clip(np.sin((T - 6) / 12 * np.pi), 0, None)


class Plan:
    """Everything except the per-slot values: resources, BGs, groups, events, and the
    per-resource and per-day parameters the values are drawn from."""

    def __init__(self, resources, days, seed, start, event_days):
        if resources < 1 or days < 2:
            raise ValueError("need at least 1 resource and 2 days")
        if not 1 <= event_days < days:
            raise ValueError("need 1 <= event days < days")
        rng = np.random.default_rng(seed)
        n, nd = resources, days
        self.seed, self.n, self.nd = seed, n, nd
        counts = [int(math.floor(share * n)) for *_, share in MIX]
        counts[0] += n - sum(counts)
        kind = np.repeat(np.arange(len(MIX)), counts)
        rng.shuffle(kind)
        self.kind = kind
        self.point = np.array([m[1] for m in MIX], object)[kind]
        self.contract = np.array([m[2] for m in MIX], np.int64)[kind]
        self.ids = np.array(["R%07d" % i for i in range(n)], object)
        n_dem = max(2, math.ceil(n / 20000))
        n_gen = max(1, math.ceil(n / 40000))
        self.dem_ids = np.array(["D%02d" % i for i in range(1, n_dem + 1)], object)
        self.gen_ids = np.array(["G%02d" % i for i in range(1, n_gen + 1)], object)
        self.dem_code = rng.integers(0, n_dem, n)
        self.gen_code = np.where(self.contract == 1, rng.integers(0, n_gen, n), -1)
        self.loss = np.where(self.point == "m", rng.integers(0, 30001, n), 0).astype(np.int64)
        self.base_load = rng.uniform(100, 350, n)
        self.cap = rng.uniform(1000, 2800, n)  # Wh per slot at full sun (2-5.6 kW)
        self.weather = rng.uniform(0.3, 1.0, nd)
        self.discharge = rng.uniform(600, 1500, (event_days, n))
        self.bat_night = rng.uniform(200, 500, n)
        self.plan_noise = rng.uniform(0.98, 1.02, (event_days, n_dem + n_gen, SLOTS))
        self.dates = start + np.arange(nd)
        self.event_days = np.arange(nd - event_days, nd)
        self._groups()

    def _groups(self):
        # per list pattern (100,000 resources) and type, chunks of GROUP_SIZE
        lp_of = np.arange(self.n) // LIST_PATTERN_SIZE
        g_ids, g_lp, g_method, m_gid, m_rid = [], [], [], [], []
        for lp in range(lp_of.max() + 1):
            for k, (name, _, _, method, _) in enumerate(MIX):
                rows = np.nonzero((lp_of == lp) & (self.kind == k))[0]
                for c in range(0, len(rows), GROUP_SIZE):
                    gid = "LP%02d-%s-%03d" % (lp + 1, name, c // GROUP_SIZE + 1)
                    g_ids.append(gid)
                    g_lp.append("LP%02d" % (lp + 1))
                    g_method.append(method)
                    chunk = rows[c:c + GROUP_SIZE]
                    m_gid.append(np.full(len(chunk), gid, object))
                    m_rid.append(self.ids[chunk])
        self.g_ids, self.g_lp, self.g_method = g_ids, g_lp, g_method
        self.m_gid, self.m_rid = np.concatenate(m_gid), np.concatenate(m_rid)

    def tables(self, plan):
        """The static tables as TsoData.build keyword arguments; plan: (bgs, event days, 48)."""
        bg_all = np.concatenate([self.dem_ids, self.gen_ids])
        kinds = np.array(["demand"] * len(self.dem_ids) + ["generation"] * len(self.gen_ids),
                         object)
        lp_ids = sorted(set(self.g_lp))
        ev_dates = self.dates[self.event_days]
        ev_g = [g for _ in ev_dates for g in self.g_ids]
        slots = [PV_EVENT if "-pv-" in g else EVENING_EVENT for g in ev_g]
        k = len(ev_dates)
        return dict(
            balancing_groups={"bg_id": bg_all, "kind": kinds},
            resources={"resource_id": self.ids, "point": self.point,
                       "resource_type": np.array([m[0] for m in MIX], object)[self.kind],
                       "demand_bg": self.dem_ids[self.dem_code],
                       "generation_bg": np.where(self.gen_code >= 0,
                                                 self.gen_ids[np.maximum(self.gen_code, 0)],
                                                 "").astype(object),
                       "gen_contract": self.contract, "loss_ppm": self.loss},
            list_patterns={"list_pattern_id": np.array(lp_ids, object),
                           "kind": np.full(len(lp_ids), "mixed", object)},
            groups={"group_id": np.array(self.g_ids, object),
                    "list_pattern_id": np.array(self.g_lp, object),
                    "baseline_method": np.array(self.g_method, object)},
            members={"group_id": self.m_gid, "resource_id": self.m_rid},
            bg_plans={"bg_id": np.tile(np.repeat(bg_all, SLOTS), k),
                      "date": np.repeat(ev_dates, len(bg_all) * SLOTS),
                      "slot": np.tile(np.arange(1, SLOTS + 1), len(bg_all) * k),
                      "plan_wh": np.rint(plan * self.plan_noise).astype(np.int64).reshape(-1)},
            events={"group_id": np.array(ev_g, object),
                    "date": np.repeat(ev_dates, len(self.g_ids)),
                    "start_slot": np.array([s for s, _ in slots], np.int64),
                    "end_slot": np.array([e for _, e in slots], np.int64)})

    def block(self, b):
        """Values of the resources of demand BG b, from the random stream (seed, b).

        Returns (rows, receiving, device, device_plans, device-plan days, plan) with value
        arrays (days, rows, 48) int64 and plan the block's share of the counterfactual BG
        values (bgs, event days, 48).
        """
        rng = np.random.default_rng([self.seed, b + 1])
        rows = np.flatnonzero(self.dem_code == b)
        k, nd = len(rows), self.nd
        kind = self.kind[rows]
        load = (self.base_load[rows][None, :, None] * rng.uniform(0.85, 1.15, (nd, k, 1))
                * LOAD_SHAPE[None, None, :] * rng.uniform(0.9, 1.1, (nd, k, SLOTS)))
        load = np.where((kind == 3)[None, :, None], load * 8, load)  # demand sites are larger
        device = np.zeros((nd, k, SLOTS))
        is_pv, is_bat, is_ev = kind == 0, kind == 1, kind == 2
        device[:, is_pv] = (self.cap[rows][is_pv][None, :, None]
                            * self.weather[:, None, None] * SUN[None, None, :]
                            * rng.uniform(0.9, 1.0, (nd, is_pv.sum(), SLOTS)))
        ev_on = (T >= 17) & (T < 22)
        n_ev = is_ev.sum()
        charge = rng.uniform(800, 1600, (nd, n_ev, 1)) * (rng.random((nd, n_ev, 1)) < 0.7)
        device[:, is_ev] = -charge * ev_on[None, None, :]
        device[:, is_bat] = (-self.bat_night[rows][is_bat][None, :, None]
                             * (T < 6)[None, None, :])
        device = np.rint(device).astype(np.int64)
        load = np.rint(load).astype(np.int64)

        # dispatch on the event days
        actual_dev = device.copy()
        actual_load = load.copy()
        pv_sl = slice(PV_EVENT[0] - 1, PV_EVENT[1])
        ev_sl = slice(EVENING_EVENT[0] - 1, EVENING_EVENT[1])
        is_dem = kind == 3
        for j, d in enumerate(self.event_days):
            actual_dev[d, is_pv, pv_sl] = device[d, is_pv, pv_sl] // 2
            actual_dev[d, is_bat, ev_sl] = np.rint(self.discharge[j, rows][is_bat])[:, None]
            actual_dev[d, is_ev, ev_sl] = 0
            actual_load[d, is_dem, ev_sl] = (load[d, is_dem, ev_sl] * 7) // 10

        loss = self.loss[rows]
        is_m = (self.point[rows] == "m")[None, :, None]
        ok = (self.contract[rows] == 1)[None, :, None]

        def receiving(dev, ld):
            se = (dev * (1000000 - loss)[None, :, None]) // 1000000
            rec = np.where(is_m, se, 0) - ld
            return np.where(ok, rec, np.minimum(rec, 0))  # no contract: never exports

        rec_actual = receiving(actual_dev, actual_load)
        cf = receiving(device, load)[self.event_days]  # (event days, k, 48)
        n_dem = len(self.dem_ids)
        plan = np.zeros((n_dem + len(self.gen_ids), len(self.event_days), SLOTS), np.int64)
        plan[b] = np.maximum(-cf, 0).sum(axis=1)
        gen = self.gen_code[rows]
        for g in np.unique(gen[gen >= 0]):
            plan[n_dem + g] = np.maximum(cf[:, gen == g], 0).sum(axis=1)

        dplans = np.zeros((nd, k, SLOTS), np.int64)
        for d in self.event_days:
            dplans[d, is_pv] = np.rint(device[d, is_pv]
                                       * rng.uniform(0.97, 1.03, (is_pv.sum(), 1)))
        dev_present = (self.point[rows] == "m")
        dplan_present = np.zeros((nd, k), bool)
        dplan_present[np.ix_(self.event_days, np.flatnonzero(is_pv))] = True
        return (rows, rec_actual, np.where(dev_present[None, :, None], actual_dev, 0),
                dev_present, dplans, dplan_present, plan)


def generate(resources, days=8, seed=0, start=START, event_days=1):
    """Return a TsoData with `resources` sites over `days` days (>= 2), in memory."""
    p = Plan(resources, days, seed, start, event_days)
    n, nd = p.n, p.nd
    rec = np.zeros((nd, n, SLOTS), np.int64)
    dev = np.zeros((nd, n, SLOTS), np.int64)
    dplans = np.zeros((nd, n, SLOTS), np.int64)
    dev_present = np.zeros((nd, n), bool)
    dplans_present = np.zeros((nd, n), bool)
    plan = 0
    for b in range(len(p.dem_ids)):
        rows, r, d, dp, pl, plp, bplan = p.block(b)
        rec[:, rows], dev[:, rows], dplans[:, rows] = r, d, pl
        dev_present[:, rows] = dp[None, :]
        dplans_present[:, rows] = plp
        plan = plan + bplan
    return TsoData.build(days=p.dates, receiving=rec, device=dev, device_present=dev_present,
                         device_plans=dplans, device_plans_present=dplans_present,
                         **p.tables(np.swapaxes(plan, 0, 1)))


def write(resources, directory, days=8, seed=0, fmt="parquet", partitioned=False,
          start=START, event_days=1, progress=None):
    """Stream the same data set as `generate` to DIR, one demand BG at a time.

    Memory holds one demand BG's values (about 20,000 resources x days) and the static
    tables, never the whole set. progress(done, total) is called after each block.
    """
    p = Plan(resources, days, seed, start, event_days)
    os.makedirs(directory, exist_ok=True)
    sinks = {name: partitions.WideSink(directory, name, fmt, partitioned)
             for name in partitions.WIDE}
    plan = 0
    ids = p.ids
    n_blocks = len(p.dem_ids)
    try:
        for b in range(n_blocks):
            rows, rec, dev, dev_present, dplans, dplans_present, bplan = p.block(b)
            bg = p.dem_ids[b]
            for d in range(p.nd):
                sinks["receiving"].write(p.dates[d], bg, ids[rows], rec[d])
                sel = np.flatnonzero(dev_present)
                sinks["device"].write(p.dates[d], bg, ids[rows[sel]], dev[d, sel])
                sel = np.flatnonzero(dplans_present[d])
                sinks["device_plans"].write(p.dates[d], bg, ids[rows[sel]], dplans[d, sel])
            plan = plan + bplan
            if progress:
                progress(b + 1, n_blocks)
    finally:
        for sink in sinks.values():
            sink.close()
    data = assemble(p.tables(np.swapaxes(plan, 0, 1)), p.dates)
    data.save_tables(directory, fmt)
    return data
