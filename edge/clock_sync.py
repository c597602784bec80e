"""The metering clock (計量時計) and its synchronisation over the uplink (時刻同期).

A board's RTC drifts (tens of ppm) and starts wrong after a power loss, and the IoT route
has no NTP. The collector's acks carry its time (docs/frames.md "Acknowledgements"); this
module turns them into a corrected metering clock, sans-I/O:

    metering = raw + offset        raw: the board's RTC (edge seconds, ms), offset applied here

Estimate (NTP-style, one collector timestamp): the frame with seq N left at metering time
t1, its ack arrived at t4 and carries the collector time T, taken after the collector
received frame N and before it sent the ack. Seqs never repeat, so T lies in [t1, t4] of
true time: true time at t4 lies in [T, T + rtt] (rtt = t4 - t1). Widened by the collector's
resolution (1 ms), its own error against JST (server_error_ms) and the rate error of this
clock during the round trip, that is an interval for (true - metering); intersected with
what the last syncs and the drift bound already say, its midpoint is the correction and its
half width the error bound.

Correction: a correction up to step_ms is slewed (the clock runs faster or slower by at
most slew_ppm, so it never goes back); a larger one is stepped at once, and the agent flags
the slots the step touches `clock_step` (edge/agent.py). Between syncs the bound grows by
drift_ppm of the elapsed time. synced() is false until the first good sync and whenever the
bound exceeds max_error_ms (ST_CLOCK_UNSYNCED; every slot touched then is flagged). The
limits are configuration (docs/config.md "clock", with their sources).

Integers only; every intermediate stays inside 31-bit small ints for inputs inside the
documented ranges (tests/host/test_clock_sync_props.py checks it with an overflow-checking
rewrite). meter_into() allocates nothing.
"""
from edge.compat import const

# sample() results
S_REJECTED = const(0)  # not a usable sample (no send time for that seq, bad round trip)
S_SLEW = const(1)  # accepted, the correction is slewed
S_STEP = const(2)  # accepted, the clock was stepped (jump_s/jump_ms say by how much)

_BIG = const(0x20000000)  # a bound at or above this is "unknown"
_NEAR_S = const(1000000)  # |offset| below this (11.5 days) is handled in ms
_MAX_EL_MS = const(1000000)  # longest raw interval one meter_into() slews over
_MAX_RTT_MS = const(600000)  # the longest ack timeout the configuration allows
_MAX_EL_S = const(100000000)  # over three years since the last sync: unknown


def _abs(x):
    return -x if x < 0 else x


