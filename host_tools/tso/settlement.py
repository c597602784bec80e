"""Imbalance charges per BG and slot, and negawatt adjustment fees per resource.

Signs (docs/settlement.md). D's correction gives each BG's imbalance in its own direction
(consumption for a demand BG, generation for a generation BG), actual + correction - plan.
The shortfall (不足インバランス) is what the TSO had to supply:

    shortfall_wh = imbalance_wh          for a demand BG     (consumed more than planned)
    shortfall_wh = -imbalance_wh         for a generation BG (generated less than planned)
    charge = shortfall_wh * price / 1000 (yen x 100, "sen"), rounded half up per BG and slot

A positive charge is paid by the BG to the TSO (shortfall pays); a negative one is paid by
the TSO to the BG (surplus 余剰インバランス receives), at the same single price. Day totals are
sums of the rounded slot charges, so the table adds up.

Negawatt adjustment fee (ネガワット調整金), paid by the aggregator to the retailer of each site
whose purchases a dispatch reduced: per resource and slot, the negawatt volume is the part of
its delivered adjustment (sending end) on the import side of zero of its receiving-point flow,
when the adjustment is upward (less purchase); the volume is rounded half up to Wh per slot,
and fee = sum over the day of volume * unit price / 1000, rounded half up once per
resource-day.
"""
import numpy as np

from host_tools.tso import correction as corr
from host_tools.tso.errors import TsoError
from host_tools.tso.model import BG_DEMAND, SLOTS
from host_tools.tso.rounding import round_half_up

_LIMIT = 1 << 62


class SettlementError(TsoError):
    kind = "tso_settlement"


def round_div_kwh(values):
    """Exact (Wh x sen/kWh) / 1000 -> sen, rounded half up (arrays)."""
    return (2 * values + 1000) // 2000


def shortfall(imbalance, is_demand):
    """(bgs, 48) imbalance in the BG's own direction -> shortfall Wh (+ pays, - receives)."""
    return np.where(np.asarray(is_demand)[:, None], imbalance, -imbalance)


def charges(shortfall_wh, price_sen):
    """Per BG and slot charge in sen; shortfall (bgs, 48) Wh, price (48,) sen/kWh."""
    s = np.asarray(shortfall_wh, np.int64)
    p = np.asarray(price_sen, np.int64)
    if int(np.abs(s).max(initial=0)) * int(np.abs(p).max(initial=0)) >= _LIMIT:
        raise SettlementError("imbalance x price exceeds the int64 range")
    return round_div_kwh(s * p[None, :])


