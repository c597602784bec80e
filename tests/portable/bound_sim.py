"""A device, its polls and the integrator, simulated exactly: the proof harness of the
attribution bound (docs/integrator.md "Attribution bound"). Integers only, so it runs on
both runtimes (tests/portable/test_integrator_bound.py) and under the 31-bit checked
integrator with hypothesis (tests/host/test_integrator_bound_props.py).

Truth: power is piecewise constant per whole second, |W| <= the rating; energy in mJ is
exact (W x ms). A reading is taken at a moment somewhere in [stamp, stamp + unc] (the
poll's round trip); its counters are the truth at that moment truncated to the register's
resolution, its power the truth then. Polls follow the agent's schedule (the interval grid
and every slot boundary), each late by a jitter; some fail (singly or in outages, a failed
boundary poll retried at once like edge/agent.py does); the agent may be killed and
resume from the state saved with its last record (or a periodic save).
"""
from edge.flags import ESTIMATED
from edge.integrator import REC_LEN, Integrator
from edge.reading import (
    HAS_EXPORT, HAS_IMPORT, HAS_POWER, R_EXP_EXP, R_EXP_HI, R_EXP_LO, R_IMP_EXP, R_IMP_HI,
    R_IMP_LO, R_POWER, R_POWER_EXP, R_PRESENT,
)

MJ_PER_WH = 3600000
T0 = 2326 * 86400  # a JST midnight, edge seconds


