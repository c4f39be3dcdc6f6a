"""The score history: every weekly score, upserted by (account, as-of), in a SQLite file.

It is what makes week-over-week change known (last week's light for hysteresis, forecasts
whose p90 date has passed for the overdue rule, "turned red" in the report) and what the
outcome backtest reads once the horizon has passed.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd

from ka_ml.config import Config

COLUMNS = (
    "account_id",
    "as_of",
    "churn_probability",
    "health",
    "expected_next_purchase_date",
    "next_purchase_p10_date",
    "next_purchase_p90_date",
    "last_order_date",
    "abc_tier",
    "revenue_at_risk",
    "reason_1",
    "churn_model_version",
    "timing_model_version",
)
# Stored beside COLUMNS for the readers of the history (the read API, `ka-ml notify`), not
# read back by the scorer: names, owners and every reason, so "latest with reasons" needs no
# output folder. Files written before these existed get them on first open (ALTER TABLE).
DETAIL_COLUMNS: dict[str, str] = {
    "name": "TEXT",
    "owner": "TEXT",
    "industry": "TEXT",
    "region": "TEXT",
    "health_prev": "TEXT",
    "churn_probability_prev": "REAL",
    "light_reason": "TEXT",
    "recommended_action": "TEXT",
    "changes": "TEXT",
    "reason_2": "TEXT",
    "reason_3": "TEXT",
    **{f"reason_{k}_feature": "TEXT" for k in (1, 2, 3)},
    **{f"reason_{k}_shap": "REAL" for k in (1, 2, 3)},
    "revenue_365d": "REAL",
    "revenue_share": "REAL",
    "dependency_index": "REAL",
    "days_since_last_order": "REAL",
    "lifecycle": "TEXT",
    "lifecycle_reason": "TEXT",
    "low_confidence": "INTEGER",
    "churn_definition": "TEXT",
    "dependency_alert": "INTEGER",
    "expected_revenue_12m": "REAL",
    "win_back_value": "REAL",
    **{
        f"scorecard_{m}{suffix}": "TEXT"
        for m in ("usage", "complaints", "renewal_intent", "purchase_rhythm")
        for suffix in ("", "_detail")
    },
}
# the p_purchase_{k}d windows (config-dependent) as one JSON object per row
PROBABILITY_JSON = "extra_probability_columns"
_WINDOW = re.compile(r"^p_purchase_\d+d$")
DATE_COLUMNS = (
    "as_of",
    "expected_next_purchase_date",
    "next_purchase_p10_date",
    "next_purchase_p90_date",
    "last_order_date",
)


def history_path(cfg: Config) -> Path:
    """Where the scorer keeps its history: beside the weekly output folders."""
    return Path(cfg.paths.outputs) / "score_history.sqlite"


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30)
    con.execute(
        "CREATE TABLE IF NOT EXISTS scores (account_id TEXT NOT NULL, as_of TEXT NOT NULL, "
        "churn_probability REAL, health TEXT, expected_next_purchase_date TEXT, "
        "next_purchase_p10_date TEXT, next_purchase_p90_date TEXT, last_order_date TEXT, "
        "abc_tier TEXT, revenue_at_risk REAL, reason_1 TEXT, churn_model_version TEXT, "
        "timing_model_version TEXT, extra_probability_columns TEXT, "
        "PRIMARY KEY (account_id, as_of))"
    )
    have = {row[1] for row in con.execute("PRAGMA table_info(scores)")}
    for col, sql_type in DETAIL_COLUMNS.items():  # constant names: safe to splice
        if col not in have:
            con.execute(f"ALTER TABLE scores ADD COLUMN {col} {sql_type}")
    con.commit()
    return con


def upsert(path: Path, scores: pd.DataFrame) -> int:
    """Replace this as-of's rows in one transaction (idempotent for reruns)."""
    stored = [*COLUMNS, *DETAIL_COLUMNS]
    df = scores.loc[:, [c for c in stored if c in scores.columns]].copy()
    windows = [c for c in scores.columns if _WINDOW.match(str(c))]
    if windows:
        df[PROBABILITY_JSON] = (
            scores[windows].to_json(orient="records", lines=True).splitlines()
            if len(scores)
            else []
        )
    for c in DATE_COLUMNS:
        if c in df:
            df[c] = pd.to_datetime(df[c]).dt.strftime("%Y-%m-%d")
    for c in df.columns:
        if pd.api.types.is_bool_dtype(df[c]):  # SQLite has no booleans: 0 / 1
            df[c] = [None if pd.isna(v) else int(bool(v)) for v in df[c]]
    rows = [tuple(None if pd.isna(v) else v for v in r) for r in df.itertuples(index=False)]
    placeholders = ",".join("?" * len(df.columns))
    with closing(_connect(Path(path))) as con, con:
        for as_of in df["as_of"].unique():
            con.execute("DELETE FROM scores WHERE as_of = ?", (as_of,))
        con.executemany(
            f"INSERT INTO scores ({','.join(df.columns)}) VALUES ({placeholders})", rows
        )
    return len(rows)


