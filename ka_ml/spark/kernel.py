"""What each Spark task runs: the local engine's per-account code on one bucket of accounts.

Pure pandas (no pyspark import), so it runs on executors and is tested without Spark.

A bucket arrives as one *long* frame: every table's rows of the bucket's accounts, told
apart by a ``_t`` table code, their columns packed into a few shared typed slots (``d1``,
``d2`` dates, ``f1``, ``f2`` floats, ``s1``, ``s2`` text, ``b1`` booleans). Six tables fit in
one Arrow stream that way, with about a dozen dense columns instead of two dozen sparse
ones (plus ``c1``, ``c2``: the time of day of ``d1``, ``d2`` when the source had one).
:func:`unpack` turns it back into a :class:`History` typed like the loader's (drops exact
duplicate rows, their times of day included, and rows of accounts missing from the
accounts table, derives the accounts when there is no accounts table, sorts rows as the
loader does), so the encoded arrays - and the features - are the local engine's, bit for
bit.

Every account's rows are in one bucket, so the per-account features, the labels and the
scores computed here are exactly those of the whole data; only the portfolio step (shares
of the whole portfolio) needs all accounts and runs on the driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.data.schema import SCHEMA, Kind
from ka_ml.data.validate import SORT_KEYS, derive_accounts
from ka_ml.features.build import KEYS, account_block
from ka_ml.features.catalog import ABC_CATEGORIES
from ka_ml.features.encode import encode, known_before
from ka_ml.features.labels import churn_labels, timing_labels
from ka_ml.features.snapshots import at_risk
from ka_ml.scoring.score import align_to, score_in_chunks

TABLE_CODES: dict[str, int] = {
    "orders": 0,
    "accounts": 1,
    "usage": 2,
    "tickets": 3,
    "surveys": 4,
    "contracts": 5,
}
SLOT_KINDS: dict[str, Kind] = {
    "d1": "date",
    "d2": "date",
    "d3": "date",  # contracts' signed_date (no clock: the start and end dates tell repeats)
    "f1": "float",
    "f2": "float",
    "s1": "str",
    "s2": "str",
    "b1": "bool",
    "c1": "float",
    "c2": "float",
}
# The time of day of a date slot (seconds after midnight, null at midnight): dates are days,
# but rows equal but for their time of day are two rows, not one repeated (as the loader).
CLOCKS: dict[str, str] = {"d1": "c1", "d2": "c2"}
# Every contract column the kernels need, by table -> its slot in the long frame.
SLOTS: dict[str, dict[str, str]] = {
    "orders": {
        "order_date": "d1",
        "amount": "f1",
        "quantity": "f2",
        "order_id": "s1",
        "product": "s2",
    },
    "accounts": {"created_at": "d1", "industry": "s1", "region": "s2"},
    "usage": {"date": "d1", "count": "f1", "event_type": "s1"},
    "tickets": {"opened_at": "d1", "resolved_at": "d2", "severity": "s1", "is_complaint": "b1"},
    "surveys": {"date": "d1", "score": "f1", "kind": "s1"},
    "contracts": {
        "start_date": "d1",
        "end_date": "d2",
        "value": "f1",
        "renewed": "b1",
        "signed_date": "d3",
    },
}
LONG_COLUMNS: tuple[str, ...] = ("_t", "account_id", *SLOT_KINDS)
PORTFOLIO = ("revenue_share", "abc_tier", "dependency_index")
LABELS: dict[str, str] = {
    "churn": "double",
    "churn_definition": "string",
    "days_to_next": "double",
    "next_order_observed": "boolean",
}
_DTYPES: Mapping[Kind, Any] = {
    "id": "str",
    "date": "datetime64[us]",
    "float": "float64",
    "str": "str",
    "bool": "boolean",
}


@dataclass(frozen=True)
class Layout:
    """Which tables and contract columns the source has (what :func:`unpack` rebuilds).

    ``accounts_given`` False: the source has no accounts table; each bucket derives its
    accounts from the ids in its data, as the loader does for the whole data.
    """

    columns: Mapping[str, tuple[str, ...]]
    accounts_given: bool = True


def _typed(values: pd.Series, kind: Kind) -> pd.Series:
    if kind == "date":
        return values.astype("datetime64[us]")
    if kind == "bool":
        return values.astype("boolean")
    return values.astype(_DTYPES[kind])


def layout_of(history: History) -> Layout:
    """The :class:`Layout` of a loaded History (its tables and kernel columns)."""
    cols = {
        name: tuple(
            c.name
            for c in SCHEMA[name].columns
            if c.name in df.columns and (c.name == "account_id" or c.name in SLOTS[name])
        )
        for name, df in history.tables().items()
    }
    return Layout(cols, accounts_given=True)


def pack(history: History) -> pd.DataFrame:
    """The long frame of a History (pandas; Spark builds the same one with SQL)."""
    parts = []
    layout = layout_of(history)
    for name, df in history.tables().items():
        data: dict[str, object] = {
            "_t": np.full(len(df), TABLE_CODES[name], dtype=np.int8),
            "account_id": df["account_id"].astype(object).to_numpy(),
        }
        slots = {SLOTS[name][c]: c for c in layout.columns[name] if c != "account_id"}
        for slot, kind in SLOT_KINDS.items():
            if slot in slots:
                data[slot] = _typed(df[slots[slot]], kind).to_numpy()
            else:
                data[slot] = pd.Series(None, index=df.index, dtype=_DTYPES[kind]).to_numpy()
        parts.append(pd.DataFrame(data))
    return pd.concat(parts, ignore_index=True)


def unpack(long: pd.DataFrame, layout: Layout) -> History:
    """The History of one bucket from its long frame (see the module doc)."""

    codes = long["_t"].to_numpy()
    frames: dict[str, pd.DataFrame] = {}
    for table, columns in layout.columns.items():
        part = long[codes == TABLE_CODES[table]]
        kinds = {c.name: c.kind for c in SCHEMA[table].columns}
        data = {
            col: _typed(
                part["account_id" if col == "account_id" else SLOTS[table][col]], kinds[col]
            )
            for col in columns
        }
        clocks = {
            CLOCKS[SLOTS[table][col]]: part[CLOCKS[SLOTS[table][col]]]
            for col in columns
            if SLOTS[table].get(col) in CLOCKS
        }
        frames[table] = pd.DataFrame({**data, **clocks}).reset_index(drop=True)
    accounts = frames.pop("accounts", None)
    if accounts is not None:
        accounts = accounts.drop(columns=list(CLOCKS.values()), errors="ignore")
    if layout.accounts_given and accounts is not None:
        known = pd.Index(accounts["account_id"].dropna().unique())
        frames = {k: f[f["account_id"].isin(known)] for k, f in frames.items()}
    out: dict[str, pd.DataFrame] = {}
    for table, frame in frames.items():
        frame = frame.drop_duplicates(keep="first")  # with the times of day, then without
        frame = frame.drop(columns=list(CLOCKS.values()), errors="ignore")
        keys = [k for k in SORT_KEYS[table] if k in frame.columns]
        order = keys + [c for c in frame.columns if c not in keys]
        out[table] = frame.sort_values(order, na_position="last").reset_index(drop=True)
    orders = out.pop("orders")
    if accounts is None:
        accounts = derive_accounts(orders, list(out.values()))
    else:
        accounts = accounts.sort_values("account_id").reset_index(drop=True)
    return History(orders=orders, accounts=accounts, **out)  # type: ignore[arg-type]


def _industry(history: History, ids: np.ndarray) -> np.ndarray:
    """Each account's industry (None when unknown), as the portfolio step reads it."""
    acc = history.accounts
    if "industry" not in acc.columns:
        return np.full(len(ids), None, dtype=object)
    values = acc.drop_duplicates("account_id", keep="last").set_index("account_id")["industry"]
    found = values.reindex(pd.Index(ids, dtype=object)).astype(object)
    return np.asarray(found.where(found.notna(), None), dtype=object)