class Rand:
    """A small LCG: the same sequence on both runtimes."""

    def __init__(self, seed):
        self.x = seed & 0x7FFFFFFF

    def below(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n if n > 0 else 0


class Profile:
    """Piecewise-constant power per second from T0: segments (start_s, W)."""

    def __init__(self, rnd, secs, pmax, bidir):
        self.seg = []
        t = 0
        lo = -pmax if bidir else 0
        while t < secs:
            k = rnd.below(4)
            if k == 0:
                w = rnd.below(pmax + 1 - lo) + lo  # anything in range
            elif k == 1:
                w = pmax if rnd.below(2) else lo  # a rail
            elif k == 2:
                w = 0
            else:
                w = (pmax - lo) // 3 + lo
            self.seg.append((t, w))
            t += 1 + (rnd.below(5) if rnd.below(3) == 0 else rnd.below(400))
        self.seg.append((secs, 0))

    def energy(self, ms):
        """(import mJ, export mJ) from T0 to ms after it."""
        ei = 0
        ee = 0
        seg = self.seg
        for i in range(len(seg) - 1):
            a = seg[i][0] * 1000
            if a >= ms:
                break
            b = seg[i + 1][0] * 1000
            if b > ms:
                b = ms
            w = seg[i][1]
            if w >= 0:
                ei += w * (b - a)
            else:
                ee -= w * (b - a)
        return ei, ee

    def power(self, ms):
        w = 0
        for s, v in self.seg:
            if s * 1000 > ms:
                break
            w = v
        return w


def _put(r, hi, lo, ex, mj, e):
    unit = MJ_PER_WH * (10 ** e) if e >= 0 else MJ_PER_WH // (10 ** -e)
    c = (mj // unit) & 0xFFFFFFFF
    r[hi] = c >> 16
    r[lo] = c & 0xFFFF
    r[ex] = e


def simulate(seed, integ=Integrator, slots=3):
    """Run one random case; returns (records, truth, cfg): records as lists of REC_LEN ints,
    truth {slot: (import mJ, export mJ)}, cfg the integrator's flagging rule."""
    rnd = Rand(seed)
    pmax = (1000, 5000, 10000, 20000)[rnd.below(4)]
    bidir = rnd.below(2)
    exp_ = (-3, -2, -1, 0)[rnd.below(4)]
    with_power = rnd.below(2)
    iv = (1, 5, 10, 30, 60)[rnd.below(5)]
    unc_max = (0, 50, 500, 3000)[rnd.below(4)]
    jitter = (0, 100, 2000)[rnd.below(3)]
    fail_pct = (0, 5, 20, 50)[rnd.below(4)]
    kill_pct = (0, 0, 1, 3)[rnd.below(4)]
    secs = slots * 1800
    prof = Profile(rnd, secs + 120, pmax, bidir)
    cfg = {"est_bp": 50, "est_min_wh": 100, "est_res_wh": 1}
    kw = {"max_power_w": pmax, "max_gap_s": (60, 600, 1800)[rnd.below(3)],
          "reg_margin_pct": 150}
    kw.update(cfg)
    it = integ(**kw)
    out = [0] * REC_LEN
    recs = []
    saved = it.save()
    r = [0] * 9
    start = rnd.below(900)  # boot mid-slot
    t = start
    outage = -1
    retried = 0
    while t < secs:
        nxt = (t // iv + 1) * iv
        if nxt - t < (iv + 1) // 2:
            nxt += iv
        b = (t // 1800 + 1) * 1800
        if b < nxt:
            nxt = b
        if outage < 0 and rnd.below(200) == 0:
            outage = t + rnd.below(600)  # link down until then
        ok = rnd.below(100) >= fail_pct and (outage < 0 or t >= outage)
        if outage >= 0 and t >= outage:
            outage = -1
        stamp_ms = t * 1000 + rnd.below(jitter + 1)
        unc = rnd.below(unc_max + 1)
        if ok:
            moment = stamp_ms + rnd.below(unc + 1)
            ei, ee = prof.energy(moment)
            r[R_PRESENT] = HAS_IMPORT | (HAS_EXPORT if bidir else 0) | (HAS_POWER if with_power else 0)
            _put(r, R_IMP_HI, R_IMP_LO, R_IMP_EXP, ei, exp_)
            _put(r, R_EXP_HI, R_EXP_LO, R_EXP_EXP, ee, exp_)
            r[R_POWER] = prof.power(moment)
            r[R_POWER_EXP] = 0
            s = T0 + stamp_ms // 1000
            if it.feed(r, s, stamp_ms % 1000, out, unc):
                recs.append(list(out))
                saved = it.save()
            while it.pending():
                it.advance(s, out)
                recs.append(list(out))
                saved = it.save()
        elif t % 1800 < 10 and retried < 3:  # boundary poll failed: retry at once
            retried += 1
            t += 1
            continue
        retried = 0
        if rnd.below(100) < kill_pct:  # killed: resume from the last saved state
            it = integ(**kw)
            it.restore(saved)
        if rnd.below(20) == 0:
            saved = it.save()  # periodic save (save_every_s)
        t = nxt
        while it.advance(T0 + t, out):
            recs.append(list(out))
            saved = it.save()
    while it.close(out):
        recs.append(list(out))
    truth = {}
    for k in range(T0 // 1800, (T0 + secs) // 1800 + 1):
        a = prof.energy(k * 1800000 - T0 * 1000)
        z = prof.energy((k + 1) * 1800000 - T0 * 1000)
        truth[k] = (z[0] - a[0], z[1] - a[1])
    cfg = dict(cfg, digits=2 if bidir else 1)  # registers counting: one digit each
    return recs, truth, cfg


def check(recs, truth, cfg):
    """Every record with a bound is within it; every record not flagged `estimated` is
    within the configured share (est_bp of max(value, est_min_wh) + est_res_wh per
    register direction). Returns
    (records checked, largest error / bound seen as a (num, den) pair)."""
    n = 0
    worst = (0, 1)
    for rec in recs:
        k, imp, exp, fl, bound = rec[0], rec[1], rec[2], rec[3], rec[6]
        if k not in truth or k * 1800 < T0:
            continue
        ti, te = truth[k]
        err = abs(imp * MJ_PER_WH - ti) + abs(exp * MJ_PER_WH - te)  # mJ
        if bound >= 0:
            assert err <= bound * MJ_PER_WH, (rec, ti, te, err)
            if bound and err * worst[1] > worst[0] * bound * MJ_PER_WH:
                worst = (err, bound * MJ_PER_WH)
        if not fl & ESTIMATED:
            v = imp + exp
            if v < cfg["est_min_wh"]:
                v = cfg["est_min_wh"]
            thr = v * cfg["est_bp"] * MJ_PER_WH // 10000 + cfg["est_res_wh"] * cfg["digits"] * MJ_PER_WH
            assert bound >= 0 and err <= thr, (rec, ti, te, err, thr)
        n += 1
    return n, worst
