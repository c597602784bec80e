"""Synthetic market data (normal price, wide-area reserve margin, spot price per slot) for
`smeter settle`, beside a data set from `smeter gen-tso-data`. Reproducible from a seed.

Covers the data set's days plus `history_days` before them (the 2026-10 cap rule reads the
previous 7 days). Shapes: normal price 8-16 yen/kWh with an evening peak; reserve margin
12-25 % with, on every third day counted back from the last, an evening dip through 8 % and down to 2 % so that the
scarcity curve is exercised; spot prices follow the normal price with rare spikes above
200 yen/kWh. Values are made up: never settle real money with them.
"""
import numpy as np

from host_tools.tso.pricing import SLOTS, Market


def generate_market(days, seed=0, history_days=7):
    days = np.asarray(days, "datetime64[D]")
    first = days.min() - np.timedelta64(history_days, "D")
    all_days = np.arange(first, days.max() + np.timedelta64(1, "D"))
    rng = np.random.default_rng(seed)
    nd = len(all_days)
    s = np.arange(SLOTS)
    shape = 1.0 + 0.5 * np.exp(-((s - 36) / 4.0) ** 2)  # evening peak at 18:00
    normal = np.rint(800 * shape[None, :] + rng.integers(0, 400, (nd, SLOTS))).astype(np.int64)
    margin = rng.integers(1200, 2500, (nd, SLOTS)).astype(np.int64)
    dip = np.maximum(0, 1 - np.abs(s - 36) / 6.0)  # 0..1 around 18:00
    for j in range(nd - 1, -1, -3):  # the last (event) day dips
        margin[j] = np.minimum(margin[j], np.rint(1100 - 900 * dip).astype(np.int64))
    spot = normal + rng.integers(-200, 200, (nd, SLOTS))
    spikes = rng.random((nd, SLOTS)) < 0.01
    spot[spikes] = rng.integers(20000, 40000, int(spikes.sum()))
    return Market(all_days, normal, margin, np.maximum(spot, 1))