def _plain(values: pd.Series | pd.Categorical) -> np.ndarray:
    """A column as Arrow-friendly values: categories as text (None when missing)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        obj = pd.Series(np.asarray(values.astype(object), dtype=object))
        return obj.where(obj.notna(), None).to_numpy(dtype=object)
    return np.asarray(values, dtype=np.float64)


def feature_rows(
    history: History,
    dates: Sequence[pd.Timestamp],
    cfg: Config,
    categories: Mapping[str, Sequence[str]],
    names: Sequence[str],
) -> pd.DataFrame:
    """Per-account features at each date, one row per account of the universe and date.

    ``_eligible`` marks the rows of the local engine's feature table (the others carry
    only ``_revenue`` and ``_industry`` for the portfolio step, their features are
    missing). ``names``: the per-account feature columns wanted (no portfolio ones).
    """
    days = sorted({pd.Timestamp(d).normalize() for d in dates})
    enc = encode(known_before(history, days[-1]), categories)
    frames = []
    if enc.n:
        industry = _industry(history, enc.ids)
        universe = pd.Index(enc.ids, dtype=object)
        for day in days:
            df, revenue = account_block(enc, day, cfg)
            full = df.set_index(pd.Index(df["account_id"].astype(object))).reindex(universe)
            data: dict[str, object] = {
                "account_id": pd.array(enc.ids, dtype="str"),
                "as_of": np.full(enc.n, np.datetime64(day, "us")),
                "_eligible": full["as_of"].notna().to_numpy(),
                "_revenue": revenue.to_numpy(dtype=np.float64),
                "_industry": industry,
            }
            for name in names:
                data[name] = _plain(full[name])
            frames.append(pd.DataFrame(data))
    if not frames:
        return empty_rows(names)
    return pd.concat(frames, ignore_index=True)


def to_spark(df: pd.DataFrame) -> pd.DataFrame:
    """A kernel result ready for Arrow: text columns as plain objects (None when missing).

    pandas' ``str`` columns may hold several Arrow chunks after a concat, which PySpark's
    serializer cannot take as one array.
    """
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_string_dtype(out[c].dtype) and out[c].dtype != object:
            values = out[c].astype(object)
            out[c] = values.where(values.notna(), None)
    return out


def empty_rows(names: Sequence[str], labels: bool = False) -> pd.DataFrame:
    cols: dict[str, pd.Series] = {
        "account_id": pd.Series(dtype="str"),
        "as_of": pd.Series(dtype="datetime64[us]"),
        "_eligible": pd.Series(dtype=bool),
        "_revenue": pd.Series(dtype="float64"),
        "_industry": pd.Series(dtype=object),
    }
    for name in names:
        cols[name] = pd.Series(dtype=object if name in ("industry", "region") else "float64")
    if labels:
        cols.update(
            churn=pd.Series(dtype="float64"),
            churn_definition=pd.Series(dtype=object),
            days_to_next=pd.Series(dtype="float64"),
            next_order_observed=pd.Series(dtype=object),
        )
    return pd.DataFrame(cols)


def training_rows(
    history: History,
    dates: Sequence[pd.Timestamp],
    as_of: pd.Timestamp,
    cfg: Config,
    categories: Mapping[str, Sequence[str]],
    names: Sequence[str],
) -> pd.DataFrame:
    """:func:`feature_rows` plus the churn and timing labels of the eligible rows, exactly
    as :func:`ka_ml.features.snapshots.build_training_set` computes them."""

    as_of = pd.Timestamp(as_of).normalize()
    known = known_before(history, as_of)
    rows = feature_rows(known, dates, cfg, categories, names)
    if rows.empty:
        return empty_rows(names, labels=True)
    horizon = pd.Timedelta(days=cfg.labels.horizon_days)
    n = len(rows)
    churn = np.full(n, np.nan)
    definition = np.full(n, None, dtype=object)
    days_to_next = np.full(n, np.nan)
    observed_next = np.full(n, None, dtype=object)
    dates_col = rows["as_of"].to_numpy()
    eligible = rows["_eligible"].to_numpy()
    for s in sorted({pd.Timestamp(d).normalize() for d in dates}):
        idx = np.flatnonzero((dates_col == np.datetime64(s, "us")) & eligible)
        if not len(idx):
            continue
        ids = pd.Index(rows["account_id"].to_numpy()[idx].astype(object))
        feats = rows.iloc[idx].reset_index(drop=True)
        c = churn_labels(known, s, cfg, ids)
        t = timing_labels(known, s, as_of, ids)
        label = c["churn"].to_numpy(dtype=np.float64)
        if s + horizon > as_of:
            label = np.full(len(ids), np.nan)
        if cfg.labels.at_risk_only:
            label = np.where(at_risk(feats, c, cfg), label, np.nan)
        churn[idx] = label
        definition[idx] = c["churn_definition"].to_numpy(dtype=object)
        days_to_next[idx] = t["days_to_next"].to_numpy(dtype=np.float64)
        observed_next[idx] = t["next_order_observed"].to_numpy(dtype=bool)
    return rows.assign(
        churn=churn,
        churn_definition=definition,
        days_to_next=days_to_next,
        next_order_observed=observed_next,
    )


def restore(
    df: pd.DataFrame, names: Sequence[str], categories: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """Feature rows coming back from Spark, typed as the local feature table.

    ``categories`` holds the fixed levels of every categorical feature (the accounts'
    attributes and ``abc_tier``); other features are float64.
    """
    data: dict[str, object] = {
        "account_id": df["account_id"].astype("str").to_numpy(),
        "as_of": df["as_of"].astype("datetime64[us]").to_numpy(),
    }
    for name in names:
        col = df[name]
        if name in categories:
            values = col.astype(object).where(col.notna(), None)
            data[name] = pd.Categorical(values, categories=list(categories[name]))
        else:
            data[name] = col.to_numpy(dtype=np.float64, na_value=np.nan)
    out = pd.DataFrame(data, index=df.index)
    out["account_id"] = out["account_id"].astype("str")
    return out


def all_categories(categories: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The accounts' attribute levels plus the ABC tiers: every categorical feature."""
    return {**{k: list(v) for k, v in categories.items()}, "abc_tier": list(ABC_CATEGORIES)}


