"""A History as integer-coded numpy arrays: the fast representation the features run on.

Why: per-account aggregates over millions of orders are fastest as ``np.bincount`` over an
integer account code, on rows sorted once by (account, day). Encoding once and then
computing many as-of dates (training snapshots) by masking ``day < as_of`` avoids
re-sorting and re-hashing string ids for every snapshot.

Conventions:
- ``ids``: the account universe (sorted str): accounts with orders or contracts. Rows of
  other accounts in usage/tickets/surveys cannot make an account eligible and are dropped.
- ``code``: position of the row's account in ``ids``; every table is sorted by
  (code, date), so an account's rows are contiguous and a date mask keeps the order.
- dates are whole days since 1970-01-01 (int64); a missing date is ``NO_DATE`` (far future),
  so "resolved on/after as-of or never" is one comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ka_ml.data.history import History, is_purchase, known_dates, survey_kinds

NO_DATE = np.int64(2**40)  # "never": later than any as-of
Arrays = dict[str, np.ndarray]
TABLE_DATE = {
    "orders": "day",
    "usage": "day",
    "tickets": "day",
    "surveys": "day",
    "contracts": "known",  # signed_date when given, else start (History.before)
    "order_days": "day",
    "gaps": "end",
}


def to_day(ts: pd.Timestamp) -> int:
    """Whole days since the epoch (the as-of as the encoded arrays see it)."""
    return int(pd.Timestamp(ts).normalize().value // 86_400_000_000_000)


def _days(col: pd.Series) -> np.ndarray:
    """Days since the epoch; NaT -> NO_DATE."""
    values = col.to_numpy(dtype="datetime64[us]")
    days = values.astype("datetime64[D]").astype(np.int64)
    return np.where(np.isnat(values), NO_DATE, days)


def _bool(col: pd.Series) -> np.ndarray:
    return np.asarray(col.astype("boolean").fillna(False), dtype=bool)


def _codes(col: pd.Series, ids: np.ndarray) -> np.ndarray:
    """Position of each value in the sorted ``ids`` (-1 when absent or missing).

    Validated tables are sorted by account, so a column of ids is a few long runs of one
    value: each run's value is looked up once (100k lookups instead of hashing 10^7
    strings). Any order gives the same codes, only more slowly.
    """
    starts, values = _runs(col)
    pos = pd.Index(ids).get_indexer(values)
    return np.repeat(pos.astype(np.int64), np.diff(np.append(starts, len(col))))


def _runs(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Where each run of equal consecutive values starts, and its value (object array;
    missing values are runs of their own)."""
    n = len(col)
    if isinstance(col.dtype, pd.StringDtype) and n:
        arr = pa.array(col.array, from_pandas=True)
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        change = pc.fill_null(pc.not_equal(arr.slice(1), arr.slice(0, n - 1)), True)
        starts = np.flatnonzero(np.append(True, change.to_numpy(zero_copy_only=False)))
        values = arr.take(pa.array(starts)).to_numpy(zero_copy_only=False)
        return starts, np.asarray(values, dtype=object)
    return np.arange(n), np.asarray(col, dtype=object)


def _sorted(arrays: Arrays, date_key: str) -> Arrays:
    """Drop rows of unknown accounts and sort by (code, date) unless already sorted."""
    keep = arrays["code"] >= 0
    if not keep.all():
        arrays = {k: v[keep] for k, v in arrays.items()}
    code, day = arrays["code"], arrays[date_key]
    key = code * np.int64(2**41) + np.minimum(day, NO_DATE)
    if len(key) > 1 and not bool(np.all(key[1:] >= key[:-1])):
        order = np.argsort(key, kind="stable")
        arrays = {k: v[order] for k, v in arrays.items()}
    return arrays