def read(path: Path, *, before: pd.Timestamp | None = None) -> pd.DataFrame:
    """All stored scores (optionally only as-of dates strictly before ``before``)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=list(COLUMNS))
    with closing(_connect(path)) as con:
        q = f"SELECT {', '.join(COLUMNS)} FROM scores"  # the scorer's columns only
        params: tuple[str, ...] = ()
        if before is not None:
            q += " WHERE as_of < ?"
            params = (str(pd.Timestamp(before).date()),)
        df = pd.read_sql_query(q, con, params=params)
    for c in DATE_COLUMNS:
        df[c] = pd.to_datetime(df[c])
    return df.drop(columns=["extra_probability_columns"], errors="ignore")


def previous_week(hist: pd.DataFrame, as_of: pd.Timestamp, max_days: int = 21) -> pd.DataFrame:
    """Each account's latest score dated within ``max_days`` (``scoring.previous_run_max_days``)
    before ``as_of`` (by account)."""
    h = hist[(hist["as_of"] < as_of) & (hist["as_of"] >= as_of - pd.Timedelta(days=max_days))]
    if h.empty:
        return h.set_index("account_id")
    latest = h["as_of"].max()
    return h[h["as_of"] == latest].set_index("account_id")


def open_forecast_p90(hist: pd.DataFrame, last_order: pd.Series) -> pd.Series:
    """p90 date of the earliest forecast made after each account's last order (NaT if none)."""
    if hist.empty:
        return pd.Series(pd.NaT, index=last_order.index, dtype="datetime64[us]")
    lo = last_order.rename("lo").rename_axis("account_id").reset_index()  # any index name
    h = hist.merge(lo, on="account_id", how="inner")
    h = h[h["as_of"] > h["lo"]].sort_values(["account_id", "as_of"])
    first = h.groupby("account_id")["next_purchase_p90_date"].first()
    return first.reindex(last_order.index)


# -- the contributions each run reported ------------------------------------------------
# Beside the scores, each run's per-feature churn contributions (probability points,
# float32), so "since last week" compares with what was reported then (the same numbers
# as churn_probability_prev) and needs no second TreeSHAP pass. Only the latest
# KEEP_CONTRIBUTION_RUNS dates are kept: the next run needs only the previous one.
KEEP_CONTRIBUTION_RUNS = 4


def _contributions_tables(con: sqlite3.Connection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS contributions (account_id TEXT NOT NULL, "
        "as_of TEXT NOT NULL, features_id TEXT NOT NULL, vec BLOB NOT NULL, "
        "PRIMARY KEY (account_id, as_of))"
    )
    con.execute(
        "CREATE TABLE IF NOT EXISTS contribution_features (features_id TEXT PRIMARY KEY, "
        "features TEXT NOT NULL)"
    )


def upsert_contributions(
    path: Path,
    as_of: pd.Timestamp,
    account_ids: pd.Series | np.ndarray,
    features: list[str],
    values: np.ndarray,
) -> int:
    """Replace ``as_of``'s stored contributions (one transaction) and drop all but the
    latest ``KEEP_CONTRIBUTION_RUNS`` dates."""
    import hashlib
    import json

    names = json.dumps(list(features))
    fid = hashlib.sha256(names.encode()).hexdigest()[:16]
    day = str(pd.Timestamp(as_of).date())
    mat = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    rows = [(str(a), day, fid, mat[i].tobytes()) for i, a in enumerate(np.asarray(account_ids))]
    with closing(_connect(Path(path))) as con, con:
        _contributions_tables(con)
        con.execute("INSERT OR IGNORE INTO contribution_features VALUES (?, ?)", (fid, names))
        con.execute("DELETE FROM contributions WHERE as_of = ?", (day,))
        con.executemany("INSERT INTO contributions VALUES (?, ?, ?, ?)", rows)
        keep = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT as_of FROM contributions ORDER BY as_of DESC LIMIT ?",
                (KEEP_CONTRIBUTION_RUNS,),
            )
        ]
        con.execute(
            f"DELETE FROM contributions WHERE as_of NOT IN ({','.join('?' * len(keep))})", keep
        )
    return len(rows)


def read_contributions(path: Path, as_of: pd.Timestamp, features: list[str]) -> pd.DataFrame:
    """The contributions stored for ``as_of``: one row per account (index ``account_id``),
    columns ``features`` in that order (0 for a feature the stored run's model lacked).
    Empty when nothing was stored for that date."""
    import json

    empty = pd.DataFrame(columns=list(features), dtype=float)
    path = Path(path)
    if not path.exists():
        return empty
    day = str(pd.Timestamp(as_of).date())
    with closing(_connect(path)) as con:
        _contributions_tables(con)
        found = con.execute(
            "SELECT c.account_id, c.vec, f.features FROM contributions c JOIN "
            "contribution_features f USING (features_id) WHERE c.as_of = ?",
            (day,),
        ).fetchall()
    if not found:
        return empty
    parts = []
    for stored, group in pd.DataFrame(found, columns=["id", "vec", "features"]).groupby(
        "features"
    ):  # one feature list per model version: a handful at most
        cols = json.loads(str(stored))
        mat = np.frombuffer(b"".join(group["vec"]), dtype=np.float32).reshape(len(group), -1)
        df = pd.DataFrame(mat.astype(np.float64), index=group["id"].to_numpy(), columns=cols)
        parts.append(df.reindex(columns=list(features), fill_value=0.0))
    out = pd.concat(parts)
    out.index.name = "account_id"
    return out