def score_rows(
    rows: pd.DataFrame,
    models: Any,
    as_of: pd.Timestamp,
    prev_day: pd.Timestamp | None,
    names: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    windows: Sequence[int],
    keep: Sequence[str],
    chunk_rows: int,
    recent_lapse_days: float = 0.0,
    currency: str = "",
) -> pd.DataFrame:
    """Scores, timing, reasons and week-on-week changes of one bucket's accounts.

    ``rows`` are feature rows (portfolio columns included) at ``as_of`` and, when
    ``prev_day`` is given, at ``prev_day``. The result is the scorer's own per-chunk frame
    (``ka_ml.scoring.score.score_chunk``) for the accounts scored at ``as_of``, plus the
    features in ``keep``, which the driver needs for the portfolio columns and the lights.
    """

    as_of = pd.Timestamp(as_of)
    stamp = rows["as_of"].astype("datetime64[us]")
    now = rows[stamp == np.datetime64(as_of.normalize(), "us")].sort_values("account_id")
    X = restore(now, names, categories).reset_index(drop=True)[[*KEYS, *names]]
    if X.empty:
        return pd.DataFrame()
    before = None
    if prev_day is not None:
        then = rows[stamp == np.datetime64(pd.Timestamp(prev_day), "us")]
        before = align_to(restore(then, names, categories)[[*KEYS, *names]], X)
    out, _ = score_in_chunks(
        models,
        X,
        before,
        list(windows),
        as_of,
        chunk_rows,
        recent_lapse_days=recent_lapse_days,
        currency=currency,
    )
    for c in keep:
        out[c] = _plain(X[c])
    return out
