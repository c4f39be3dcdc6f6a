"""Database write-back: the scores table upserted into any SQL database (SQLAlchemy URL).

A CRM or BI tool reads scores where it already reads data: one table (default
``ka_ml_scores``), one row per (account_id, as_of), the columns of ``scores.parquet``.

Why it is built this way:

- Idempotent and atomic: one transaction per write; rows are upserted by the primary key
  (account_id, as_of) with the dialect's own ``INSERT ... ON CONFLICT DO UPDATE``
  (PostgreSQL, SQLite; delete-then-insert elsewhere), and rows of the same as-of that the
  new scores no longer hold are deleted. Re-running score + write-back for a date leaves
  the table holding exactly that date's scores, once.
- Schema follows the scores: the table is created on first use; a column new in the
  scores (another purchase window, a new extra) is added with ``ALTER TABLE`` (Alembic's
  dialect-aware operations); existing columns are never dropped or retyped. A table of
  another layout (no primary key or unique constraint on (account_id, as_of), a column of
  another type, a NOT NULL column ka_ml does not fill) is refused with its columns named,
  before anything is written.
- Checked before the long run: :func:`check_target` connects and proves, in a transaction
  that is rolled back, that the user may create the table (or write the existing one) and
  that an existing table's layout fits, so a weekly run fails in seconds, not after
  scoring.
- Credentials never live in committed config: the URL comes from the environment variable
  ``delivery.writeback_url_env``; the config may hold a password-free URL; the default is
  a SQLite file beside the outputs. Logged URLs hide the password.
- SQL is built with SQLAlchemy Core (bound parameters), never by string formatting.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ka_ml.config import Config
from ka_ml.data.sql import is_lock_timeout, pg_connect_args, sqlstate
from ka_ml.errors import KaMlError
from ka_ml.io import missing_dirs, remove_made_dirs

KEY = ("account_id", "as_of")
CHUNK = 1000  # rows per statement: far below every driver's bind-parameter limit


@dataclass(frozen=True)
class WritebackResult:
    url: str  # password hidden
    table: str
    rows: int  # rows upserted
    removed: int  # rows of the same as-of(s) no longer in the scores
    added_columns: tuple[str, ...] = ()


def resolve_url(cfg: Config, env: Mapping[str, str]) -> str:
    """The environment variable, else ``delivery.writeback_url``, else SQLite in outputs."""
    url = env.get(cfg.delivery.writeback_url_env) or cfg.delivery.writeback_url
    if url:
        return url
    return f"sqlite:///{_default_file(cfg)}"


def _default_file(cfg: Config) -> Path:
    return (Path(cfg.paths.outputs) / "scores.db").resolve()


def fallback_note(cfg: Config, env: Mapping[str, str]) -> str:
    """Why the write-back goes to the local SQLite default, when it does because the
    environment variable is not set ('' otherwise). An environment file a cron job did not
    source had sent a week's scores there with exit 0, the CRM not updated."""
    var = cfg.delivery.writeback_url_env
    if env.get(var) or cfg.delivery.writeback_url:
        return ""
    return (
        f"the write-back goes to the local SQLite file {_default_file(cfg)} because {var} "
        f"is not set (was the environment file sourced?), and no other database is updated; "
        f"set {var} (or delivery.writeback_url) to write back to your database"
    )


def _raw_password(url: str) -> str | None:
    """The password as written in ``url``: between ``user:`` after ``://`` and the LAST
    ``@`` before the query, so an unencoded ``@`` or ``/`` in it is still inside it."""
    _, sep, rest = url.partition("://")
    if not sep:
        return None
    authority = rest.split("?", 1)[0]
    userinfo, at, _ = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1]


def mask_password(url: str) -> str:
    """``url`` with its password (as :func:`_raw_password` finds it) replaced by ``***``."""
    raw = _raw_password(url)
    if not raw:
        return url
    head, _, rest = url.partition("://")
    user, _, tail = rest.partition(":")
    return f"{head}://{user}:***{tail[len(raw) :]}"


