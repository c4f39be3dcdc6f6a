"""The History object: every table of one data source, typed, as everything downstream uses it.

Conventions (enforced by the loader, relied on everywhere else):
- ``account_id`` (and ``order_id``) are strings, never numbers: leading zeros survive.
- dates are ``datetime64[us]`` at midnight (time of day and time zones dropped).
- amounts, counts, scores and values are ``float64``.
- optional tables are ``None`` when absent; ``accounts`` always exists (derived from orders).

Immutable by convention: functions take a History and return new frames; nothing mutates it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np
import pandas as pd

from ka_ml.data.schema import EVENT_DATE, SIGNED_DATE

OPTIONAL_TABLES = ("usage", "tickets", "surveys", "contracts")
Amounts = TypeVar("Amounts", pd.Series, np.ndarray)


def is_purchase(amount: Amounts) -> Amounts:
    """Which order rows are orders: not a credit note or return (a negative amount). Those
    subtract from spend, but they do not make an order day, an order, or a next order."""
    return ~(amount < 0)


def survey_kinds(kind: pd.Series) -> pd.Series:
    """A survey's ``kind`` as every part compares it: case-blind, without surrounding
    blanks (" NPS" and "nps" are one kind), missing stays missing. The features, the reasons
    and the scorecard each read it; one spelling rule keeps them on the same answers."""
    return kind.astype("string").str.strip().str.lower()


def known_dates(table: str, frame: pd.DataFrame) -> pd.Series:
    """The day each row of ``table`` is known from, for the half-open as-of rule: its event
    date (:data:`~ka_ml.data.schema.EVENT_DATE`); for a contract with a ``signed_date``,
    that day (a renewal signed before the as-of that starts after it is known at the
    as-of: without it, 34 signed renewals of a user's portfolio read "Renewal due in N
    days: agree the renewal with the buyer now", and a term starting on the scoring day
    read "Contract lapsed 1 day ago"). A row without a signing date falls back to its
    start."""
    dates = frame[EVENT_DATE[table]]
    if table == "contracts" and SIGNED_DATE in frame.columns:
        return frame[SIGNED_DATE].fillna(dates)
    return dates


@dataclass(frozen=True)
class History:
    orders: pd.DataFrame
    accounts: pd.DataFrame
    usage: pd.DataFrame | None = None
    tickets: pd.DataFrame | None = None
    surveys: pd.DataFrame | None = None
    contracts: pd.DataFrame | None = None
    source: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)
    accounts_derived: bool = False  # no accounts table: one row per id seen in the data
    accounts_merged: int = 0  # accounts rolled up into the one they merged into (data.merges)
    # money converted by data.currency_rates: what, how many rows, at which rates (rendered)
    conversions: tuple[str, ...] = field(default_factory=tuple)
    # feeds known to stop early (a late export): their features are read as of this day,
    # not the as-of, so the missing days do not read as silence (ka_ml.jobs.data.scoring_data_check)
    feed_as_of: Mapping[str, pd.Timestamp] = field(default_factory=dict)

    # -- tables -------------------------------------------------------------------------
    def tables(self) -> dict[str, pd.DataFrame]:
        """Present tables by canonical name (orders and accounts always)."""
        out = {"orders": self.orders, "accounts": self.accounts}
        for name in OPTIONAL_TABLES:
            df = getattr(self, name)
            if df is not None:
                out[name] = df
        return out

    def has(self, table: str) -> bool:
        return getattr(self, table, None) is not None

    def row_counts(self) -> dict[str, int]:
        """Rows per present table (for the run record; the Spark engine's has the same)."""
        return {k: len(v) for k, v in self.tables().items()}

    # -- time ---------------------------------------------------------------------------
    @property
    def first_date(self) -> pd.Timestamp:
        return pd.Timestamp(self.orders["order_date"].min())

    @property
    def last_order_date(self) -> pd.Timestamp:
        return pd.Timestamp(self.orders["order_date"].max())

    @property
    def default_as_of(self) -> pd.Timestamp:
        """The contract's default as-of: the day after the last order in the data."""
        return self.last_order_date + pd.Timedelta(days=1)

    def before(self, as_of: pd.Timestamp) -> History:
        """Rows known strictly before ``as_of`` in every table (half-open time;
        :func:`known_dates`).

        Contracts are kept when they started (or, with a ``signed_date``, were signed)
        before ``as_of``; their end dates may lie after it (a contract is known at
        signature). Accounts are never filtered here.
        """
        as_of = pd.Timestamp(as_of)
        kw: dict[str, pd.DataFrame | None] = {}
        for name in ("orders", *OPTIONAL_TABLES):
            df = getattr(self, name)
            kw[name] = None if df is None else df[known_dates(name, df) < as_of]
        return replace(self, **kw)  # type: ignore[arg-type]

    def for_accounts(self, ids: pd.Index) -> History:
        """Only the rows of the accounts in ``ids``, in every table (row order kept)."""
        kw: dict[str, pd.DataFrame | None] = {}
        for name in ("orders", "accounts", *OPTIONAL_TABLES):
            df = getattr(self, name)
            kw[name] = None if df is None else df[df["account_id"].isin(ids)]
        return replace(self, **kw)  # type: ignore[arg-type]

    # -- identity -----------------------------------------------------------------------
    def fingerprint(self) -> str:
        """Content hash of every table (row-order sensitive; the loader sorts rows)."""
        h = hashlib.sha256()
        for name, df in sorted(self.tables().items()):
            h.update(name.encode())
            h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
            h.update(",".join(map(str, df.columns)).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            "tables": {k: len(v) for k, v in self.tables().items()},
            "accounts": int(self.accounts["account_id"].nunique()),
            "first_order": str(self.first_date.date()),
            "last_order": str(self.last_order_date.date()),
            "warnings": list(self.warnings),
            "fingerprint": self.fingerprint(),
        }
