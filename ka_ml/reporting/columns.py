"""What a scores frame holds and how the readers of it read a column, whatever its state.

The report, the spreadsheet, the digests and the portfolio summary all read the scorer's
scores frame (one row per account). A column may be missing (older scores, a source
table the data lacks) or hold NaN, None or pd.NA; the readers here return one dtype with
one missing value each, so the code above them needs no per-column checks. The column
families (reasons 1..N, the scorecard measures, the purchase windows) are named here once.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

N_REASONS = 3
SCORECARD: tuple[tuple[str, str], ...] = (
    ("usage", "Usage"),
    ("complaints", "Complaints"),
    ("renewal_intent", "Renewal intent"),
    ("purchase_rhythm", "Purchase rhythm"),
    ("order_value", "Order value"),
    ("contract_value", "Contract value"),
)
_WINDOW_COL = re.compile(r"^p_purchase_(\d+)d$")


def text_col(scores: pd.DataFrame, col: str) -> pd.Series:
    """A text column with missing values (NaN, None, pd.NA, absent column) as ''."""
    if col not in scores:
        return pd.Series("", index=scores.index, dtype="string")
    return scores[col].astype("string").fillna("")


def num_col(scores: pd.DataFrame, col: str) -> pd.Series:
    """A float column, NaN where missing or absent."""
    if col not in scores:
        return pd.Series(np.nan, index=scores.index, dtype="float64")
    return pd.to_numeric(scores[col], errors="coerce").astype("float64")


def date_col(scores: pd.DataFrame, col: str) -> pd.Series:
    """A datetime column, NaT where missing, unparseable or absent."""
    if col not in scores:
        return pd.Series(pd.NaT, index=scores.index, dtype="datetime64[us]")
    return pd.to_datetime(scores[col], errors="coerce")


def flag_col(scores: pd.DataFrame, col: str) -> pd.Series:
    """A boolean column, False where missing or absent."""
    if col not in scores:
        return pd.Series(False, index=scores.index)
    return scores[col].astype("boolean").fillna(False).astype(bool)


def purchase_windows(scores: pd.DataFrame) -> list[int]:
    """The ``p_purchase_{k}d`` windows present in the frame, ascending (30/60/90 by default)."""
    found = (_WINDOW_COL.match(str(c)) for c in scores.columns)
    return sorted(int(m.group(1)) for m in found if m)


__all__ = [
    "N_REASONS",
    "SCORECARD",
    "date_col",
    "flag_col",
    "num_col",
    "purchase_windows",
    "text_col",
]