def parse_url(url: str) -> URL:
    """A SQLAlchemy URL; plain ``postgresql://`` uses psycopg 3 (the driver we ship)."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise KaMlError(
            "The write-back URL is not a SQLAlchemy URL.",
            "use e.g. postgresql://user:password@host:5432/db or sqlite:///path/scores.db.",
        ) from e
    raw = _raw_password(url)
    if raw and unquote(raw) != parsed.password:  # e.g. 'S3cr@tPw/x' read as host 'tPw'
        raise KaMlError(
            f"The write-back URL {mask_password(url)} cannot be read: its password holds "
            "characters that must be URL-encoded ('@' as %40, '/' as %2F, ':' as %3A, "
            "'%' as %25, '?' as %3F, '#' as %23).",
            "encode the password, e.g. python -c 'import sys, urllib.parse; "
            "print(urllib.parse.quote(sys.argv[1], safe=\"\"))' 'the-password', and put "
            "the encoded form in the URL.",
        )
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def safe_url(url: str | URL) -> str:
    """``url`` for messages: the password hidden, however it is written."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return parse_url(url).render_as_string(hide_password=True)
    except KaMlError:
        return mask_password(url)


def _sql_type(name: str, dtype: Any) -> sa.types.TypeEngine[Any]:
    if name == "account_id":
        return sa.String(255)
    if pd.api.types.is_bool_dtype(dtype):
        return sa.Boolean()
    if pd.api.types.is_integer_dtype(dtype):
        return sa.BigInteger()
    if pd.api.types.is_float_dtype(dtype):
        return sa.Double()
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return sa.Date() if name == "as_of" or name.endswith("_date") else sa.DateTime()
    return sa.Text()


def sql_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """The scores as plain Python values a DB driver takes: dates, floats, str, None."""
    if not set(KEY) <= set(scores.columns):
        raise KaMlError(
            "The scores to write back lack account_id or as_of.",
            "write back a scores table produced by `ka-ml score`.",
        )
    dup = scores.duplicated(list(KEY))
    if dup.any():
        raise KaMlError(
            f"The scores hold {int(dup.sum())} duplicate (account_id, as_of) rows.",
            "write back one row per account and date.",
        )
    out = {}
    for col in scores.columns:
        s = scores[col]
        if col == "account_id":
            s = s.astype("string")
        if pd.api.types.is_datetime64_any_dtype(s):
            typed = _sql_type(str(col), s.dtype)
            values = s.dt.date if isinstance(typed, sa.Date) else s.dt.to_pydatetime()
            out[col] = pd.Series(values, index=s.index, dtype=object).where(s.notna(), None)
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            out[col] = s.astype(object).where(s.notna(), None)
        else:
            out[col] = s.astype("string").astype(object).where(s.notna(), None)
    return pd.DataFrame(out, index=scores.index)


def split_table(table: str) -> tuple[str | None, str]:
    """``schema.table`` -> (schema, table); a plain name -> (None, name): the connection's
    default schema (search_path). Both are validated identifiers (config), quoted by the
    dialect, never spliced into SQL."""
    schema, _, name = table.rpartition(".")
    return schema or None, name


def _table(name: str, scores: pd.DataFrame, metadata: sa.MetaData) -> sa.Table:
    cols = [
        sa.Column(str(c), _sql_type(str(c), scores[c].dtype), primary_key=c in KEY)
        for c in scores.columns
    ]
    schema, plain = split_table(name)
    return sa.Table(plain, metadata, *cols, schema=schema)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = [
        {str(k): v for k, v in r.items()} for r in frame.to_dict("records")
    ]
    for r in records:  # numpy scalars that survived astype(object) (rare) -> Python
        for k, v in r.items():
            if isinstance(v, np.generic):
                r[k] = v.item()
    return records


# the types of the columns every scores table has, to check an existing table before scoring
KNOWN_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "account_id": sa.String(255),
    "as_of": sa.Date(),
    "churn_probability": sa.Double(),
    "health": sa.Text(),
    "lifecycle": sa.Text(),
}


def _family(t: Any) -> str:
    """A column type's broad kind: what decides whether ka_ml's values fit it."""
    if isinstance(t, sa.Boolean):
        return "boolean"
    if isinstance(t, sa.DateTime):
        return "timestamp"
    if isinstance(t, sa.Date):
        return "date"
    if isinstance(t, sa.Integer):
        return "integer"
    if isinstance(t, sa.Numeric | sa.Float):
        return "number"
    if isinstance(t, sa.String):
        return "text"
    return "other"