@dataclass(frozen=True)
class Encoded:
    """Every table of one History (or chunk of accounts) as sorted numpy arrays."""

    ids: np.ndarray
    orders: Arrays
    order_days: Arrays
    gaps: Arrays
    usage: Arrays | None = None
    tickets: Arrays | None = None
    surveys: Arrays | None = None
    contracts: Arrays | None = None
    # per account (aligned with ids)
    created: np.ndarray | None = None
    attributes: dict[str, pd.Categorical] = field(default_factory=dict)
    feed_days: Mapping[str, int] = field(default_factory=dict)  # History.feed_as_of, as days

    @property
    def n(self) -> int:
        return len(self.ids)

    def read_day(self, table: str, day: int) -> int:
        """The day ``table``'s features are read as of: ``day``, or the end of a feed known
        to stop early (:attr:`History.feed_as_of`) when that comes first."""
        return min(day, self.feed_days.get(table, day))

    def upto(self, table: str, day: int) -> Arrays | None:
        """Rows of ``table`` dated strictly before ``day`` (the leakage guard)."""
        arrays: Arrays | None = getattr(self, table)
        if arrays is None:
            return None
        keep = arrays[TABLE_DATE[table]] < day
        if keep.all():
            return arrays
        return {k: v[keep] for k, v in arrays.items()}

    def slice(self, lo: int, hi: int) -> Encoded:
        """The accounts ``ids[lo:hi]`` only (codes renumbered from 0): one chunk."""
        kw: dict[str, object] = {}
        for name in TABLE_DATE:
            arrays: Arrays | None = getattr(self, name)
            if arrays is None:
                continue
            a, b = np.searchsorted(arrays["code"], [lo, hi])
            part = {k: v[a:b] for k, v in arrays.items()}
            part["code"] = part["code"] - lo
            kw[name] = part
        attrs = {k: v[lo:hi] for k, v in self.attributes.items()}
        created = None if self.created is None else self.created[lo:hi]
        return replace(self, ids=self.ids[lo:hi], created=created, attributes=attrs, **kw)  # type: ignore[arg-type]


def known_before(history: History, as_of: pd.Timestamp) -> History:
    """``history.before(as_of)``, skipping the copy when no row is dated on/after ``as_of``.

    The usual case (as-of after the data's end) would otherwise copy every table.
    """
    as_of = pd.Timestamp(as_of)
    for name, df in history.tables().items():
        if name != "accounts" and len(df) and not bool((known_dates(name, df) < as_of).all()):
            return history.before(as_of)
    return history


def account_universe(history: History) -> np.ndarray:
    """Sorted ids of the accounts that can be eligible: those with orders or contracts."""
    ids = pd.unique(pd.Series(_runs(history.orders["account_id"])[1]).dropna())
    ids = np.asarray(ids, dtype=object)
    if history.contracts is not None:
        more = np.asarray(pd.unique(history.contracts["account_id"].dropna()), dtype=object)
        ids = np.union1d(ids, more)
    return np.sort(ids.astype(object))


def feature_categories(history: History) -> dict[str, list[str]]:
    """Fixed, sorted categories of the account attributes, from the whole accounts table.

    Taken from every account (not a chunk, not only eligible ones), so training and scoring
    see identical category sets.
    """
    out: dict[str, list[str]] = {}
    for col in ("industry", "region"):
        if col in history.accounts.columns:
            values = history.accounts[col].dropna().astype(str).unique()
            out[col] = sorted(str(v) for v in values)
    return out


def encode(
    history: History,
    categories: Mapping[str, Sequence[str]],
    ids: np.ndarray | None = None,
) -> Encoded:
    """Encode ``history`` (all its rows; mask by date later with :meth:`Encoded.upto`)."""
    ids = account_universe(history) if ids is None else ids
    orders = _encode_orders(history.orders, ids)
    order_days, gaps = _order_days(orders)
    created, attributes = _encode_accounts(history.accounts, ids, categories)
    return Encoded(
        ids=ids,
        orders=orders,
        order_days=order_days,
        gaps=gaps,
        contracts=None if history.contracts is None else _encode_contracts(history.contracts, ids),
        created=created,
        attributes=attributes,
        usage=None if history.usage is None else _encode_usage(history.usage, ids),
        tickets=None if history.tickets is None else _encode_tickets(history.tickets, ids),
        surveys=None if history.surveys is None else _encode_surveys(history.surveys, ids),
        feed_days={k: to_day(v) for k, v in history.feed_as_of.items()},
    )


def _encode_orders(o: pd.DataFrame, ids: np.ndarray) -> Arrays:
    orders: Arrays = {
        "code": _codes(o["account_id"], ids),
        "day": _days(o["order_date"]),
        "amount": o["amount"].to_numpy(dtype="float64", na_value=0.0),
    }
    if "product" in o.columns:
        orders["product"] = pd.factorize(o["product"], sort=False)[0].astype(np.int64)
    if "order_id" in o.columns:
        orders["order_id"] = pd.factorize(o["order_id"], sort=False)[0].astype(np.int64)
    orders = _sorted(orders, "day")
    orders["purchase"] = is_purchase(orders["amount"])
    orders["new_order"] = _first_of_order(orders)
    return orders


def _encode_usage(u: pd.DataFrame, ids: np.ndarray) -> Arrays:
    arr: Arrays = {
        "code": _codes(u["account_id"], ids),
        "day": _days(u["date"]),
        "count": u["count"].to_numpy(dtype="float64", na_value=0.0),
    }
    return _sorted(arr, "day")


