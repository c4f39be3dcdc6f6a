"""The score history: every weekly score, and the contributions it reported, in one SQLite file.

This module is the history's only owner: where the file lives (:func:`history_path`), its
schema, and every statement run against it. The scorer writes a run (:func:`write_run`:
the scores and their per-feature contributions in one transaction) and reads the runs
before its date (:func:`read`, :func:`previous_week`, :func:`read_contributions`); the
outcome backtest reads them with the purchase-window probabilities decoded
(``read(..., windows=True)``); the read API runs its queries through
:class:`ReadOnlyHistory`, which opens the file read-only (``mode=ro``), one connection per
request. Nothing else opens the file.

The history is what makes week-over-week change known (last week's light for hysteresis,
forecasts whose p90 date has passed for the overdue rule, "turned red" in the report) and
what the outcome backtest reads once the horizon has passed.

Writes and the scorer's reads use :mod:`sqlite3`; the API's read-only queries are
SQLAlchemy Core with bound parameters (filters and paging come from HTTP requests). The
module imports no modelling code, so starting the API does not load LightGBM or SHAP.

Readers while a run is written (issue 16.3): the file is in WAL mode, so readers never
wait for the writer nor it for them, and each reader sees the history as of the last
commit; a run is one transaction, so a week is there whole or not at all. Each API
request reads inside one transaction (one snapshot for all its queries: an account's
latest row and its history never straddle a commit). ``runs`` records each stored week
with an id that changes when the week is rewritten, so the API can keep what it derived
from a week (the portfolio summary) until that week changes. Indexes (:data:`INDEXES`)
serve the latest date, an owner's accounts, the counts of every API filter and the API's
order without a scan of every stored week or a sort, and each run refreshes the planner's
statistics (``ANALYZE``). WAL needs a
local file system (not NFS/SMB).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.pool import QueuePool

from ka_ml.config import Config

FILE_NAME = "score_history.sqlite"
TABLE = "scores"
RUNS = "runs"  # one row per stored week: its run id changes when the week is rewritten
INDEXES = {  # constant SQL: the API's latest date, filters and order without scanning weeks
    "scores_as_of_owner": "(as_of, owner, health)",
    # covers the counts of every /accounts filter: a scan of one week's index entries
    "scores_as_of_filters": "(as_of, health, abc_tier, lifecycle, dependency_alert, owner)",
    # the /accounts order: a page without sorting the week
    "scores_as_of_risk": "(as_of, revenue_at_risk DESC, churn_probability DESC, account_id)",
}
WAL_LIMIT_BYTES = 64 * 2**20  # the WAL file is cut back to this after a checkpoint

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
    "lifecycle_prev": "TEXT",
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
# detail columns the scorer reads back too (:func:`read`)
READ_DETAIL = ("lifecycle",)
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
    """Where the scorer keeps its history: ``<paths.outputs>/score_history.sqlite``."""
    return Path(cfg.paths.outputs) / FILE_NAME


# -- writing a run ----------------------------------------------------------------------
def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30)
    con.execute("PRAGMA journal_mode=WAL")  # persistent: readers and the writer never wait
    con.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
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
    for name, columns in INDEXES.items():  # constants; built once on an older file
        con.execute(f"CREATE INDEX IF NOT EXISTS {name} ON scores {columns}")
    con.execute(
        "CREATE TABLE IF NOT EXISTS runs (as_of TEXT PRIMARY KEY, run_id TEXT NOT NULL, "
        "written_at TEXT NOT NULL, accounts INTEGER NOT NULL)"
    )
    con.commit()
    return con


@dataclass(frozen=True)
class Contributions:
    """One run's per-feature churn contributions (probability points), a row per account."""

    as_of: pd.Timestamp
    account_ids: pd.Series | np.ndarray
    features: list[str]
    values: np.ndarray


def write_run(path: Path, scores: pd.DataFrame, contributions: Contributions | None = None) -> int:
    """Store one run: replace its as-of's scores and, when given, its contributions, in one
    transaction (idempotent for reruns; a failure leaves the history as it was). Returns
    the number of score rows written."""
    df = _stored_frame(scores)
    # Python values, missing as None (column-wise: a per-cell check took seconds at 100k)
    rows = list(df.astype(object).where(df.notna(), None).itertuples(index=False, name=None))
    placeholders = ",".join("?" * len(df.columns))
    written_at = pd.Timestamp.now(tz="UTC").isoformat()
    with closing(_connect(Path(path))) as con, con:
        for as_of in df["as_of"].unique():
            con.execute("DELETE FROM scores WHERE as_of = ?", (as_of,))
        con.executemany(
            f"INSERT INTO scores ({','.join(df.columns)}) VALUES ({placeholders})", rows
        )
        for as_of, n in df["as_of"].value_counts().items():
            con.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)",
                (as_of, uuid.uuid4().hex, written_at, int(n)),
            )
        if contributions is not None:
            _write_contributions(con, contributions)
        # statistics, so the planner picks the owner index for an owner's red accounts and
        # the order index for a page of the whole week (without them it guesses wrong, and
        # sampled ones mislead it: 0.4 s for 800k rows, a fraction of the write)
        con.execute("ANALYZE scores")
    return len(rows)