_FITS = {  # the kinds of an existing column that take the values of a wanted kind
    "text": {"text"},
    "number": {"number"},
    "integer": {"integer", "number"},
    "boolean": {"boolean"},
    "date": {"date", "timestamp"},
    "timestamp": {"timestamp"},
}


def _layout_problems(
    inspector: Any, table: str, wanted: dict[str, sa.types.TypeEngine[Any]]
) -> list[str]:
    """What keeps an existing table from taking the upsert of columns ``wanted`` (name ->
    type; the columns a missing one would be added for are left out): one line each."""
    schema, name = split_table(table)
    cols = {c["name"]: c for c in inspector.get_columns(name, schema=schema)}
    problems = []
    absent = [k for k in KEY if k not in cols]
    if absent:
        problems.append(f"no column(s) {', '.join(absent)}")
    pk = set(inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or [])
    uniques = [
        set(u["column_names"]) for u in inspector.get_unique_constraints(name, schema=schema)
    ]
    uniques += [
        set(i["column_names"])
        for i in inspector.get_indexes(name, schema=schema)
        if i.get("unique")
    ]
    if not absent and pk != set(KEY) and set(KEY) not in uniques:
        problems.append(
            "no primary key or unique constraint on exactly (account_id, as_of)"
            + (f" (the primary key is ({', '.join(sorted(pk))}))" if pk else "")
        )
    for col, want in wanted.items():
        if col in cols and _family(cols[col]["type"]) not in _FITS.get(_family(want), set()):
            problems.append(
                f"column {col} is {cols[col]['type']}, ka_ml writes {_family(want)} there"
            )
    for col, c in cols.items():
        if col not in KEY and not c.get("nullable", True) and c.get("default") is None:
            problems.append(
                f"column {col} is NOT NULL without a default (ka_ml leaves it empty where a "
                "value does not apply, or does not fill it at all)"
            )
    return problems


def _refuse_layout(name: str, problems: list[str]) -> None:
    if problems:
        raise KaMlError(
            f"The write-back table '{name}' exists with another layout than ka_ml's scores "
            f"table: {'; '.join(problems)}.",
            "point delivery.writeback_table at a new table name (ka_ml creates it), or "
            "change that table: a primary key (account_id, as_of), columns of the types "
            "named, NOT NULL only on account_id and as_of.",
        )


def _ensure_table(conn: Connection, wanted: sa.Table) -> tuple[sa.Table, tuple[str, ...]]:
    """Create the table, or add the scores' new columns to it; the table as it now is.
    An existing table of another layout is refused before anything is changed."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    inspector = sa.inspect(conn)
    name, schema = wanted.name, wanted.schema
    if not inspector.has_table(name, schema=schema):
        wanted.metadata.create_all(conn, tables=[wanted])
        return wanted, ()
    have = {c["name"] for c in inspector.get_columns(name, schema=schema)}
    missing = [c for c in wanted.columns if c.name not in have]
    types = {c.name: c.type for c in wanted.columns}
    _refuse_layout(wanted.fullname, _layout_problems(inspector, wanted.fullname, types))
    ops = Operations(MigrationContext.configure(conn))
    for col in missing:
        ops.add_column(name, sa.Column(col.name, col.type), schema=schema)
    live = sa.Table(name, sa.MetaData(), autoload_with=conn, schema=schema)
    return live, tuple(c.name for c in missing)


def _native_insert(dialect: str) -> Any:
    """The dialect's INSERT that knows ON CONFLICT (PostgreSQL, SQLite)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _upsert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    names = [c for c in rows[0]] if rows else []
    for start in range(0, len(rows), CHUNK):  # chunks of rows, not a loop over accounts
        chunk = rows[start : start + CHUNK]
        if dialect in ("postgresql", "sqlite"):
            stmt = _native_insert(dialect)(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c[k] for k in KEY],
                set_={n: stmt.excluded[n] for n in names if n not in KEY},
            )
            conn.execute(stmt, chunk)
        else:
            for as_of in {r["as_of"] for r in chunk}:
                ids = [r["account_id"] for r in chunk if r["as_of"] == as_of]
                conn.execute(
                    table.delete().where(table.c.as_of == as_of, table.c.account_id.in_(ids))
                )
            conn.execute(table.insert(), chunk)