def _encode_tickets(t: pd.DataFrame, ids: np.ndarray) -> Arrays:
    arr: Arrays = {"code": _codes(t["account_id"], ids), "day": _days(t["opened_at"])}
    if "resolved_at" in t.columns:
        arr["resolved"] = _days(t["resolved_at"])
    if "is_complaint" in t.columns:
        arr["complaint"] = _bool(t["is_complaint"])
    if "severity" in t.columns:
        sev = t["severity"].astype(object).where(t["severity"].notna(), "")
        sev = sev.astype(str).str.strip().str.lower()
        arr["severe"] = np.asarray(sev.isin(["high", "critical"]), dtype=bool)
        arr["critical"] = np.asarray(sev == "critical", dtype=bool)
    return _sorted(arr, "day")


def _encode_surveys(s: pd.DataFrame, ids: np.ndarray) -> Arrays:
    arr: Arrays = {
        "code": _codes(s["account_id"], ids),
        "day": _days(s["date"]),
        "score": s["score"].to_numpy(dtype="float64", na_value=np.nan),
    }
    if "kind" in s.columns:  # codes of the kinds in sorted order (case-blind; none: -1)
        kinds = survey_kinds(s["kind"])
        arr["kind"] = pd.Categorical(
            kinds, categories=sorted(kinds.dropna().unique())
        ).codes.astype(np.int64)
    arr = {k: v[~np.isnan(arr["score"])] for k, v in arr.items()}
    return _sorted(arr, "day")


def _encode_contracts(c: pd.DataFrame, ids: np.ndarray) -> Arrays:
    arr: Arrays = {
        "code": _codes(c["account_id"], ids),
        "start": _days(c["start_date"]),
        "end": _days(c["end_date"]),
        "known": _days(known_dates("contracts", c)),
    }
    if "value" in c.columns:
        arr["value"] = np.nan_to_num(c["value"].to_numpy(dtype="float64", na_value=0.0))
    return _sorted(arr, "start")


def _encode_accounts(
    accounts: pd.DataFrame, ids: np.ndarray, categories: Mapping[str, Sequence[str]]
) -> tuple[np.ndarray | None, dict[str, pd.Categorical]]:
    """Each account's creation day (when known) and its categorical attributes."""
    acc = accounts.drop_duplicates("account_id", keep="last").set_index("account_id")
    acc = acc.reindex(pd.Index(ids, dtype=object))
    created = _days(acc["created_at"]) if "created_at" in acc.columns else None
    attributes: dict[str, pd.Categorical] = {}
    for col, cats in categories.items():
        if col in acc.columns:
            values = acc[col].astype(object).where(acc[col].notna(), None)
            attributes[col] = pd.Categorical(values, categories=list(cats))
    return created, attributes


def _first_of_order(orders: Arrays) -> np.ndarray:
    """True on the first (earliest) purchase row of each (account, order_id); purchase rows
    without id: True; credit rows (negative amounts: credit notes, returns): False.

    Orders often arrive as one row per order line: counting rows would count lines. A credit
    note is not an order: an order whose only rows are credits is not counted, and a
    discount line does not count its order twice.
    """
    first = orders["purchase"].copy()
    oid = orders.pop("order_id", None)
    if oid is None or not len(first):
        return first
    rows = np.flatnonzero((oid >= 0) & first)
    key = orders["code"][rows] * np.int64(int(oid.max()) + 1) + oid[rows]
    order = np.argsort(key, kind="stable")  # stable: the earliest row of a group comes first
    k = key[order]
    repeat = np.zeros(len(k), dtype=bool)
    repeat[1:] = k[1:] == k[:-1]
    first[rows[order[repeat]]] = False
    return first


def _order_days(orders: Arrays) -> tuple[Arrays, Arrays]:
    """Distinct order days per account (days with a purchase row), and the gaps between them
    sorted by value.

    Gaps carry the day that closes them (``end``): the gap is known once that day is past,
    so ``end < as_of`` selects the gaps of the history before the as-of. Sorting them by
    (account, length) once lets every snapshot read medians without sorting again.
    """
    bought = orders["purchase"]  # a day with only credit notes or returns is no order day
    code, day = orders["code"][bought], orders["day"][bought]
    first = np.ones(len(code), dtype=bool)
    first[1:] = (code[1:] != code[:-1]) | (day[1:] != day[:-1])
    days: Arrays = {"code": code[first], "day": day[first]}
    dcode, dday = days["code"], days["day"]
    same = dcode[1:] == dcode[:-1]
    gcode = dcode[1:][same]
    gap = (dday[1:] - dday[:-1])[same]
    end = dday[1:][same]
    if len(gap):
        order = np.argsort(gcode * np.int64(int(gap.max()) + 1) + gap, kind="stable")
        gcode, gap, end = gcode[order], gap[order], end[order]
    return days, {"code": gcode, "gap": gap, "end": end}