def _stored_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """The stored columns of ``scores`` as SQLite values: windows as JSON, dates as text,
    booleans as 0/1."""
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
    return df


# -- reading runs -----------------------------------------------------------------------
def read(path: Path, *, before: pd.Timestamp | None = None, windows: bool = False) -> pd.DataFrame:
    """All stored scores (optionally only as-of dates strictly before ``before``): the
    scorer's columns and ``lifecycle``, plus with ``windows`` each stored ``p_purchase_{k}d`` (NaN in rows
    written without them)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=[*COLUMNS, *READ_DETAIL])
    # with each week's lifecycle: last week's tells a lapsed account coming back from one
    # that was not scored ("back from lapsed", not "new")
    selected = [*COLUMNS, *READ_DETAIL, *([PROBABILITY_JSON] if windows else [])]
    with closing(_connect(path)) as con:
        q = f"SELECT {', '.join(selected)} FROM scores"  # constant names
        params: tuple[str, ...] = ()
        if before is not None:
            q += " WHERE as_of < ?"
            params = (str(pd.Timestamp(before).date()),)
        df = pd.read_sql_query(q, con, params=params)
    for c in DATE_COLUMNS:
        df[c] = pd.to_datetime(df[c])
    if not windows:
        return df
    return _decode_windows(df)


def _decode_windows(df: pd.DataFrame) -> pd.DataFrame:
    """The JSON column of purchase-window probabilities as one float column per window."""
    raw = df.pop(PROBABILITY_JSON)
    if not raw.notna().any():
        return df
    text = raw.fillna("{}").str.cat(sep="\n")
    probs = pd.read_json(io.StringIO(text), lines=True).astype(float)
    probs.index = df.index
    return pd.concat([df, probs], axis=1)


def previous_week(hist: pd.DataFrame, as_of: pd.Timestamp, max_days: int = 21) -> pd.DataFrame:
    """Each account's latest score dated within ``max_days`` (``scoring.previous_run_max_days``)
    before ``as_of`` (by account)."""
    h = hist[(hist["as_of"] < as_of) & (hist["as_of"] >= as_of - pd.Timedelta(days=max_days))]
    if h.empty:
        return h.set_index("account_id")
    latest = h["as_of"].max()
    return h[h["as_of"] == latest].set_index("account_id")


# a previous run this many days back is "last week"; another is named by its date
A_WEEK_DAYS = range(6, 9)


def dated_changes(texts: np.ndarray, previous: pd.Timestamp, days: int) -> np.ndarray:
    """The weekly change texts as they are when the previous run was about a week ago;
    otherwise (a skipped week) with "since last week" dated ("since 2 Jul (14 days)") and
    "last week" named ("no light on 2 Jul"): a user's skipped week read "since last week"
    against a run two weeks old."""
    if days in A_WEEK_DAYS:
        return texts
    day = f"{previous.day} {previous:%b}"
    return np.array(
        [
            str(t)
            .replace("since last week", f"since {day} ({days} days)")
            .replace("last week", f"on {day}")
            for t in texts
        ],
        dtype=object,
    )


def open_forecast_p90(
    hist: pd.DataFrame, last_order: pd.Series, within_days: int | None = None
) -> pd.Series:
    """p90 date of the earliest forecast made after each account's last order (NaT if none,
    or if that forecast was open-ended: a later one forecast from a longer silence).

    ``within_days``: only a forecast made at most this many days after the order counts. One
    made later (the account was already silent when the score history began) forecast from
    that silence, not from the order: it says nothing about when the order was due.
    """
    if hist.empty:
        return pd.Series(pd.NaT, index=last_order.index, dtype="datetime64[us]")
    lo = last_order.rename("lo").rename_axis("account_id").reset_index()  # any index name
    h = hist.merge(lo, on="account_id", how="inner")
    h = h[h["as_of"] > h["lo"]].sort_values(["account_id", "as_of"])
    first = h.groupby("account_id").head(1).set_index("account_id")  # the earliest, whole
    p90 = first["next_purchase_p90_date"]
    if within_days is not None:
        late = (first["as_of"] - first["lo"]) > pd.Timedelta(days=within_days)
        p90 = p90.mask(late)
    return p90.reindex(last_order.index)


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


def _write_contributions(con: sqlite3.Connection, run: Contributions) -> None:
    """Replace ``run.as_of``'s stored contributions and drop all but the latest
    ``KEEP_CONTRIBUTION_RUNS`` dates and as many up to ``run.as_of`` (inside the caller's
    transaction)."""
    names = json.dumps(list(run.features))
    fid = hashlib.sha256(names.encode()).hexdigest()[:16]
    day = str(pd.Timestamp(run.as_of).date())
    mat = np.ascontiguousarray(np.asarray(run.values, dtype=np.float32))
    ids = np.asarray(run.account_ids)
    rows = [(str(a), day, fid, mat[i].tobytes()) for i, a in enumerate(ids)]
    _contributions_tables(con)
    con.execute("INSERT OR IGNORE INTO contribution_features VALUES (?, ?)", (fid, names))
    con.execute("DELETE FROM contributions WHERE as_of = ?", (day,))
    con.executemany("INSERT INTO contributions VALUES (?, ?, ?, ?)", rows)
    # the latest dates, and the ones up to the date written: rescoring past weeks in order
    # with later weeks stored had pruned each week's contributions as soon as it was
    # written, so the next week explained it again and said another "biggest mover" than
    # the first run had (821 of 875 accounts one week)
    keep = [
        r[0]
        for r in con.execute(
            "SELECT as_of FROM (SELECT DISTINCT as_of FROM contributions ORDER BY as_of DESC "
            "LIMIT ?) UNION SELECT as_of FROM (SELECT DISTINCT as_of FROM contributions "
            "WHERE as_of <= ? ORDER BY as_of DESC LIMIT ?)",
            (KEEP_CONTRIBUTION_RUNS, day, KEEP_CONTRIBUTION_RUNS),
        )
    ]
    con.execute(f"DELETE FROM contributions WHERE as_of NOT IN ({','.join('?' * len(keep))})", keep)


def read_contributions(path: Path, as_of: pd.Timestamp, features: list[str]) -> pd.DataFrame:
    """The contributions stored for ``as_of``: one row per account (index ``account_id``),
    columns ``features`` in that order (0 for a feature the stored run's model lacked).
    Empty when nothing was stored for that date."""
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


# -- the read API's queries (read-only) -------------------------------------------------
class NoScores(Exception):
    """The score history does not exist yet (nothing scored)."""


class ReadOnlyHistory:
    """The history opened read-only (``mode=ro``): it can never be changed or created
    through here. Each :meth:`open` is one read transaction on a pooled connection, so a
    request sees one snapshot, and a run landing meanwhile is seen by the next request.

    Connections are pooled (``pool_size`` kept open; opening one re-reads the file's
    schema, half the cost of a light request), and the tables' shape is reflected once
    and again only when the file's schema changes (``PRAGMA schema_version``: a newer
    scorer added columns), not per request.
    """

    def __init__(self, path: Path, pool_size: int = 8) -> None:
        self.path = Path(path).resolve()
        uri = f"{self.path.as_uri()}?mode=ro"
        self.engine = sa.create_engine(
            "sqlite://",
            # isolation_level=None: pysqlite leaves transactions to us; "begin" below opens
            # one at the first statement, so all of a request's queries share a snapshot
            creator=lambda: sqlite3.connect(
                uri, uri=True, check_same_thread=False, isolation_level=None
            ),
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=64,  # FastAPI runs up to 40 requests at once in its thread pool
        )
        sa.event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        self._shape: tuple[int, sa.Table, bool] | None = None
        self._lock = threading.Lock()

    def _tables(self, conn: Connection) -> tuple[sa.Table, bool] | None:
        """(the scores table, whether ``runs`` exists) in the snapshot; None before any run."""
        version = int(conn.exec_driver_sql("PRAGMA schema_version").scalar() or 0)
        shape = self._shape
        if shape is None or shape[0] != version:
            inspector = sa.inspect(conn)
            if not inspector.has_table(TABLE):
                return None
            table = sa.Table(TABLE, sa.MetaData(), autoload_with=conn)
            shape = (version, table, inspector.has_table(RUNS))
            with self._lock:
                self._shape = shape
        return shape[1], shape[2]

    @contextmanager
    def open(self) -> Iterator[HistoryQueries]:
        """One connection with the queries over it; :class:`NoScores` when nothing is stored."""
        if not self.path.exists():
            raise NoScores
        with self.engine.connect() as conn:
            found = self._tables(conn)
            if found is None:
                raise NoScores
            yield HistoryQueries(conn, found[0], found[1])


@dataclass(frozen=True)
class HistoryQueries:
    """The read-only queries over one open connection (bound parameters throughout).

    ``where`` maps stored column names to the values they must equal; a column an older
    file lacks reads as NULL, so filtering on it matches nothing.
    """

    conn: Connection
    table: sa.Table
    has_runs: bool = False

    def column(self, name: str) -> sa.ColumnElement[Any]:
        """A column, or NULL labelled with its name when an older history file lacks it."""
        t = self.table
        return t.c[name] if name in t.c else sa.null().label(name)

    def _columns(
        self, names: Sequence[str], renamed: Mapping[str, str]
    ) -> list[sa.ColumnElement[Any]]:
        """``names`` selected; ``renamed`` maps an output name to the stored column it reads."""
        return [self.column(renamed[n]).label(n) if n in renamed else self.column(n) for n in names]

    def _where(self, as_of: str, where: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
        return [self.table.c.as_of == as_of, *(self.column(k) == v for k, v in where.items())]

    def latest_as_of(self) -> str | None:
        """The latest scored date (YYYY-MM-DD), None when the table is empty."""
        value = self.conn.execute(sa.select(sa.func.max(self.table.c.as_of))).scalar()
        return None if value is None else str(value)

    def run_id(self, as_of: str) -> str | None:
        """The id of the run that stored ``as_of`` (changes when the week is rewritten);
        None for weeks stored before runs were recorded."""
        if not self.has_runs:
            return None
        runs = sa.table(RUNS, sa.column("as_of"), sa.column("run_id"))
        q = sa.select(runs.c.run_id).where(runs.c.as_of == as_of)
        value = self.conn.execute(q).scalar()
        return None if value is None else str(value)

    def has_as_of(self, as_of: str) -> bool:
        t = self.table
        q = sa.select(t.c.as_of).where(t.c.as_of == as_of).limit(1)
        return self.conn.execute(q).first() is not None

    def frame(self, as_of: str, names: Sequence[str], where: Mapping[str, Any]) -> pd.DataFrame:
        """One date's accounts (those matching ``where``), columns ``names``."""
        cols = self._columns(names, {})
        rows = self.conn.execute(sa.select(*cols).where(*self._where(as_of, where))).all()
        return pd.DataFrame.from_records([tuple(r) for r in rows], columns=[c.name for c in cols])

    def count(self, as_of: str, where: Mapping[str, Any]) -> int:
        q = sa.select(sa.func.count()).select_from(self.table).where(*self._where(as_of, where))
        return int(self.conn.execute(q).scalar() or 0)

    def page(
        self,
        as_of: str,
        where: Mapping[str, Any],
        names: Sequence[str],
        *,
        renamed: Mapping[str, str],
        limit: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        """One page of a date's accounts: most revenue at risk first, then probability, id."""
        t = self.table
        q = (
            sa.select(*self._columns(names, renamed))
            .where(*self._where(as_of, where))
            .order_by(
                t.c.revenue_at_risk.desc().nulls_last(),
                t.c.churn_probability.desc().nulls_last(),
                t.c.account_id,
            )
            .limit(limit)
            .offset(offset)
        )
        return [dict(r) for r in self.conn.execute(q).mappings().all()]

    def latest_of(self, account_id: str) -> dict[str, Any] | None:
        """The account's latest stored row, every column; None when it was never scored."""
        t = self.table
        q = sa.select(t).where(t.c.account_id == account_id).order_by(t.c.as_of.desc()).limit(1)
        row = self.conn.execute(q).mappings().first()
        return None if row is None else dict(row)

    def history_of(self, account_id: str, names: Sequence[str], limit: int) -> list[dict[str, Any]]:
        """The account's latest ``limit`` rows, newest first, columns ``names``."""
        t = self.table
        q = (
            sa.select(*self._columns(names, {}))
            .where(t.c.account_id == account_id)
            .order_by(t.c.as_of.desc())
            .limit(limit)
        )
        return [dict(r) for r in self.conn.execute(q).mappings().all()]

    def model_use(self, limit: int) -> list[dict[str, Any]]:
        """Accounts per scored date and model versions, newest date first."""
        t = self.table
        q = (
            sa.select(
                t.c.as_of,
                self.column("churn_model_version"),
                self.column("timing_model_version"),
                sa.func.count().label("accounts"),
            )
            .group_by(t.c.as_of, t.c.churn_model_version, t.c.timing_model_version)
            .order_by(t.c.as_of.desc(), t.c.churn_model_version, t.c.timing_model_version)
            .limit(limit)
        )
        return [dict(r) for r in self.conn.execute(q).mappings().all()]


__all__ = [
    "COLUMNS",
    "DETAIL_COLUMNS",
    "Contributions",
    "HistoryQueries",
    "NoScores",
    "ReadOnlyHistory",
    "history_path",
    "open_forecast_p90",
    "previous_week",
    "read",
    "read_contributions",
    "write_run",
]