def _prune(conn: Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Delete rows of the written as-of dates whose account is not in the new scores."""
    dates = sorted(set(frame["as_of"]))
    existing = pd.DataFrame(
        conn.execute(
            sa.select(table.c.account_id, table.c.as_of).where(table.c.as_of.in_(dates))
        ).all(),
        columns=list(KEY),
    )
    if existing.empty:
        return 0
    existing["as_of"] = pd.to_datetime(existing["as_of"]).dt.date
    keys = pd.MultiIndex.from_frame(frame[list(KEY)].astype({"account_id": str}))
    stale = existing[~pd.MultiIndex.from_frame(existing.astype({"account_id": str})).isin(keys)]
    removed = 0
    for as_of, ids in stale.groupby("as_of")["account_id"]:  # a few dates
        for start in range(0, len(ids), CHUNK):
            res = conn.execute(
                table.delete().where(
                    table.c.as_of == as_of,
                    table.c.account_id.in_(ids.iloc[start : start + CHUNK].tolist()),
                )
            )
            removed += res.rowcount
    return removed


def _engine(parsed: URL, lock_timeout_s: float | None) -> sa.Engine:
    """An engine that never waits forever on PostgreSQL: the read side's connect timeout
    and ``lock_timeout`` (:func:`ka_ml.data.sql.pg_connect_args`)."""
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(parsed, connect_args=pg_connect_args(parsed, lock_timeout_s))
    return sa.create_engine(parsed)


def _lock_timeout_error(
    e: SQLAlchemyError, where: str, lock_timeout_s: float | None, done: str
) -> KaMlError:
    return KaMlError(
        f"The write-back to {where} waited longer than data.lock_timeout_seconds "
        f"({lock_timeout_s or 0:g} s) for a lock another session holds on that table; "
        f"{done}: {_first_line(e)}",
        "rerun when that session is done (a migration, a LOCK TABLE, a VACUUM FULL?): ask "
        "the DBA which session holds the lock (pg_locks); or raise data.lock_timeout_seconds.",
    )


def write_back(
    scores: pd.DataFrame,
    url: str,
    *,
    table: str = "ka_ml_scores",
    engine: sa.Engine | None = None,
    lock_timeout_s: float | None = None,
) -> WritebackResult:
    """Upsert ``scores`` into ``table`` at ``url`` in one transaction (see module docstring).
    On PostgreSQL the connection times out (:data:`ka_ml.data.sql.CONNECT_TIMEOUT_S`) and a
    lock held by another session fails the write after ``lock_timeout_s``."""
    parsed = parse_url(url)
    frame = sql_frame(scores)
    wanted = _table(table, scores, sa.MetaData())
    eng = engine or _engine(parsed, lock_timeout_s)
    try:
        with eng.begin() as conn:
            live, added = _ensure_table(conn, wanted)
            removed = _prune(conn, live, frame)
            _upsert(conn, live, _records(frame))
    except SQLAlchemyError as e:
        if is_lock_timeout(e):
            where = f"{safe_url(parsed)} (table '{table}')"
            raise _lock_timeout_error(e, where, lock_timeout_s, "nothing was changed there") from e
        raise KaMlError(
            f"Write-back to {safe_url(parsed)} (table '{table}') failed; nothing was "
            f"changed there: {_first_line(e)}",
            "check the database is reachable and the user may create/alter and write that "
            "table; rerunning the write-back is idempotent.",
        ) from e
    finally:
        if engine is None:
            eng.dispose()
    return WritebackResult(safe_url(parsed), table, len(frame), removed, added)


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"


def check_target(
    url: str,
    *,
    table: str = "ka_ml_scores",
    engine: sa.Engine | None = None,
    lock_timeout_s: float | None = None,
) -> str:
    """Fail fast, before a scoring run, when the write-back cannot work: connect, then in a
    transaction that is always rolled back either create a probe table beside ``table``
    (it does not exist yet: ka_ml will create it) or check the existing table's layout and
    run no-op INSERT / UPDATE / DELETE statements on it (the upsert's privileges). Returns
    the URL with the password hidden. Changes nothing in the database. Times out as
    :func:`write_back` does."""
    parsed = parse_url(url)
    where = f"{safe_url(parsed)} (table '{table}')"
    created = None  # a SQLite file the check itself creates: removed again, whatever comes
    made: list[Path] = []  # and the folders it creates for that file
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        file = Path(parsed.database)
        made = missing_dirs(file.parent)
        file.parent.mkdir(parents=True, exist_ok=True)  # as the run will
        created = None if file.exists() else file
    eng = engine or _engine(parsed, lock_timeout_s)
    try:
        with eng.connect() as conn, conn.begin() as tx:
            try:
                inspector = sa.inspect(conn)
                schema, name = split_table(table)
                if inspector.has_table(name, schema=schema):
                    _refuse_layout(table, _layout_problems(inspector, table, KNOWN_TYPES))
                    _probe_writes(conn, table)
                else:
                    _probe_create(conn, table)
            finally:
                tx.rollback()
    except SQLAlchemyError as e:
        if is_lock_timeout(e):
            done = "checked before scoring, nothing was scored or written"
            raise _lock_timeout_error(e, where, lock_timeout_s, done) from e
        if sqlstate(e) in ("28000", "28P01") or "authentication failed" in str(e).lower():
            raise KaMlError(  # read: an auth failure answered with "GRANT CREATE ON SCHEMA"
                f"The write-back target {where} refused the login; checked before scoring, "
                f"nothing was scored or written: {_first_line(e)}",
                "check the user name and the password in $KA_ML_WRITEBACK_URL (the password "
                "URL-encoded there); or run without --writeback.",
            ) from e
        raise KaMlError(
            f"The write-back target {where} is not usable; checked before scoring, nothing "
            f"was scored or written: {_first_line(e)}",
            "check the database is reachable and the user of $KA_ML_WRITEBACK_URL may "
            "create that table (PostgreSQL: GRANT CREATE ON SCHEMA ... TO the user, create "
            "the table for it, or set delivery.writeback_table to schema.table in a schema "
            "it may create in) or insert, update and delete in it; or run without "
            "--writeback.",
        ) from e
    finally:
        if engine is None:
            eng.dispose()
        if created is not None:  # the write-back creates it when it writes
            created.unlink(missing_ok=True)
        remove_made_dirs(made)  # those still empty: a run refused later leaves none
    return safe_url(parsed)


def _probe_create(conn: Connection, table: str) -> None:
    """CREATE and DROP a probe table of the key columns where ``table`` will be created."""
    probe = sa.Table(
        f"ka_ml_probe_{uuid.uuid4().hex[:12]}",
        sa.MetaData(),
        *(sa.Column(k, KNOWN_TYPES[k], primary_key=True) for k in KEY),
        schema=split_table(table)[0],
    )
    probe.create(conn)
    probe.drop(conn)


def _probe_writes(conn: Connection, table: str) -> None:
    """The upsert's statements on ``table``, each matching no row: privileges only."""
    schema, name = split_table(table)
    t = sa.Table(name, sa.MetaData(), sa.Column("account_id"), sa.Column("as_of"), schema=schema)
    never = sa.false()
    conn.execute(
        t.insert().from_select(list(KEY), sa.select(t.c.account_id, t.c.as_of).where(never))
    )
    conn.execute(t.update().where(never).values(account_id=t.c.account_id))
    conn.execute(t.delete().where(never))


def read_back(url: str, *, table: str = "ka_ml_scores") -> pd.DataFrame:
    """The whole write-back table (for checks and tests), sorted by key."""
    eng = sa.create_engine(parse_url(url))
    try:
        with eng.connect() as conn:
            schema, name = split_table(table)
            t = sa.Table(name, sa.MetaData(), autoload_with=conn, schema=schema)
            rows = conn.execute(sa.select(t).order_by(*[t.c[k] for k in KEY])).mappings().all()
            return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in t.columns])
    finally:
        eng.dispose()


__all__ = [
    "WritebackResult",
    "check_target",
    "fallback_note",
    "parse_url",
    "read_back",
    "resolve_url",
    "safe_url",
    "write_back",
]