def grow_ms(el_s, ppm):
    """ceil(el_s * ppm / 1000) ms (the drift over el_s seconds), for 0 <= el_s <= 10**8,
    ppm <= 1000, without leaving 31 bits."""
    if el_s <= 0:
        return 0
    return (el_s // 1000) * ppm + ((el_s % 1000) * ppm + 999) // 1000


class ClockSync:
    """The agent's metering clock. Arguments are the `clock` section of the configuration
    (edge/config.py); external=True trusts the caller's clock (a host with NTP, the
    simulated clock of the demo) with a fixed bound of external_error_ms."""

    def __init__(self, max_error_ms=1000, drift_ppm=100, step_ms=1000, slew_ppm=500,
                 server_error_ms=50, external=False, external_error_ms=0):
        if not (1 <= max_error_ms <= 600000 and 0 <= drift_ppm <= 1000 and 1 <= step_ms <= 600000
                and 1 <= slew_ppm <= 1000 and 0 <= server_error_ms <= 60000
                and 0 <= external_error_ms <= 600000):
            raise ValueError("clock limits out of range")
        self.max_error_ms = max_error_ms
        self.drift_ppm = drift_ppm
        self.step_ms = step_ms
        self.slew_ppm = slew_ppm
        self.server_error_ms = server_error_ms
        self.external = external
        self.external_ok = True  # external mode: the caller says its clock is valid
        self.external_error_ms = external_error_ms
        self.off_s = 0  # applied offset, metering - raw = off_s s + off_ms ms, off_ms 0..999
        self.off_ms = 0
        self.pend = 0  # correction still to slew, ms (|pend| <= step_ms)
        self._acc = 0  # slew remainder, ppm-ms
        self._raw_s = -1  # last raw time converted (slew progress), -1: none yet
        self._raw_ms = 0
        self.e0 = -1  # bound at the last sync, ms; -1: never synced since boot
        self.sync_s = 0  # metering second of the last sync
        self.gen = 0  # +1 per step: a round trip spanning a step is no sample
        self.t1_seq = -1
        self.t1_s = 0
        self.t1_ms = 0
        self.t1_gen = 0
        self.jump_s = 0  # the last step: jump_s s + jump_ms ms (jump_ms 0..999)
        self.jump_ms = 0
        self.samples = 0
        self.rejected = 0
        self.inconsistent = 0  # samples outside what the previous syncs allowed
        self.steps = 0
        self.last_rtt = -1
        self.last_bound = -1

    # ---- the clock -------------------------------------------------------------------
    def set_offset(self, off_s, off_ms):
        """The offset kept across a power cut (edge/agent.py persists it): the RTC keeps
        running, so the last correction is still the best start; unsynced until a sync."""
        self.off_s = off_s + off_ms // 1000
        self.off_ms = off_ms % 1000

    def _add(self, d_ms):
        m = self.off_ms + d_ms
        if m < 0 or m > 999:
            c = m // 1000
            self.off_s += c
            m -= c * 1000
        self.off_ms = m

    def meter_into(self, raw_s, raw_ms, out):
        """Metering time for the raw clock reading (raw_s, raw_ms): out[0] = seconds,
        out[1] = ms; returns out[0]. Slews the pending correction by the raw time elapsed
        since the previous call. Allocates nothing."""
        if self._raw_s >= 0 and self.pend:
            d = raw_s - self._raw_s
            if d > 1000:
                el = _MAX_EL_MS
            elif d < 0:
                el = 0
            else:
                el = d * 1000 + raw_ms - self._raw_ms
            if el > 0:
                q = el * self.slew_ppm + self._acc
                a = q // 1000000
                self._acc = q - a * 1000000
                p = self.pend
                if p > 0:
                    if a > p:
                        a = p
                    self.pend = p - a
                    self._add(a)
                else:
                    if a > -p:
                        a = -p
                    self.pend = p + a
                    self._add(-a)
        self._raw_s = raw_s
        self._raw_ms = raw_ms
        ms = raw_ms + self.off_ms
        s = raw_s + self.off_s
        if ms > 999:
            ms -= 1000
            s += 1
        out[0] = s
        out[1] = ms
        return s

    def raw_s(self, m_s):
        """The raw second at metering second m_s (to sleep until a metering time)."""
        return m_s - self.off_s

    # ---- what the clock is worth -----------------------------------------------------
    def bound_ms(self, m_s):
        """Error bound of the metering clock against JST at metering second m_s, ms;
        -1 if it was never synchronised since boot (unknown). Saturates at 2**29."""
        if self.external:
            return self.external_error_ms if self.external_ok else -1
        if self.e0 < 0:
            return -1
        e = _abs(self.pend) + self._unc(m_s)
        return e if e < _BIG else _BIG

    def _unc(self, m_s):
        """The bound without the pending slew: the last sync's, grown by the drift."""
        el = m_s - self.sync_s
        if el > _MAX_EL_S:
            return _BIG
        e = self.e0 + grow_ms(el, self.drift_ppm)
        return e if e < _BIG else _BIG

    def synced(self, m_s):
        b = self.bound_ms(m_s)
        return 0 <= b <= self.max_error_ms

    def want_time(self, m_s):
        """Ask for the collector's time in the next ack: unsynced, or past half the limit
        (a sync before the limit is reached keeps the clock synced through a lost ack)."""
        if self.external:
            return False
        b = self.bound_ms(m_s)
        return b < 0 or b > self.max_error_ms // 2

    # ---- samples -----------------------------------------------------------------------
    def sent(self, seq, m_s, m_ms):
        """Frame `seq` leaves now (metering time; earlier than the true send is safe)."""
        self.t1_seq = seq
        self.t1_s = m_s
        self.t1_ms = m_ms
        self.t1_gen = self.gen

    def sample(self, seq, c_s, c_ms, m_s, m_ms):
        """The authenticated ack of frame `seq` carried collector time (c_s, c_ms) and
        arrived at metering time (m_s, m_ms) (later than the true arrival is safe).
        Returns S_REJECTED, S_SLEW or S_STEP."""
        if self.external:
            return S_REJECTED
        if seq != self.t1_seq or self.t1_gen != self.gen or not 0 <= c_ms <= 999:
            self.rejected += 1
            return S_REJECTED
        self.t1_seq = -1
        d = m_s - self.t1_s
        if d < 0 or d > _MAX_RTT_MS // 1000:
            self.rejected += 1
            return S_REJECTED
        rtt = d * 1000 + m_ms - self.t1_ms
        if rtt < 0:
            self.rejected += 1
            return S_REJECTED
        self.samples += 1
        self.last_rtt = rtt
        # rate error of the metering clock over the round trip, both ways, ms
        r = ((rtt // 1000) + 1) * (self.drift_ppm + self.slew_ppm) // 1000 + 1
        w = self.server_error_ms + r
        ds = c_s - m_s
        if ds > _NEAR_S or ds < -_NEAR_S:
            # Far off (a reset RTC): step by whole seconds and ms, no intersection.
            self._sync(m_s, (rtt + 2 + 2 * w) // 2)
            self._step(ds, c_ms - m_ms + rtt // 2)
            return S_STEP
        d0 = ds * 1000 + c_ms - m_ms  # true - metering at t4 is in [d0, d0 + rtt + 1]
        lo = d0 - w
        hi = d0 + rtt + 1 + w
        b = self._unc(m_s) if self.e0 >= 0 else _BIG
        if b < _BIG:
            plo = self.pend - b
            phi = self.pend + b
            if plo > hi or phi < lo:
                self.inconsistent += 1  # the drift bound was wrong or T jumped: trust T
            else:
                if plo > lo:
                    lo = plo
                if phi < hi:
                    hi = phi
        c = lo + (hi - lo) // 2
        self._sync(m_s, hi - c)
        if c > self.step_ms or c < -self.step_ms:
            self._step(0, c)
            return S_STEP
        self.pend = c
        return S_SLEW

    def _sync(self, m_s, e):
        self.e0 = e
        self.last_bound = e
        self.sync_s = m_s

    def _step(self, ds, dms):
        """Apply a step of ds s + dms ms at once (pending slew dropped: it is part of it)."""
        self.pend = 0
        self._acc = 0
        s = ds + dms // 1000
        ms = dms % 1000
        self.jump_s = s
        self.jump_ms = ms
        self.off_s += s
        self._add(ms)
        self.gen += 1
        self.steps += 1
        self.sync_s += s  # the sync's new metering second or earlier: the bound only grows