def charges_loop(shortfall_wh, price_sen):
    """Plain-Python oracle of `charges` (exact integers)."""
    return [[(2 * int(w) * int(p) + 1000) // 2000 for w, p in zip(row, price_sen)]
            for row in shortfall_wh]


class DaySettlement:
    """One day: per BG and slot shortfall_wh, charge_sen (int64 (bgs, 48)); price_sen (48,);
    per BG day totals; negawatt per resource (volume_wh (n, 48), fee_sen (n,)) if computed."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def settle_day(data, result, prices, j):
    """Imbalance charges of one corrected day (a correction.DayResult); prices row j."""
    is_demand = data.bgs["kind"].astype(str) == BG_DEMAND
    sf = shortfall(result.imbalance, is_demand)
    ch = charges(sf, prices.price[j])
    return DaySettlement(day=result.day, shortfall_wh=sf, charge_sen=ch,
                         price_sen=prices.price[j], day_shortfall_wh=sf.sum(axis=1),
                         day_charge_sen=ch.sum(axis=1))


# -- negawatt ---------------------------------------------------------------------------------
def negawatt_volume(inp):
    """Per resource and slot negawatt volume, Wh (int64 (n, 48)), from correction Inputs."""
    cols = np.nonzero(inp.events.any(axis=0))[0]
    out = np.zeros(inp.events.shape, np.int64)
    if not len(cols):
        return out
    delta = corr.delivered_micro(inp, cols)
    dem, _ = corr.split(np.take(inp.receiving, cols, axis=1) * corr.MICRO, delta)
    np.maximum(dem, 0, out=dem)
    out[:, cols] = round_half_up(dem, corr.MICRO)
    return out


def negawatt_fees(volume_wh, fee_sen):
    """Per resource-day fee in sen: sum(volume) * unit / 1000, rounded half up once."""
    total = np.asarray(volume_wh, np.int64).sum(axis=1)
    return round_div_kwh(total * int(fee_sen))


def negawatt_loop(inp, fee_sen):
    """Per-resource Python loop computing volumes and fees (oracle and benchmark baseline)."""
    n = inp.events.shape[0]
    vols, fees = [], []
    for r in range(n):
        loss = int(inp.loss_ppm[r])
        dev = bool(inp.is_device[r])
        row = [0] * SLOTS
        for s in range(SLOTS):
            if not inp.events[r, s]:
                continue
            f = corr.MICRO - loss if dev else corr.MICRO
            fb = corr.MICRO - loss if dev and inp.base_ge[r, s] else corr.MICRO
            delta = int(inp.meter[r, s]) * f - int(inp.baseline[r, s]) * fb
            net = int(inp.receiving[r, s]) * corr.MICRO
            n0 = net - delta
            hi, lo = max(n0, net), min(n0, net)
            export = max(hi, 0) - max(lo, 0)
            imp = abs(delta) - export
            if delta > 0 and imp > 0:
                row[s] = (2 * imp + corr.MICRO) // (2 * corr.MICRO)
        vols.append(row)
        fees.append((2 * sum(row) * int(fee_sen) + 1000) // 2000)
    return np.array(vols, np.int64).reshape(n, SLOTS), np.array(fees, np.int64)


def settle(data, results, prices, rules=None, pattern=None, fee_sen=None):
    """Settle every corrected day. With rules, pattern and fee_sen, also negawatt fees per
    resource (fee_sen: callable date -> sen/kWh)."""
    out = []
    for res in results:
        j = int(np.searchsorted(prices.days, res.day))
        if j >= len(prices.days) or prices.days[j] != res.day:
            raise SettlementError("no prices for %s" % res.day)
        ds = settle_day(data, res, prices, j)
        if fee_sen is not None:
            inp, _, _ = corr.prepare_day(data, data.day_index[res.day.tolist()], rules, pattern)
            unit = fee_sen(res.day)
            ds.negawatt_unit_sen = unit
            ds.negawatt_wh = negawatt_volume(inp)
            ds.negawatt_fee_sen = negawatt_fees(ds.negawatt_wh, unit)
        out.append(ds)
    return out


def table_columns(data, settled):
    """Long table (pyarrow arrays) per date, BG and slot, plus one row per BG and day with
    slot 0 holding the day total (its price is null)."""
    import pyarrow as pa
    nb = len(data.bgs)
    bg = data.bgs["bg_id"].astype(str)
    kind = data.bgs["kind"].astype(str)
    cols = {k: [] for k in ("date", "slot", "bg_id", "bg_kind", "price_sen_per_kwh",
                            "shortfall_wh", "charge_sen")}
    for ds in settled:
        cols["date"].append(np.full(nb * (SLOTS + 1), ds.day))
        cols["slot"].append(np.tile(np.arange(0, SLOTS + 1), nb))
        cols["bg_id"].append(np.repeat(bg, SLOTS + 1))
        cols["bg_kind"].append(np.repeat(kind, SLOTS + 1))
        cols["price_sen_per_kwh"].append(np.tile(np.concatenate([[0], ds.price_sen]), nb))
        cols["shortfall_wh"].append(np.concatenate(
            [ds.day_shortfall_wh[:, None], ds.shortfall_wh], axis=1).reshape(-1))
        cols["charge_sen"].append(np.concatenate(
            [ds.day_charge_sen[:, None], ds.charge_sen], axis=1).reshape(-1))
    cols = {k: (np.concatenate(v) if v else np.empty(0, np.int64)) for k, v in cols.items()}
    out = {k: pa.array(v) for k, v in cols.items()}
    out["date"] = pa.array(cols["date"].astype("datetime64[D]"), pa.date32())
    out["price_sen_per_kwh"] = pa.array(cols["price_sen_per_kwh"].astype(np.int64),
                                        mask=cols["slot"] == 0)
    return out
