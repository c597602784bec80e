"""Imbalance price per slot (インバランス料金単価) from market data and dated configuration.

Formula (docs/settlement.md), all integers: prices in sen/kWh (0.01 yen/kWh), reserve margins
in basis points (0.01 %), per 30-minute slot of a JST date:

    C, D      = the period of hw/tso/prices.json in force on the slot's date
    C         = lowered_C if the period's cap rule fires for that date (>= min_slots slots with
                spot >= threshold in the previous window_days calendar days)
    scarcity  = curve(margin): 0 at >= 10 %, D at 8 %, C at <= 3 %, linear between points,
                rounded half up to whole sen (the shape between points is an assumption)
    price     = max(normal, scarcity)                     ("combine": "max")
    price     = min(price, C)        if "cap_applies_to" is "price" (default)
    adder     = price - normal       (so price = base + adder)
"""
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from host_tools.tso.config import load_layered
from host_tools.tso.errors import Problem, TsoError

SLOTS = 48
DEFAULT_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "hw", "tso", "prices.json")
MARKET_COLUMNS = ("date", "slot", "normal_price_sen", "reserve_margin_bp", "spot_price_sen")


class PriceError(TsoError):
    """Prices cannot be computed: a date outside every period, or market data missing."""

    kind = "tso_price"


def load_prices(path=None, overrides=None):
    """hw/tso/prices.json, merged key by key with a user file and in-memory overrides."""
    return load_layered(DEFAULT_PATH, path, overrides)


