"""Fixed-point 30-minute integrator (30分値の積算): readings in, closed JST slots out.

Sources, per direction (import = energy the device took in, export = delivered):
  register  cumulative counter deltas from the reading list (edge/reading.py), 32-bit
            counters as 16-bit halves; authoritative when present.
  power     trapezoid integral of power samples; the cross-check when a register exists.

Units (integers only, every intermediate inside +-2**30, see docs/integrator.md):
  power     10**power_exp W ("pu"); time in ms; power energy in base units of
            half-pu-ms, U = 7,200,000 * 10**-power_exp of them per Wh. A trapezoid
            (p0 + p1) * dt is then an integer number of base units.
  register  energy counted in mWh (register exponents -3..3), 1000 per Wh.
Each direction keeps its Wh for the open slot plus a carried sub-Wh remainder; nothing is
dropped at slot close, so the sum of slot Wh plus the remainder equals the integral.

A segment that straddles a slot boundary is split at the boundary: the open slot gets
floor(exact area up to the boundary), the next slot the rest of the exact segment total,
so splitting loses nothing. A segment between samples of opposite sign is split at its
zero crossing: each direction gets floor(its exact triangle), the same fraction (< 1 base
unit) is dropped from both, so net energy stays exact (docs/integrator.md).

A plausible register delta that cannot be placed precisely (a gap longer than max_gap_s
across a boundary, a restart, a register not read at a boundary) is spread over the slots
it spans by time, flagged `estimated`: its total is exact, its split estimated. Nothing
counted is dropped (docs/integrator.md, "Energy is conserved").

Closed slots are written to a caller-owned record list (REC_LEN ints); feed(), advance()
and close() each write at most one (the whole slots of a spread are pending and come out
one per call). The state is a flat list of ints (save()/restore()) that the agent persists
across power cuts (docs/store-and-forward.md). The steady-state path allocates nothing.
"""
from edge.compat import const
from edge.errors import EdgeError
from edge.flags import CLOCK_STEP, ESTIMATED, INVALID, MISMATCH, MISSING, PARTIAL, RESET
from edge.int31 import limbs, lsub, muldiv
from edge.reading import (
    HAS_EXPORT,
    HAS_IMPORT,
    HAS_POWER,
    R_EXP_EXP,
    R_EXP_HI,
    R_EXP_LO,
    R_IMP_EXP,
    R_IMP_HI,
    R_IMP_LO,
    R_POWER,
    R_POWER_EXP,
    R_PRESENT,
)


class IntegratorError(EdgeError):
    kind = "integrator"


# Closed-slot record: [abs slot, import Wh, export Wh, flags, power import Wh, power export Wh]
# (the power columns are the cross-check integral, -1 when the slot had no power samples).
REC_SLOT = const(0)
REC_IMPORT = const(1)
REC_EXPORT = const(2)
REC_FLAGS = const(3)
REC_PW_IMPORT = const(4)
REC_PW_EXPORT = const(5)
REC_BOUND = const(6)  # attribution bound, Wh: |value - true energy of the slot| <= it; -1 unknown
REC_LEN = const(7)

STATE_VERSION = const(4)
# State list layout.
_VER = const(0)
_OPEN = const(1)  # open absolute slot, -1 when none
_FLAGS = const(2)  # flags of the open slot
_COVER = const(3)  # ms of the open slot covered by integrated intervals
_USED = const(4)  # sources seen in the open slot: _SRC_* bits
_HAVE = const(5)  # 1 when a previous sample (time base) exists
_TS = const(6)  # previous sample: edge seconds
_TMS = const(7)  # previous sample: ms 0..999
_P = const(8)  # previous power, pu
_POK = const(9)  # 1 when the previous sample had a usable power value
_PI = const(10)  # power import: Wh of open slot; _PI + 1: remainder in base units
_PE = const(12)  # power export: same
_RI = const(14)  # import register block (_G_* offsets)
_RE = const(22)  # export register block
_LAST = const(30)  # last slot written to a record, -1 none
_SP_K = const(31)  # next pending spread slot, -1 when nothing is pending
_SP_END = const(32)  # slot the spread ended in (the open slot): pending slots are < it
_SP_D = const(33)  # ms from the start of _SP_END to the sample that ended the spread
_SP_FL = const(34)  # flags of the pending records
_SI = const(35)  # import spread: delta mWh (-1 none), interval ms, mWh carry, share so far
_SE = const(39)  # export spread: same
_RIU = const(43)  # import register base: uncertainty of its sample time, ms
_REU = const(44)  # export register base: same
_EB = const(45)  # bound at the open slot's start boundary, mWh (_BIG: unknown)
_SP_U0 = const(46)  # spread: uncertainty of the registers' base and of the sample, ms
_SP_U1 = const(47)
_SP_R = const(48)  # spread: counter resolution of its registers, mWh
_CIN = const(49)  # mWh remainders carried into the open slot: import * 1000 + export
STATE_LEN = const(50)
# _USED bits: the sources a slot's values came from.
_SRC_POWER = const(1)
_SRC_IMP = const(2)  # import register
_SRC_EXP = const(4)  # export register
# Register block offsets.
_G_OK = const(0)
_G_HI = const(1)
_G_LO = const(2)
_G_EXP = const(3)
_G_S = const(4)
_G_MS = const(5)
_G_WH = const(6)
_G_REM = const(7)  # mWh 0..999 carried

_U_SLOT = const(1800)
_SLOT_MS = const(1800000)
_MAX_S = const(0x3FFF0000)
_LIM = const(0x3FFFFFFF)
_NONE = const(-1)
_BAD = const(-2)
_PBAD = const(0x3FFFFFFF)  # _power() result for an unusable value (above any max power)
# Scratch layout (self._t): per direction this feed's register delta in mWh (-1: none) and
# the interval it spans in ms, at _X_IMP/_X_EXP and the next entry; a muldiv remainder;
# ms from a crossed boundary to the sample; limbs for scale-factor changes; RESET if this
# feed saw a reset; ESTIMATED if a delta's placement is estimated.
_X_IMP = const(0)  # import: delta mWh; _X_IMP + 1 its interval ms
_X_EXP = const(3)  # export: same
_X_REM = const(6)
_X_TAIL = const(7)
_X_LA = const(8)
_X_LB = const(12)
_X_RST = const(16)
_X_EST = const(17)
_X_EB = const(18)  # bound at the boundary the next _close()/_open() is at, mWh
_X_U = const(19)  # uncertainty of this feed's sample time, ms
_BIG = const(0x20000000)  # "no bound": at or above it a bound is unknown
_BND_MS = const(7200000)  # longest window multiplied by the power bound (fits 31 bits)

