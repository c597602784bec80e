"""Exact-to-Wh rounding that conserves totals (largest remainder, 最大剰余法).

Values are integers in a finer unit (micro-Wh). Per column, each value is floored to whole
units, and the units still missing to reach the column total rounded half up are handed,
one each, to the values with the largest remainders (ties: lower row first). So every row
is within one unit of its exact value and every column adds up to its rounded total.
"""
import numpy as np


def round_half_up(values, unit):
    return (2 * np.asarray(values, np.int64) + unit) // (2 * unit)


def largest_remainder(values, unit):
    """int64 (rows, cols) in 1/unit Wh -> int64 (rows, cols) Wh; column sums conserved."""
    values = np.asarray(values, np.int64)
    if values.shape[0] == 0:
        return values.copy()
    floor = values // unit
    rem = values - floor * unit
    target = round_half_up(values.sum(axis=0), unit)
    short = target - floor.sum(axis=0)  # 0 <= short <= rows
    order = np.argsort(-rem, axis=0, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(values.shape[0])[:, None]
                      .repeat(values.shape[1], axis=1), axis=0)
    return floor + (rank < short[None, :])


def largest_remainder_loop(values, unit):
    """Plain-Python oracle of largest_remainder (tests)."""
    rows = [list(map(int, r)) for r in values]
    if not rows:
        return []
    out = [[0] * len(rows[0]) for _ in rows]
    for c in range(len(rows[0])):
        col = [r[c] for r in rows]
        total = sum(col)
        target = (2 * total + unit) // (2 * unit)
        floors = [v // unit for v in col]
        short = target - sum(floors)
        by_rem = sorted(range(len(col)), key=lambda i: (-(col[i] - floors[i] * unit), i))
        for i in range(len(col)):
            out[i][c] = floors[i]
        for i in by_rem[:short]:
            out[i][c] += 1
    return out
