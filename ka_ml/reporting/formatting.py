"""Values said for people: money, percentages, points, counts and dates as short text.

The report's template filters, the digests and the back-test sentences format numbers
the same way through these functions, so '62%', '+12 pts' or '1 Aug – 20 Sep 2026' read
the same in every output. Also the HTML table's sort keys and the test for a missing
value (None, NaN, pd.NA, NaT) that every formatter starts with. Pure, no pandas frames.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ka_ml.features.catalog import points_unit


def is_missing(v: Any) -> bool:
    """None, pd.NA, NaT or a float NaN."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def to_native(v: Any) -> Any:
    """numpy/pandas scalars to plain Python, missing to None (JSON-ready)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def fmt_money(v: Any, unit: str = "") -> str:
    """1234567.8 -> '1,234,568' (no decimals); a one-character unit is a prefix ('€1,234')."""
    if is_missing(v):
        return "–"
    amount = f"{float(v):,.0f}"
    if amount == "-0":
        amount = "0"
    if not unit:
        return amount
    return f"{unit}{amount}" if len(unit) == 1 else f"{amount} {unit}"


def fmt_pct(v: Any, decimals: int = 0) -> str:
    """0.623 -> '62%'; tiny but non-zero values say '<1%' rather than a misleading '0%'."""
    if is_missing(v):
        return "–"
    x = float(v) * 100
    if decimals == 0 and 0 < x < 0.5:
        return "<1%"
    if decimals == 0 and 99.5 <= x < 100:
        return ">99%"
    return f"{x:,.{decimals}f}%"


def fmt_points(v: Any) -> str:
    """A probability change 0.124 -> '+12 pts', 0.01 -> '+1 pt' (empty when unknown)."""
    if is_missing(v):
        return ""
    pts = round(float(v) * 100)
    return f"{pts:+d} {points_unit(pts)}" if pts else "±0 pts"


def fmt_count(v: Any) -> str:
    """12345 -> '12,345'."""
    return "–" if is_missing(v) else f"{int(v):,}"


def fmt_num(v: Any, decimals: int = 2) -> str:
    """1234.567 -> '1,234.57'."""
    return "–" if is_missing(v) else f"{float(v):,.{decimals}f}"


def fmt_index(v: Any) -> str:
    """An index or level from 0 to 1 with its significant digits: 0.45 -> '0.45', 0.0044 ->
    '0.0044' (two decimals read '0.00' for an alert a user set at 0.002)."""
    if is_missing(v):
        return "–"
    x = float(v)
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.2g}"


def fmt_date(v: Any, missing: str = "open-ended") -> str:
    """A date as '14 Aug 2026'; NaT (beyond the model's range) as 'open-ended'."""
    if is_missing(v):
        return missing
    d = pd.Timestamp(v)
    return f"{d.day} {d:%b %Y}"


def fmt_range(lo: Any, hi: Any) -> str:
    """The p10-p90 window: '1 Aug – 20 Sep 2026'; an open end says 'open-ended'."""
    if is_missing(lo) and is_missing(hi):
        return "open-ended"
    if is_missing(hi):
        return f"{fmt_date(lo)} – open-ended"
    if is_missing(lo):
        return f"until {fmt_date(hi)}"
    a, b = pd.Timestamp(lo), pd.Timestamp(hi)
    if a.year == b.year:
        return f"{a.day} {a:%b} – {fmt_date(b)}"
    return f"{fmt_date(a)} – {fmt_date(b)}"


def sort_num(v: Any) -> str:
    """A data-s sort key for numbers ('' = unknown, sorted last)."""
    return "" if is_missing(v) else f"{float(v):.6g}"


def sort_date(v: Any) -> str:
    """A data-s sort key for dates; open-ended sorts after every real date."""
    return "9999-12-31" if is_missing(v) else f"{pd.Timestamp(v):%Y-%m-%d}"


__all__ = [
    "fmt_count",
    "fmt_date",
    "fmt_index",
    "fmt_money",
    "fmt_num",
    "fmt_pct",
    "fmt_points",
    "fmt_range",
    "is_missing",
    "sort_date",
    "sort_num",
    "to_native",
]