_P10 = (1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000)


class Integrator:
    """One device's 30-minute integrator. Configuration is fixed at construction.

    max_power_w: plausibility and range bound for power and register deltas (device rating).
    power_exp: resolution of power arithmetic, 10**power_exp W (-1..3; finer readings round).
    max_gap_s: a sample interval longer than this is not integrated (slots flagged).
    missing_ms: uncovered time in a slot above which it is flagged `missing`.
    reg_margin_pct: a register delta above max_power * elapsed * margin is a reset.
    mismatch_wh, mismatch_pct: register vs power tolerance (abs Wh + % of register).
    max_spread_s: longest interval a register delta is spread over (estimated) when it
        cannot be placed precisely; -1: 86400 or the most that 31-bit arithmetic allows.
    est_bp, est_min_wh, est_res_wh: the flagging rule for the attribution bound
        (REC_BOUND): a slot whose bound exceeds est_bp/10000 of max(value, est_min_wh)
        plus est_res_wh is flagged `estimated`; est_bp 0 turns the rule off (the bound
        is still computed). The agent takes them from its configuration (docs/config.md).
    """

    def __init__(self, max_power_w=20000, power_exp=-1, max_gap_s=60, missing_ms=90000,
                 reg_margin_pct=150, mismatch_wh=2, mismatch_pct=5, max_spread_s=-1,
                 est_bp=0, est_min_wh=100, est_res_wh=1):
        if not -1 <= power_exp <= 3:
            raise IntegratorError("power_exp must be -1..3")
        if not 1 <= max_gap_s <= _U_SLOT:
            raise IntegratorError("max_gap_s must be 1..1800")
        if not 1 <= max_power_w <= 500000:
            raise IntegratorError("max_power_w must be 1..500000")
        if not 100 <= reg_margin_pct <= 1000:
            raise IntegratorError("reg_margin_pct must be 100..1000")
        if not 0 <= missing_ms <= _SLOT_MS or mismatch_wh < 0 or not 0 <= mismatch_pct <= 100:
            raise IntegratorError("missing_ms 0..1800000, mismatch_wh >= 0, mismatch_pct 0..100")
        if power_exp <= 0:
            pmax = max_power_w * _P10[-power_exp]
            u = 7200000 * _P10[-power_exp]
        else:
            pmax = max_power_w // _P10[power_exp]
            u = 7200000 // _P10[power_exp]
        if pmax < 1:
            raise IntegratorError("max_power_w is below the power resolution 10**power_exp W")
        # Worst cases of _add(): q*s and the remainder sum; of the plausibility limit.
        if 2 * pmax * max_gap_s > _LIM or 2 * u + 2 * pmax * 1000 > _LIM:
            raise IntegratorError("max_power_w too large for power_exp/max_gap_s in 31-bit arithmetic")
        if (max_power_w * _U_SLOT // 36 + 1) * reg_margin_pct > _LIM:
            raise IntegratorError("max_power_w * reg_margin_pct too large")
        # Longest interval whose plausibility limit (+ 10**6 mWh quantisation slack) stays
        # in 31 bits; 72 h keeps interval ms below 2**29 (muldiv's divisor bound).
        fit = ((_LIM - 2000000) * 10 // reg_margin_pct - 1) * 36 // max_power_w
        if fit > 259200:
            fit = 259200
        if max_spread_s == -1:
            max_spread_s = 86400 if fit > 86400 else fit
        if not _U_SLOT <= max_spread_s <= fit:
            raise IntegratorError("max_spread_s must be 1800..%d" % fit)
        if not (0 <= est_bp <= 10000 and 0 <= est_min_wh <= 1000000 and 0 <= est_res_wh <= 1000):
            raise IntegratorError("est_bp/est_min_wh/est_res_wh out of range")
        self.max_spread_s = max_spread_s
        self.max_power_w = max_power_w
        self._est_bp = est_bp
        self._est_min = est_min_wh
        self._est_res = est_res_wh
        self.power_exp = power_exp
        self.max_gap_s = max_gap_s
        self._pmax = pmax
        self._u = u
        self._k = u // 1000
        self._gap_ms = max_gap_s * 1000
        self._miss = missing_ms
        self._margin = reg_margin_pct
        self._mm_wh = mismatch_wh
        self._mm_pct = mismatch_pct
        self.st = [0] * STATE_LEN
        self.st[_VER] = STATE_VERSION
        self.st[_OPEN] = -1
        self.st[_LAST] = -1
        self.st[_SP_K] = -1
        self.st[_EB] = _BIG
        self._t = [0] * 20

    # ---- persistence -------------------------------------------------------------
    def save(self, dst=None):
        """The state as a list of STATE_LEN small ints (copied into dst if given)."""
        if dst is None:
            return list(self.st)
        for i in range(STATE_LEN):
            dst[i] = self.st[i]
        return dst

    def restore(self, src):
        """Load a state produced by save(); raises IntegratorError if it is not one."""
        if len(src) != STATE_LEN or src[_VER] != STATE_VERSION:
            raise IntegratorError("not an integrator state of version %d" % STATE_VERSION)
        for i in range(STATE_LEN):
            v = src[i]
            if not isinstance(v, int) or v < -_LIM or v > _LIM:
                raise IntegratorError("integrator state entry %d out of range" % i)
        for i in range(STATE_LEN):
            self.st[i] = src[i]

    # ---- public feed/close -------------------------------------------------------
    def open_slot(self):
        """Absolute number of the open slot, -1 if none."""
        return self.st[_OPEN]

    def coverage(self):
        """ms of the open slot covered by integrated intervals so far."""
        return self.st[_COVER]

    def note_clock_step(self):
        """The agent stepped the clock (e.g. a time sync): flag the open slot."""
        if self.st[_OPEN] >= 0:
            self.st[_FLAGS] |= CLOCK_STEP

    def shift_base(self, ds, dms):
        """The clock was stepped back by ds s + dms ms (ds < 0, dms 0..999) after the base
        sample: re-stamp the base (power and registers) on the new clock, so the next
        delta is judged over its true interval and lands in the open slot instead of being
        dropped as a clock going back (edge/agent.py holds polls until the clock is back in
        the open slot). Flags the open slot clock_step."""
        st = self.st
        self.note_clock_step()
        if not st[_HAVE]:
            return
        for o in (_TS, _RI + _G_S, _RE + _G_S):  # each followed by its ms
            s = st[o] + ds
            ms = st[o + 1] + dms
            if ms > 999:
                ms -= 1000
                s += 1
            if s < 0:
                s = 0
                ms = 0
            st[o] = s
            st[o + 1] = ms

    def pending(self):
        """Spread records waiting to be written (advance(), feed() and close() write them)."""
        st = self.st
        return st[_SP_END] - st[_SP_K] if st[_SP_K] >= 0 else 0

    def close(self, out):
        """Write a pending record, else close the open slot (end of data, shutdown); returns
        records written (0/1): loop `while it.close(out):` to drain everything."""
        if self.st[_SP_K] >= 0:
            return self._drain(out)
        if self.st[_OPEN] < 0:
            return 0
        self._t[_X_EB] = self._eb_open()
        return self._close(out, 0)

    def advance(self, edge_s, out):
        """No sample arrived: write a pending record, or close the open slot once no later
        sample could still belong to it."""
        st = self.st
        if st[_SP_K] >= 0:
            return self._drain(out)
        if st[_OPEN] >= 0 and edge_s >= (st[_OPEN] + 1) * _U_SLOT + self.max_gap_s:
            self._t[_X_EB] = self._eb_open()
            return self._close(out, 0)
        return 0

    def feed(self, r, s, ms, out, unc=0):
        """One reading at edge second s + ms; writes at most one record to out[0:REC_LEN].

        unc: the device took the reading at some moment in [s.ms, s.ms + unc ms] (the
        poll's round trip plus the clock's error bound); it widens the slot's bound.
        Returns the number of records written (0 or 1). With records pending, one is
        written first and the reading is integrated only if it closes nothing; otherwise
        it is skipped (registers are cumulative: the next reading's delta covers it)."""
        if s < 0 or s > _MAX_S or ms < 0 or ms > 999:
            raise IntegratorError("sample time out of range")
        if unc < 0 or unc > _BND_MS:
            unc = _BND_MS
        st = self.st
        t = self._t
        t[_X_U] = unc
        t[_X_EB] = _BIG
        n = 0
        if st[_SP_K] >= 0:
            n = self._drain(out)  # below, nothing else can write a record
            if s // _U_SLOT != st[_OPEN] or s < st[_TS] or (s == st[_TS] and ms <= st[_TMS]):
                return 1
        pres = r[R_PRESENT]
        bad = 0
        p = 0
        if pres & HAS_POWER:
            p = self._power(r[R_POWER], r[R_POWER_EXP])
            if p == _PBAD:
                bad = INVALID
                pres &= ~HAS_POWER
        if pres & HAS_IMPORT and not self._reg_ok(r[R_IMP_HI], r[R_IMP_LO], r[R_IMP_EXP]):
            bad = INVALID
            pres &= ~HAS_IMPORT
        if pres & HAS_EXPORT and not self._reg_ok(r[R_EXP_HI], r[R_EXP_LO], r[R_EXP_EXP]):
            bad = INVALID
            pres &= ~HAS_EXPORT
        slot = s // _U_SLOT
        op = st[_OPEN]
        gapped = 0
        if op < 0 or not st[_HAVE]:
            f = st[_LAST] + 1
            # A reading newer than the base but stamped in a slot already closed (advance()
            # ran before a late reply was handled): its delta is energy, not a restart.
            late = slot < f and st[_HAVE] and (s > st[_TS] or s == st[_TS] and ms > st[_TMS])
            if (op >= 0 or not st[_HAVE] or st[_LAST] < 0 or (slot < f and not late)
                    or not (pres & HAS_IMPORT and st[_RI + _G_OK]
                            or pres & HAS_EXPORT and st[_RE + _G_OK])):
                # What the slot misses before this first reading: <= P (a + unc) + r.
                x = 0
                if pres & HAS_IMPORT:
                    x = _P10[r[R_IMP_EXP] + 3]
                if pres & HAS_EXPORT:
                    x += _P10[r[R_EXP_EXP] + 3]
                t[_X_EB] = self._eb(0, 0, 0, x, 1, _BIG, (s - slot * _U_SLOT) * 1000 + ms + unc, -1, 0)
                self._open(slot)
                st[_FLAGS] |= bad
                self._rebase(r, pres, p, s, ms, 1)
                return 0
            # The open slot was closed before this reading (advance): the register deltas
            # since the last base go to the slots from the first one not yet written.
            k = self.max_spread_s // _U_SLOT + 1
            if slot - f > k:
                f = slot - k
            t[_X_EB] = 0  # what lands here from before its start is bounded below
            self._open(f)
            op = f
            gapped = 1
            if late:
                slot = f  # its energy moves later, into f (estimated), never lost
        dts = s - st[_TS]
        if dts < 0 or (dts == 0 and ms <= st[_TMS]):
            if dts == 0 and ms == st[_TMS]:
                st[_FLAGS] |= INVALID  # duplicate timestamp: sample ignored
                return 0
            self._stepped_back(r, pres, p, s, ms, bad)
            return n
        dt = _NONE
        if dts <= self.max_gap_s and not gapped:
            dt = dts * 1000 + ms - st[_TMS]
            if dt > self._gap_ms:
                dt = _NONE
        pw = st[_POK] and pres & HAS_POWER and dt > 0
        p0 = st[_P]
        cross = slot != op
        # Register deltas first (they need the old base), shares applied around the close.
        cov = pw
        t[_X_RST] = 0
        t[_X_EST] = 0
        if self._reg_prepare(_RI, _X_IMP, pres & HAS_IMPORT, r[R_IMP_HI], r[R_IMP_LO], r[R_IMP_EXP], s, ms, op, cross):
            cov = 1
        if self._reg_prepare(_RE, _X_EXP, pres & HAS_EXPORT, r[R_EXP_HI], r[R_EXP_LO], r[R_EXP_EXP], s, ms, op, cross):
            cov = 1
        if dt < 0:
            cov = 0
        est = t[_X_EST]
        bad |= t[_X_RST] | est
        st[_FLAGS] |= est
        if not cross:
            if pw:
                self._pw(_PI, p0, p, dt, -1, 0)
                self._pw(_PE, -p0, -p, dt, -1, 0)
            if est:
                # The delta's base lies before this slot: energy from before its start
                # boundary lands here. Bound it like a boundary read that late.
                x = st[_EB] + self._bt((s - op * _U_SLOT) * 1000 + ms, 1)
                st[_EB] = x if x < _BIG else _BIG
            self._rapply(_RI, _X_IMP, 0)
            self._rapply(_RE, _X_EXP, 0)
            if cov:
                st[_COVER] += dt
            elif est and (not st[_POK] or (t[_X_IMP] >= 0 and t[_X_EXP] >= 0)):
                g = self._elapsed_ms(s, ms)
                k = (s - slot * _U_SLOT) * 1000 + ms
                if k > 0:
                    st[_COVER] += g if g < k else k
        elif slot == op + 1 and dt > 0:
            tau = ((op + 1) * _U_SLOT - st[_TS]) * 1000 - st[_TMS]
            t[_X_TAIL] = dt - tau
            u = st[_USED]
            if est or (u & _SRC_IMP and st[_RI + _G_OK] and t[_X_IMP] < 0) or (u & _SRC_EXP and st[_RE + _G_OK] and t[_X_EXP] < 0):
                t[_X_EB] = _BIG  # a register used in the slot was not read here (partial)
            else:
                t[_X_EB] = self._bt(dt - tau, 0)
            if pw:
                self._pw(_PI, p0, p, dt, tau, 0)
                self._pw(_PE, -p0, -p, dt, tau, 0)
            self._rapply(_RI, _X_IMP, 1)
            self._rapply(_RE, _X_EXP, 1)
            if cov:
                st[_COVER] += tau
            n = self._close(out, (_SRC_IMP if t[_X_IMP] >= 0 else 0) | (_SRC_EXP if t[_X_EXP] >= 0 else 0))
            self._open(slot)
            if pw:
                self._pw(_PI, p0, p, dt, tau, 1)
                self._pw(_PE, -p0, -p, dt, tau, 1)
                st[_USED] |= _SRC_POWER
            self._rapply(_RI, _X_IMP, 2)
            self._rapply(_RE, _X_EXP, 2)
            if cov:
                st[_COVER] += dt - tau
        elif t[_X_IMP] >= 0 or t[_X_EXP] >= 0:
            n = self._spread(out, op, slot, s, ms)
        else:
            # A gap across a boundary without registers: both slots show the hole.
            n = self._close(out, 0)
            self._open(slot)
        st[_FLAGS] |= bad
        self._rebase(r, pres, p, s, ms, 0)
        return n

    def _stepped_back(self, r, pres, p, s, ms, bad):
        """A reading stamped before the base: the clock went back without a step the agent
        knew of (shift_base). Where the energy since the base fell is unknown, how much is
        not: the register deltas go wholly to the open slot (flagged clock_step and
        estimated, bound unknown), which stays open, since closing it before its end, or
        reopening a closed slot, would give a slot twice. The time base keeps its stamp, so
        readings land here until the clock passes it; the registers' bases take this
        stamp, so the next delta is judged over the interval the clock shows."""
        st = self.st
        st[_FLAGS] |= CLOCK_STEP | ESTIMATED | bad
        st[_EB] = _BIG
        w = self.max_spread_s * 1000
        for g, has, i in ((_RI, HAS_IMPORT, R_IMP_HI), (_RE, HAS_EXPORT, R_EXP_HI)):
            if not (pres & has and st[g + _G_OK]):
                continue
            el = (s - st[g + _G_S]) * 1000 + ms - st[g + _G_MS]
            if el <= 0 or el > w:
                el = w  # its interval is unknown: plausible over the widest window
            dlt = self._rdelta_u(g, r[i], r[i + 1], r[i + 2], el)
            if dlt < 0:
                st[_FLAGS] |= RESET
            else:
                self._radd(g, dlt)
                st[_USED] |= _SRC_IMP if g == _RI else _SRC_EXP
        s0 = st[_TS]
        ms0 = st[_TMS]
        self._rebase(r, pres, p, s, ms, 0)
        st[_TS] = s0
        st[_TMS] = ms0

    # ---- estimated spread ----------------------------------------------------------
    def _elapsed_ms(self, s, ms):
        """ms since the previous sample, capped at max_spread_s."""
        st = self.st
        d = s - st[_TS]
        if d > self.max_spread_s:
            return self.max_spread_s * 1000
        return d * 1000 + ms - st[_TMS]

    def _spread(self, out, f, S, s, ms):
        """A gap across boundaries with register deltas: slot f closes with its share, the
        slots between become pending records (drained one per call), S opens with the rest.
        All shares are cumulative floors of one time-proportional split, so they sum exactly."""
        st = self.st
        t = self._t
        d = (s - S * _U_SLOT) * 1000 + ms  # ms from the start of S to the sample
        j = S - 1 - f
        if j > 200:
            j = 200  # beyond max_spread_s anyway
        # Bounds at f's end and S's start, from the whole deltas (before _spread_split splits them);
        # what the pending records need for theirs is kept in the state.
        t[_X_EB] = self._bt(d + j * _SLOT_MS, 0)
        eb_s = self._bt(d, 0)
        x = st[_EB] + self._bt((s - f * _U_SLOT) * 1000 + ms, 1)
        st[_EB] = x if x < _BIG else _BIG
        st[_SP_U0] = st[_RIU] if st[_RIU] > st[_REU] else st[_REU]
        st[_SP_U1] = t[_X_U]
        st[_SP_R] = (_P10[st[_RI + _G_EXP] + 3] if t[_X_IMP] >= 0 else 0) + (_P10[st[_RE + _G_EXP] + 3] if t[_X_EXP] >= 0 else 0)
        # Do the deltas account for both directions? One known only from power is not.
        full = not st[_POK] or (t[_X_IMP] >= 0 and t[_X_EXP] >= 0)
        g = self._elapsed_ms(s, ms)
        if full:
            x = g - d - j * _SLOT_MS  # gap ms inside f
            if x > 0:
                k = _SLOT_MS - st[_COVER]
                st[_COVER] += x if x < k else k
        k = self._spread_split(_RI, _X_IMP, _SI, j, d)
        x = self._spread_split(_RE, _X_EXP, _SE, j, d)
        if x > k:
            k = x
        st[_FLAGS] |= ESTIMATED
        st[_CIN] = _NONE  # _spread_split moved the carries past the pending slots: flooring unknown
        n = self._close(out, (_SRC_IMP if t[_X_IMP] >= 0 else 0) | (_SRC_EXP if t[_X_EXP] >= 0 else 0))
        k = S - k
        if k <= f:
            k = f + 1
        if k < S:
            st[_SP_K] = k
            st[_SP_END] = S
            st[_SP_D] = d
            st[_SP_FL] = ESTIMATED if full else ESTIMATED | PARTIAL | MISSING
        t[_X_EB] = eb_s
        self._open(S)
        st[_FLAGS] = ESTIMATED
        if t[_X_IMP] >= 0:
            self._radd(_RI, t[_X_IMP])
            st[_USED] |= _SRC_IMP
        if t[_X_EXP] >= 0:
            self._radd(_RE, t[_X_EXP])
            st[_USED] |= _SRC_EXP
        if full:
            st[_COVER] = g if g < d else d
        return n

    def _spread_split(self, g, x, b, j, d):
        """Spread block b from the delta at scratch x: the share up to the end of the
        closing slot now, the carry past the pending slots into S, S's share back into
        scratch x. Returns how many slots before S get a share."""
        st = self.st
        t = self._t
        dl = t[x]
        st[b] = dl
        if dl < 0:
            return 0
        el = t[x + 1]
        st[b + 1] = el
        c = self._share(dl, el - d - j * _SLOT_MS, el)
        self._radd(g, c)
        st[_USED] |= _SRC_IMP if g == _RI else 4
        r = st[g + _G_REM]
        st[b + 2] = r
        st[b + 3] = c
        c2 = self._share(dl, el - d, el)
        r += c2 - c
        w = r // 1000
        st[g + _G_REM] = r - w * 1000
        t[x] = dl - c2
        if el <= d:
            return 0
        return (el - d - 1) // _SLOT_MS + 1

    def _drain(self, out):
        """Write the next pending spread record (register shares only, no power)."""
        st = self.st
        k = st[_SP_K]
        q = (st[_SP_END] - 1 - k) * _SLOT_MS + st[_SP_D]  # ms from the end of k to the sample
        out[REC_SLOT] = k
        out[REC_IMPORT] = self._pending_share(_SI, q)
        out[REC_EXPORT] = self._pending_share(_SE, q)
        a = self._eb(q + _SLOT_MS, st[_SP_U0], st[_SP_U1], st[_SP_R], 0,
                     st[_SI], st[_SI + 1], st[_SE], st[_SE + 1])
        b = self._eb(q, st[_SP_U0], st[_SP_U1], st[_SP_R], 0,
                     st[_SI], st[_SI + 1], st[_SE], st[_SE + 1])
        nd = (1 if st[_SI] >= 0 else 0) + (1 if st[_SE] >= 0 else 0)
        self._bound_out(out, a, b, st[_SP_R] + 1000 * nd, st[_SP_FL], nd)  # + each share's flooring
        out[REC_PW_IMPORT] = _NONE
        out[REC_PW_EXPORT] = _NONE
        st[_LAST] = k
        k += 1
        st[_SP_K] = k if k < st[_SP_END] else _NONE
        return 1

    def _pending_share(self, b, q):
        st = self.st
        dl = st[b]
        if dl < 0:
            return 0
        el = st[b + 1]
        c = self._share(dl, el - q, el)
        r = st[b + 2] + c - st[b + 3]
        w = r // 1000
        st[b + 2] = r - w * 1000
        st[b + 3] = c
        return w

    # ---- slots -------------------------------------------------------------------
    def _open(self, slot):
        st = self.st
        st[_OPEN] = slot
        st[_FLAGS] = 0
        st[_COVER] = 0
        st[_USED] = 0
        st[_PI] = 0
        st[_PE] = 0
        st[_RI + _G_WH] = 0
        st[_RE + _G_WH] = 0
        st[_EB] = self._t[_X_EB]
        st[_CIN] = st[_RI + _G_REM] * 1000 + st[_RE + _G_REM]

    def _close(self, out, regdone):
        """Emit the open slot. regdone: register bits (_SRC_IMP, _SRC_EXP) whose delta reached the
        boundary in this feed; a register used in the slot that did not is incomplete
        (its energy from its last reading to the boundary is not in this slot)."""
        st = self.st
        fl = st[_FLAGS]
        cover = st[_COVER]
        if cover < _SLOT_MS:
            fl |= PARTIAL
        late = st[_USED] & ~regdone
        if (late & _SRC_IMP and st[_RI + _G_OK]) or (late & _SRC_EXP and st[_RE + _G_OK]):
            fl |= PARTIAL
        if cover == 0 or _SLOT_MS - cover > self._miss:
            fl |= MISSING
        used = st[_USED]
        pi = _NONE
        pe = _NONE
        if used & _SRC_POWER:
            pi = st[_PI]
            pe = st[_PE]
        imp = st[_RI + _G_WH] if used & _SRC_IMP else (pi if used & _SRC_POWER else 0)
        exp = st[_RE + _G_WH] if used & _SRC_EXP else (pe if used & _SRC_POWER else 0)
        if used & _SRC_POWER:
            if used & _SRC_IMP and self._mismatch(imp, pi):
                fl |= MISMATCH
            if used & _SRC_EXP and self._mismatch(exp, pe):
                fl |= MISMATCH
        out[REC_SLOT] = st[_OPEN]
        out[REC_IMPORT] = imp
        out[REC_EXPORT] = exp
        # Resolution once per register, plus what flooring to whole Wh moved: the change
        # of the carried remainder (unknown after a spread: 1 Wh).
        r = 0
        nd = 0
        c = st[_CIN]
        if used & _SRC_IMP and st[_RI + _G_OK]:
            x = c // 1000 - st[_RI + _G_REM] if c >= 0 else 1000
            r = _P10[st[_RI + _G_EXP] + 3] + (x if x >= 0 else -x)
            nd = 1
        if used & _SRC_EXP and st[_RE + _G_OK]:
            x = c % 1000 - st[_RE + _G_REM] if c >= 0 else 1000
            r += _P10[st[_RE + _G_EXP] + 3] + (x if x >= 0 else -x)
            nd += 1
        self._bound_out(out, st[_EB], self._t[_X_EB], r, fl, nd)
        out[REC_PW_IMPORT] = pi
        out[REC_PW_EXPORT] = pe
        st[_LAST] = st[_OPEN]
        st[_OPEN] = -1
        return 1

    # ---- attribution bound (docs/integrator.md "Attribution bound") -------------------
    def _bound_out(self, out, a, b, r, fl, nd):
        """REC_BOUND from the bounds at the slot's two boundaries (mWh) and r: the
        counters' resolution (once: the truncations at both ends partly cancel, see
        docs/integrator.md) plus what flooring to whole Wh moved (the carried remainders'
        change); then the flagging rule into REC_FLAGS (imp/exp already in out), with one
        digit (est_res_wh) per value counted by a register (nd of them, at least one),
        as the certification comparison allows one per compared direction."""
        w = _NONE
        if a < _BIG and b < _BIG and r < _BIG and not fl & RESET:  # a dropped delta: no bound
            w = (a + b + r + 999) // 1000
        out[REC_BOUND] = w
        bp = self._est_bp
        if bp:
            v = out[REC_IMPORT]
            x = out[REC_EXPORT]
            v = v + x if 0 <= v < _BIG and 0 <= x < _BIG else _BIG
            if v < self._est_min:
                v = self._est_min
            thr = (v // 10000) * bp + (v % 10000) * bp // 10000 + self._est_res * (nd if nd > 1 else 1)
            if w < 0 or w > thr:
                fl |= ESTIMATED
        out[REC_FLAGS] = fl

    def _eb(self, b, u0, u1, r, side, i, ie, e, ee):
        """mWh bound on the time-attribution error at a boundary b ms before a reading,
        from register deltas i, e (mWh, -1 absent, _BIG unknown) over intervals ie, ee ms
        ending at that reading; sample times uncertain by u0 (the base) and u1 (the
        reading); counter resolution r mWh (side 1 only; the slot adds it once:
        _bound_out).

        side 0, an interval split at the boundary: per direction (_e1), with P =
        max_power_w, the smaller of P x the time to either reading (plus the sample-time
        uncertainty that side carries) and the delta itself; summed over directions
        (errors of opposite sign in the two directions add up).
        _BIG without a delta: power samples bound nothing between them.
        side 1, energy from before the boundary that lands after it: min(P a, deltas + r),
        a the distance to the earliest base before it; 0 if none lies before it."""
        if side:
            m = -1
            if i >= 0:
                m = ie - b
            if e >= 0 and ee - b > m:
                m = ee - b
            if m < 0:
                return 0
            a = _BIG
            if m <= _BND_MS:
                a = self._pms(m)
            if i < _BIG and e < _BIG:
                m = (i if i > 0 else 0) + (e if e > 0 else 0) + r
                if m < a:
                    a = m
            return a
        if i < 0 and e < 0:
            return _BIG
        a = 0
        if i >= 0:
            a = self._e1(b, u0, u1, i, ie)
        if e >= 0 and a < _BIG:
            a += self._e1(b, u0, u1, e, ee)
        return a if a < _BIG else _BIG

    def _e1(self, b, u0, u1, dl, el):
        """One direction's side-0 bound: the reading after the boundary (b ms, its sample
        up to u1 later) gives P (b + u1); the base before it (el - b ms before, its sample
        up to u0 later, so possibly past the boundary) gives P (el - b + u0 + u1); and the
        boundary lies between the two samples unless the base's sample may be past it, so
        the delta caps it, plus P times that overlap."""
        a = el - b
        m = a + u0 + u1
        if b + u1 < m:
            m = b + u1
        x = _BIG
        # m < 0 (the base's sample may lie after the boundary): no power bound is claimed,
        # the delta below caps it (and muldiv takes no negative factor)
        if 0 <= m <= _BND_MS:
            x = self._pms(m)
        if dl < _BIG:
            # The counters' resolution is added once per slot (_bound_out), not here: with
            # the base's sample at or before the boundary, the interpolated value V and the
            # truth T there satisfy -(dl + r) < V - T <= dl, so across the slot's two
            # boundaries the resolution enters once (docs/integrator.md).
            a = u0 - a if u0 > a else 0
            dl += self._pms(a) if a else 0
            if dl < x:
                x = dl
        return x

    def _pms(self, m):
        """mWh at the power bound over m ms (0 <= m <= _BND_MS), rounded up."""
        q = muldiv(self.max_power_w, m, 3600, self._t, _X_REM)
        return q + 1 if self._t[_X_REM] else q

    def _bt(self, b, side):
        """_eb() for the deltas prepared in scratch by this feed."""
        st = self.st
        t = self._t
        u = 0
        r = 0
        if t[_X_IMP] >= 0:
            u = st[_RIU]
            r = _P10[st[_RI + _G_EXP] + 3]
        if t[_X_EXP] >= 0:
            if st[_REU] > u:
                u = st[_REU]
            r += _P10[st[_RE + _G_EXP] + 3]
        if side:
            u = 0
        return self._eb(b, u, 0 if side else t[_X_U], r, side, t[_X_IMP], t[_X_IMP + 1], t[_X_EXP], t[_X_EXP + 1])

    def _eb_open(self):
        """Bound when the open slot closes with no reading at its end (advance, close):
        the energy from its last reading to the boundary is missing from it, <= P a."""
        st = self.st
        b = (st[_OPEN] + 1) * _U_SLOT
        a = (b - st[_TS]) * 1000 - st[_TMS]
        r = 0
        g = _RI
        while g <= _RE:
            if st[_USED] & (_SRC_IMP if g == _RI else _SRC_EXP) and st[g + _G_OK]:
                x = (b - st[g + _G_S]) * 1000 - st[g + _G_MS]
                if x > a:
                    a = x
                r += _P10[st[g + _G_EXP] + 3]
            g += _RE - _RI
        return self._eb(0, 0, 0, r, 1, _BIG, a, -1, 0)

    def _mismatch(self, reg, pw):
        d = reg - pw
        if d < 0:
            d = -d
        return d > self._mm_wh + reg * self._mm_pct // 100

    def _rebase(self, r, pres, p, s, ms, fresh):
        st = self.st
        st[_HAVE] = 1
        st[_TS] = s
        st[_TMS] = ms
        st[_P] = p
        st[_POK] = 1 if pres & HAS_POWER else 0
        if pres & HAS_POWER:
            st[_USED] |= _SRC_POWER
        if pres & HAS_IMPORT:
            self._rset(_RI, r[R_IMP_HI], r[R_IMP_LO], r[R_IMP_EXP], s, ms)
            st[_RIU] = self._t[_X_U]
            st[_USED] |= _SRC_IMP
        elif fresh:
            st[_RI + _G_OK] = 0
        if pres & HAS_EXPORT:
            self._rset(_RE, r[R_EXP_HI], r[R_EXP_LO], r[R_EXP_EXP], s, ms)
            st[_REU] = self._t[_X_U]
            st[_USED] |= _SRC_EXP
        elif fresh:
            st[_RE + _G_OK] = 0

    # ---- power -------------------------------------------------------------------
    def _power(self, v, e):
        """Reading power (v * 10**e W) -> pu, or _PBAD when out of range."""
        if e < -20 or e > 20:
            return _PBAD
        k = e - self.power_exp
        if k >= 0:
            if k > 9 or v > self._pmax // _P10[k] or -v > self._pmax // _P10[k]:
                return _PBAD
            return v * _P10[k]
        k = -k
        if k > 9:
            return 0
        d = _P10[k]
        q = v // d
        if v - q * d >= d - (v - q * d):  # round half up
            q += 1
        if q > self._pmax or -q > self._pmax:
            return _PBAD
        return q

    def _add(self, d, q, ms):
        """Add q * ms base units (|q| <= 2*pmax, 0 <= ms <= max gap) to direction d."""
        st = self.st
        s = ms // 1000
        x = q * s
        k = self._k
        w = x // k
        u = self._u
        rr = st[d + 1] + (x - w * k) * 1000 + q * (ms - s * 1000)
        w2 = rr // u
        st[d] += w + w2
        st[d + 1] = rr - w2 * u

    def _small(self, d, x):
        """Add x base units, |x| < 2**29 - U."""
        st = self.st
        u = self._u
        rr = st[d + 1] + x
        w = rr // u
        st[d] += w
        st[d + 1] = rr - w * u

    def _total(self, d, a0, a1, dt, sign):
        """sign * floor(positive area of the segment a0 -> a1 over dt) into direction d."""
        if a0 >= 0 and a1 >= 0:
            self._add(d, sign * (a0 + a1), dt)
            return
        if a0 < 0:  # rises through zero: mirror it
            a0, a1 = a1, a0
        dd = a0 - a1
        y = muldiv(a0, dt, dd, self._t, _X_REM)  # crossing time from the positive end
        f = muldiv(a0, self._t[_X_REM], dd, self._t, _X_REM)
        self._add(d, sign * a0, y)
        self._small(d, sign * f)

    def _head(self, d, a0, a1, dt, tau, sign):
        """sign * floor(area over [0, tau] of the line a0 -> a1), the line positive there."""
        dd = a1 - a0
        if dd >= 0:
            x = muldiv(dd, tau, dt, self._t, _X_REM)
            bi = a0 + x
            bf = self._t[_X_REM]
        else:
            x = muldiv(-dd, tau, dt, self._t, _X_REM)
            bf = self._t[_X_REM]
            if bf:
                bi = a0 - x - 1
                bf = dt - bf
            else:
                bi = a0 - x
        self._add(d, sign * (a0 + bi), tau)
        if bf:
            self._small(d, sign * muldiv(bf, tau, dt, self._t, _X_REM))

    def _pw(self, d, a0, a1, dt, tau, phase):
        """Direction d's part of segment a0 -> a1 (pu) over dt ms.

        tau < 0: the whole segment into the open slot. Otherwise a boundary at tau ms:
        phase 0 adds the part before it (open slot), phase 1 the rest (next slot)."""
        if a0 <= 0 and a1 <= 0:
            return
        if tau < 0:
            self._total(d, a0, a1, dt, 1)
            return
        if a0 >= 0 and a1 >= 0:
            head = 1
        elif a0 > 0:
            y = muldiv(a0, dt, a0 - a1, self._t, _X_REM)
            head = tau < y or (tau == y and self._t[_X_REM] > 0)
            if not head and phase == 0:
                self._total(d, a0, a1, dt, 1)
            # boundary after the crossing: the next slot gets nothing
        else:
            tau2 = dt - tau
            y = muldiv(a1, dt, a1 - a0, self._t, _X_REM)
            if tau2 < y or (tau2 == y and self._t[_X_REM] > 0):
                if phase == 0:
                    self._total(d, a0, a1, dt, 1)
                    self._head(d, a1, a0, dt, tau2, -1)
                else:
                    self._head(d, a1, a0, dt, tau2, 1)
            elif phase == 1:
                self._total(d, a0, a1, dt, 1)
            return
        if head:
            if phase == 0:
                self._head(d, a0, a1, dt, tau, 1)
            else:
                self._total(d, a0, a1, dt, 1)
                self._head(d, a0, a1, dt, tau, -1)

    # ---- registers ---------------------------------------------------------------
    def _reg_ok(self, hi, lo, e):
        return 0 <= hi <= 0xFFFF and 0 <= lo <= 0xFFFF and -3 <= e <= 3

    def _rset(self, g, hi, lo, e, s, ms):
        st = self.st
        st[g + _G_OK] = 1
        st[g + _G_HI] = hi
        st[g + _G_LO] = lo
        st[g + _G_EXP] = e
        st[g + _G_S] = s
        st[g + _G_MS] = ms

    def _reg_prepare(self, g, x, present, hi, lo, e, s, ms, op, cross):
        """Delta of register g since its base, in mWh, into scratch x..x+2.

        Returns 1 when a delta will be attributed. Sets `reset` on an implausible delta,
        scratch _X_EST when its placement is estimated."""
        st = self.st
        t = self._t
        t[x] = _NONE
        if not present or not st[g + _G_OK]:
            return 0
        dts = s - st[g + _G_S]
        if dts < 0:
            return 0
        if dts > self.max_spread_s:
            el = self.max_spread_s * 1000  # spread over the last max_spread_s only
        else:
            el = dts * 1000 + ms - st[g + _G_MS]
        if el <= 0:
            return 0
        dlt = self._rdelta_u(g, hi, lo, e, el)
        if dlt < 0:
            st[_FLAGS] |= RESET
            t[_X_RST] = RESET
            return 0
        if st[g + _G_S] < op * _U_SLOT or (el > self._gap_ms and cross):
            # Not read at the boundary, or a long interval across one: where the energy
            # fell is unknown, its total is not. Spread by time and flag it.
            t[_X_EST] = ESTIMATED
        t[x] = dlt
        t[x + 1] = el
        return 1

    def _rapply(self, g, x, phase):
        """Attribute the delta prepared at scratch x: phase 0 wholly to the open slot,
        1 the part before the boundary, 2 the part after it (the new open slot).
        Shares are cumulative floors of a time-proportional split, so they sum exactly."""
        t = self._t
        dl = t[x]
        if dl < 0:
            return
        el = t[x + 1]
        if phase == 2:
            self._radd(g, dl - self._share(dl, el - t[_X_TAIL], el))
        else:
            # Energy from before the open slot (already closed) lands here: estimated.
            self._radd(g, dl if phase == 0 else self._share(dl, el - t[_X_TAIL], el))
        self.st[_USED] |= _SRC_IMP if g == _RI else 4

    def _share(self, dl, x, el):
        if x <= 0:
            return 0
        if x >= el:
            return dl
        return muldiv(dl, x, el, self._t, _X_REM)

    def _radd(self, g, mwh):
        st = self.st
        rr = st[g + _G_REM] + mwh
        w = rr // 1000
        st[g + _G_WH] += w
        st[g + _G_REM] = rr - w * 1000

    def _rdelta_u(self, g, hi, lo, e, el):
        """_rdelta judged over the longest the interval el may have been (its sample times'
        uncertainty added, at most max_spread_s), so an uncertain stamp never turns real
        energy into a `reset`."""
        u = el + self._t[_X_U] + (self.st[_RIU] if g == _RI else self.st[_REU])
        w = self.max_spread_s * 1000
        return self._rdelta(g, hi, lo, e, u if u < w else (el if el > w else w))

    def _rdelta(self, g, hi, lo, e, el):
        """Counter delta in mWh, or _BAD when backwards or implausible."""
        st = self.st
        e0 = st[g + _G_EXP]
        if e == e0:
            dl = lo - st[g + _G_LO]
            dh = hi - st[g + _G_HI]
            if dl < 0:
                dl += 0x10000
                dh -= 1
            if dh < 0:
                dh += 0x10000  # 32-bit rollover
            if dh > 0x3FFF:
                return _BAD
            dl += dh << 16
            em = e
        else:
            em = e if e < e0 else e0
            t = self._t
            # The slot's bound counts one resolution, the one at its close: a scale
            # change inside it (or at its end) may leave the coarser one at the other end.
            x = st[_EB] + _P10[(e if e > e0 else e0) + 3]
            st[_EB] = x if x < _BIG else _BIG
            limbs(t, _X_LA, st[g + _G_HI], st[g + _G_LO], e0 - em)
            limbs(t, _X_LB, hi, lo, e - em)
            if lsub(t, _X_LB, _X_LA):
                # Looks lower: less than one count of the coarser exponent is that
                # exponent's truncation (a change to a coarser scale), not a reset.
                limbs(t, _X_LB, hi, lo, e - em)
                lsub(t, _X_LA, _X_LB)
                if t[_X_LA + 2] or t[_X_LA + 3] or t[_X_LA + 1] > 0x7FFF:
                    return _BAD
                if (t[_X_LA + 1] << 15) | t[_X_LA] >= _P10[(e if e > e0 else e0) - em]:
                    return _BAD
                return 0
            if t[_X_LB + 2] or t[_X_LB + 3]:
                return _BAD
            dl = (t[_X_LB + 1] << 15) | t[_X_LB]
        el_s = (el + 999) // 1000
        # (max_power_w * el_s // 36 + 1) * margin // 10, in parts that fit 31 bits
        mp = self.max_power_w
        lim_mwh = mp * (el_s // 36) + mp * (el_s % 36) // 36 + 1
        q = lim_mwh // 10
        lim_mwh = q * self._margin + (lim_mwh - q * 10) * self._margin // 10
        unit = _P10[em + 3]
        # Slack: one count of the coarser of the two exponents (counter quantisation).
        if dl > lim_mwh // unit + _P10[(e if e > e0 else e0) - em]:
            return _BAD
        return dl * unit