# -- market data --------------------------------------------------------------------------
class Market:
    """Per JST date and slot: normal price, wide-area reserve margin, spot price.

    days: datetime64[D] sorted; normal_sen, margin_bp, spot_sen: int64 (days, 48);
    present: bool (days, 48).
    """

    def __init__(self, days, normal_sen, margin_bp, spot_sen, present=None):
        self.days = np.asarray(days, "datetime64[D]")
        shape = (len(self.days), SLOTS)
        self.normal_sen = np.asarray(normal_sen, np.int64).reshape(shape)
        self.margin_bp = np.asarray(margin_bp, np.int64).reshape(shape)
        self.spot_sen = np.asarray(spot_sen, np.int64).reshape(shape)
        self.present = (np.ones(shape, bool) if present is None
                        else np.asarray(present, bool).reshape(shape))

    @classmethod
    def from_columns(cls, cols, ranges=None):
        """Long columns (MARKET_COLUMNS) -> Market; bad rows raise PriceError naming them.
        ranges: {column: [lo, hi]} (prices.json market_ranges); values outside are refused."""
        dates = np.asarray(cols["date"]).astype("datetime64[D]")
        slot = np.asarray(cols["slot"], np.int64)
        bad = (slot < 1) | (slot > SLOTS)
        if bad.any():
            raise PriceError("market: slot outside 1..48", [Problem(
                "market_slot", "slot outside 1..48", ["%s/%d" % (d, s) for d, s in
                                                      zip(dates[bad], slot[bad])])])
        problems = []
        for name, (lo, hi) in sorted((ranges or {}).items()):
            v = np.asarray(cols[name], np.int64)
            out = (v < lo) | (v > hi)
            if out.any():
                problems.append(Problem("market_range", "%s outside %d..%d" % (name, lo, hi),
                                        ["%s/%d: %d" % (d, s, x) for d, s, x in
                                         zip(dates[out], slot[out], v[out])]))
        if problems:
            raise PriceError("market: values out of range", problems)
        days = np.unique(dates)
        d = np.searchsorted(days, dates)
        flat = d * SLOTS + slot - 1
        uniq, counts = np.unique(flat, return_counts=True)
        if (counts > 1).any():
            raise PriceError("market: repeated (date, slot)", [Problem(
                "market_duplicate", "more than one row for (date, slot)",
                ["%s/%d" % (days[f // SLOTS], f % SLOTS + 1) for f in uniq[counts > 1]])])
        out = []
        for name in MARKET_COLUMNS[2:]:
            arr = np.zeros(len(days) * SLOTS, np.int64)
            arr[flat] = np.asarray(cols[name], np.int64)
            out.append(arr)
        present = np.zeros(len(days) * SLOTS, bool)
        present[flat] = True
        return cls(days, *out, present=present)

    def columns(self):
        d, s = np.nonzero(self.present)
        return {"date": self.days[d], "slot": s + 1, "normal_price_sen": self.normal_sen[d, s],
                "reserve_margin_bp": self.margin_bp[d, s], "spot_price_sen": self.spot_sen[d, s]}


def find_market(directory):
    for ext in (".parquet", ".csv"):
        path = os.path.join(directory, "market" + ext)
        if os.path.exists(path):
            return path
    return None


def load_market(path, ranges=None):
    """market.csv or market.parquet (docs/settlement.md) -> Market. A cell that is empty, NaN
    or not an integer is named by date and row; with `ranges` (prices.json market_ranges)
    values outside their range are refused naming date/slot."""
    from host_tools.tso.errors import LoadError
    from host_tools.tso.model import csv_int_cells, int_cells_error
    try:
        types = {c: pa.int64() for c in MARKET_COLUMNS[1:]}
        types["date"] = pa.date32()
        if path.endswith(".csv"):
            try:
                table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                    column_types=types))
            except pa.ArrowInvalid:
                csv_int_cells(path, types)
                raise
        else:
            table = pq.read_table(path)
        missing = [c for c in MARKET_COLUMNS if c not in table.column_names]
        if missing:
            raise PriceError("%s: missing column(s) %s" % (path, ", ".join(missing)))
        cols = {}
        for c in MARKET_COLUMNS:
            col = table.column(c)
            typ = pa.date32() if c == "date" else pa.int64()
            try:
                col = col.cast(typ)
            except pa.ArrowInvalid:
                col = None  # fractions or NaN in a Parquet float column: named below
            if c != "date" and (col is None or col.null_count):
                if path.endswith(".csv"):
                    csv_int_cells(path, types)  # empty or NaN-like cells read as null
                err = int_cells_error(path, table, c)
                if err is not None:
                    raise err
            if col is None or col.null_count:
                raise PriceError("%s: column %s has empty or invalid value(s)" % (path, c))
            cols[c] = col.to_numpy()
    except LoadError as exc:
        raise PriceError(str(exc)) from None
    except (pa.ArrowException, OSError, UnicodeError, ValueError) as exc:
        raise PriceError("%s: %s: %s" % (path, type(exc).__name__, exc)) from None
    return Market.from_columns(cols, ranges)


def save_market(market, path):
    table = pa.table({k: pa.array(v) for k, v in market.columns().items()})
    if path.endswith(".parquet"):
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)


# -- the price ----------------------------------------------------------------------------
def period_of(cfg, date):
    """The imbalance period dict in force on `date` (datetime64[D] or 'YYYY-MM-DD')."""
    date = np.datetime64(date, "D")
    for p in cfg["imbalance"]["periods"]:
        lo = np.datetime64(p["from"], "D")
        hi = np.datetime64(p["to"], "D") if p.get("to") else None
        if date >= lo and (hi is None or date <= hi):
            return p
    raise PriceError("no imbalance price period covers %s" % date, [Problem(
        "price_period", "dates outside every configured period", [str(date)])])


def round_div(num, den):
    """Exact num/den rounded half up (toward +inf), den > 0."""
    return (2 * np.asarray(num, np.int64) + den) // (2 * np.asarray(den, np.int64))


def scarcity_curve(margin_bp, c_sen, d_sen, curve):
    """Scarcity-corrected price (sen/kWh) for margins; c_sen/d_sen broadcast with margin_bp.

    curve: [(margin_bp, 0 | "D" | "C" | sen)] in descending margin. Above the first point
    the first value, below the last the last value, linear between (rounded half up).
    """
    m = np.asarray(margin_bp, np.int64)
    c = np.broadcast_to(np.asarray(c_sen, np.int64), m.shape)
    d = np.broadcast_to(np.asarray(d_sen, np.int64), m.shape)

    def value(v):
        if v == "C":
            return c
        if v == "D":
            return d
        return np.full(m.shape, int(v), np.int64)

    pts = sorted(((int(mb), v) for mb, v in curve), key=lambda t: -t[0])
    out = value(pts[0][1]).copy()
    for (m_hi, v_hi), (m_lo, v_lo) in zip(pts, pts[1:]):
        a, b = value(v_hi), value(v_lo)
        sel = (m < m_hi) & (m > m_lo)
        den = m_hi - m_lo
        out[sel] = round_div(a[sel] * den + (b[sel] - a[sel]) * (m_hi - m[sel]), den)
        out[m <= m_lo] = b[m <= m_lo]
    return out


def scarcity_point(margin_bp, c_sen, d_sen, curve):
    """Plain-Python scarcity price of one slot (test oracle)."""
    def value(v):
        return c_sen if v == "C" else d_sen if v == "D" else int(v)
    pts = sorted(((int(mb), v) for mb, v in curve), key=lambda t: -t[0])
    if margin_bp >= pts[0][0]:
        return value(pts[0][1])
    for (m_hi, v_hi), (m_lo, v_lo) in zip(pts, pts[1:]):
        if margin_bp > m_lo:
            a, b, den = value(v_hi), value(v_lo), m_hi - m_lo
            return (2 * (a * den + (b - a) * (m_hi - margin_bp)) + den) // (2 * den)
    return value(pts[-1][1])


class Prices:
    """Per requested day and slot (int64 (days, 48), sen/kWh): normal, scarcity, cap,
    price, adder; per day: the period index and whether the lowered cap is in force."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def cap_lowered(market, day, rule):
    """True if `rule` fires for `day`: count spot >= threshold in the window before it."""
    if not rule:
        return False
    problems = []
    n = 0
    for k in range(1, int(rule["window_days"]) + 1):
        d = day - np.timedelta64(k, "D")
        i = np.searchsorted(market.days, d)
        if i >= len(market.days) or market.days[i] != d or not market.present[i].all():
            problems.append(str(d))
            continue
        n += int((market.spot_sen[i] >= int(rule["spot_threshold_sen"])).sum())
    if problems:
        raise PriceError("spot prices missing for the cap rule of %s" % day, [Problem(
            "spot_missing", "the %d-day cap rule of %s needs spot prices on"
            % (rule["window_days"], day), problems)])
    return n >= int(rule["min_slots"])


def imbalance_prices(market, days, cfg):
    """Prices for `days` (datetime64[D]); every slot of those days must be in the market."""
    days = np.asarray(days, "datetime64[D]")
    imb = cfg["imbalance"]
    if imb.get("combine", "max") != "max":
        raise PriceError("combine must be 'max' (S1 in docs/sources.md), not %r" % imb.get("combine"))
    nd = len(days)
    idx = np.searchsorted(market.days, days)
    idx_c = np.minimum(idx, max(len(market.days) - 1, 0))
    ok = (idx < len(market.days)) & (market.days[idx_c] == days) if len(market.days) \
        else np.zeros(nd, bool)
    ok &= market.present[idx_c].all(axis=1) if len(market.days) else ok
    if not ok.all():
        raise PriceError("market data missing", [Problem(
            "market_missing", "days without all 48 market slots", [str(d) for d in days[~ok]])])
    c = np.zeros((nd, SLOTS), np.int64)
    d = np.zeros((nd, SLOTS), np.int64)
    scarcity = np.zeros((nd, SLOTS), np.int64)
    lowered = np.zeros(nd, bool)
    periods = []
    for j, day in enumerate(days):
        p = period_of(cfg, day)
        periods.append(p["from"])
        lowered[j] = cap_lowered(market, day, p.get("cap_rule"))
        c[j] = int(p["cap_rule"]["lowered_C_sen"]) if lowered[j] else int(p["C_sen"])
        d[j] = int(p["D_sen"])
        scarcity[j] = scarcity_curve(market.margin_bp[idx[j]], c[j], d[j], p["curve"])
    normal = market.normal_sen[idx]
    price = np.maximum(normal, scarcity)
    if imb.get("cap_applies_to", "price") == "price":
        price = np.minimum(price, c)
    elif imb["cap_applies_to"] != "scarcity":
        raise PriceError("cap_applies_to must be 'price' or 'scarcity'")
    return Prices(days=days, normal=normal, margin_bp=market.margin_bp[idx], scarcity=scarcity,
                  cap=c, price=price, adder=price - normal, lowered=lowered,
                  period=np.asarray(periods))


def price_point(normal_sen, margin_bp, c_sen, d_sen, curve, cap_applies_to="price"):
    """Plain-Python imbalance price of one slot (test oracle)."""
    p = max(normal_sen, scarcity_point(margin_bp, c_sen, d_sen, curve))
    return min(p, c_sen) if cap_applies_to == "price" else p


# -- negawatt adjustment fee ----------------------------------------------------------------
def negawatt_fee(cfg, tariff, date):
    """ネガワット調整金 unit price in sen/kWh on `date`: retail reference - wheeling charge."""
    ng = cfg["negawatt"]
    t = ng["tariffs"][tariff]
    month = int(str(np.datetime64(date, "D"))[5:7])
    season = t["summer"] if month in ng["summer_months"] else t["other"]
    return int(season["retail_sen"]) - int(season["wheeling_sen"])
