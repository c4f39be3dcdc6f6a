"""A SQL database as a data source (PostgreSQL, or any database SQLAlchemy has a dialect for).

Owned by :mod:`ka_ml.data.loader`, which decides which tables and columns to read and
checks what comes back; this module connects, lists tables and their columns, streams
the chosen columns in chunks, and turns driver errors into messages with the remedy.

Why it is built this way:

- No password in the URL: ``--data`` and ``data.source`` name the driver, user, host and
  database (``postgresql+psycopg://ka_ml_reader@crm-db:5432/crm``); a URL holding a
  password is refused (it would end up in the shell history, the process list, a
  committed config or the run record). At connect time :data:`PASSWORD_ENV`, when set,
  is merged into the URL; otherwise the driver's own mechanism applies (libpq:
  ``PGPASSWORD``, ``~/.pgpass``, a service file, Kerberos). Logged URLs never show one.
- One read-only transaction for every table, ``REPEATABLE READ`` on PostgreSQL: orders,
  accounts and the rest come from the same snapshot while the CRM keeps writing.
- Server-side cursors (``stream_results``) read :data:`CHUNK_ROWS` rows at a time, so
  the driver never buffers a whole table; only the columns asked for are selected.
- Identifiers: table names come from the config (checked by the loader) and are used
  only once found in the database's own list; column names are the ones the database
  reports. Statements are SQLAlchemy Core, which quotes every identifier; the as-of
  date is a bound parameter. No SQL is built from text.
- Errors: a refused login, an unknown host or database, a missing driver, and a
  connection lost mid-read stop the read with one :class:`~ka_ml.errors.KaMlError`;
  a table the user may not read is a :class:`~ka_ml.errors.DataIssue` of that table
  (collected with the others, the loader raises them together).
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from ka_ml.errors import DataIssue, KaMlError

PASSWORD_ENV = "KA_ML_DB_PASSWORD"
CHUNK_ROWS = 50_000  # rows per fetch from the server-side cursor
CONNECT_TIMEOUT_S = 10  # PostgreSQL: fail fast on an unreachable host
APPLICATION_NAME = "ka_ml"  # PostgreSQL: how the reads show in pg_stat_activity
FILE_SCHEMES = ("duckdb", "sqlite")  # read by the loader as files
_PASSWORD_KEYS = ("password", "passwd", "pwd")
_PASSWORD_REMEDY = (
    f"remove it from the URL and export {PASSWORD_ENV}=<password> (for PostgreSQL, "
    "PGPASSWORD or ~/.pgpass work too): a password in --data or the config ends up in the "
    "shell history, the process list and committed files."
)
# SQLSTATE codes (PostgreSQL, and the standard classes other databases share)
_AUTH_FAILED = ("28000", "28P01")
_NO_DATABASE = ("3D000",)
_NO_PERMISSION = "42501"
_NO_TABLE = "42P01"
_LOCK_TIMEOUT = "55P03"  # lock_not_available: lock_timeout passed
_CONNECTION_CLASSES = ("08", "57")  # connection exception; operator intervention


# -- the URL ------------------------------------------------------------------------------
def sql_url(source: str | Path) -> URL | None:
    """The SQLAlchemy URL ``source`` names, or None for a path, a DuckDB/SQLite file URI,
    or a URI no SQLAlchemy dialect knows (``s3a://``, ``hdfs://``: paths for Spark).

    Plain ``postgresql://`` (and ``postgres://``) use psycopg 3, the driver ka_ml ships.
    """
    text = str(source).strip()
    if "://" not in text:
        return None
    scheme = text.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme in FILE_SCHEMES:
        return None
    try:
        url = make_url(text)
    except ArgumentError:
        return None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    try:
        url.get_dialect()  # the dialect module only; its DBAPI driver loads on connect
    except NoSuchModuleError:
        return None
    except ImportError:
        pass  # a known dialect whose module needs a missing package: said on connect
    return url


def has_password(url: URL) -> bool:
    return bool(url.password) or any(k.lower() in _PASSWORD_KEYS for k in url.query)


def safe_url(url: URL) -> str:
    """The URL as text without any password (for messages, logs and the run record)."""
    if url.query:
        url = url.difference_update_query([k for k in url.query if k.lower() in _PASSWORD_KEYS])
    return url.render_as_string(hide_password=True)


def check_no_password(url: URL) -> None:
    """Refuse a URL carrying a password (never echoed)."""
    if has_password(url):
        raise KaMlError(f"The database URL {safe_url(url)} contains a password.", _PASSWORD_REMEDY)


def connect_url(url: URL, env: Mapping[str, str]) -> URL:
    """The URL to connect with: :data:`PASSWORD_ENV` merged in when set."""
    password = env.get(PASSWORD_ENV)
    return url.set(password=password) if password else url


def pg_connect_args(url: URL, lock_timeout_s: float | None) -> dict[str, Any]:
    """libpq settings that keep a PostgreSQL session from waiting forever: a connect
    timeout (:data:`CONNECT_TIMEOUT_S`: a host or listener that never answers fails the
    connection) and ``lock_timeout`` (a table another session has locked, a migration or a
    LOCK TABLE, fails the statement after ``lock_timeout_s``; None: no limit); each only
    where the URL does not set it itself. Also names the session ``ka_ml``."""
    args: dict[str, Any] = {
        k: v
        for k, v in (
            ("connect_timeout", CONNECT_TIMEOUT_S),
            ("application_name", APPLICATION_NAME),
        )
        if k not in url.query
    }
    if lock_timeout_s is not None and "options" not in url.query:
        args["options"] = f"-c lock_timeout={max(1, round(lock_timeout_s * 1000))}"
    return args


def is_lock_timeout(e: BaseException) -> bool:
    """``e`` is PostgreSQL's lock_timeout passing (SQLSTATE 55P03)."""
    return sqlstate(e) == _LOCK_TIMEOUT


# -- reading --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SqlColumn:
    name: str
    type: sa.types.TypeEngine[Any]

    @property
    def is_date(self) -> bool:
        """A DATE or TIMESTAMP column: one the database compares as a point in time."""
        return isinstance(self.type, sa.Date | sa.DateTime)


@dataclass(frozen=True)
class Before:
    """Rows dated strictly before ``as_of`` (midnight, UTC) in ``column``, or undated."""

    column: SqlColumn
    as_of: pd.Timestamp

    def bound(self) -> sa.BindParameter[Any]:
        """The as-of as a bound parameter of the column's own kind: a date for DATE, a
        naive midnight for TIMESTAMP, midnight UTC for TIMESTAMP WITH TIME ZONE."""
        day = pd.Timestamp(self.as_of).normalize()
        value: dt.date | dt.datetime
        if isinstance(self.column.type, sa.DateTime):
            value = day.to_pydatetime()
            if self.column.type.timezone:
                value = value.replace(tzinfo=dt.UTC)
        else:
            value = day.date()
        return sa.bindparam("ka_ml_as_of", value, type_=self.column.type)


class SqlSource:
    """One read-only connection to a database for the loader (a context manager)."""

    def __init__(
        self,
        url: URL,
        schema: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        chunk_rows: int | None = None,
        lock_timeout_s: float | None = None,
    ) -> None:
        check_no_password(url)
        self.url = url
        self.schema = schema
        self.lock_timeout_s = lock_timeout_s
        self.env = os.environ if env is None else env
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self.engine: sa.Engine | None = None
        self.conn: Connection | None = None

    # -- connection -------------------------------------------------------------------
    def __enter__(self) -> SqlSource:
        kwargs: dict[str, Any] = {"poolclass": NullPool}
        options: dict[str, Any] = {}
        if self.url.get_backend_name() == "postgresql":
            kwargs["connect_args"] = pg_connect_args(self.url, self.lock_timeout_s)
            options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        try:
            self.engine = sa.create_engine(connect_url(self.url, self.env), **kwargs)
            self.conn = self.engine.connect().execution_options(**options)
        except (ImportError, NoSuchModuleError) as e:
            self._dispose()
            raise KaMlError(
                f"The database driver for {self.url.drivername} is not installed "
                f"({type(e).__name__}: {first_line(e)}).",
                "install it into ka_ml's environment (pip install <driver>), or use "
                "postgresql+psycopg:// for PostgreSQL (shipped with ka_ml).",
            ) from e
        except SQLAlchemyError as e:
            self._dispose()
            raise self.connect_error(e) from e
        if self.schema is not None:
            try:
                self._check_schema()
            except KaMlError:
                self.__exit__()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            try:
                self.conn.rollback()  # read-only: nothing to keep
                self.conn.close()
            except SQLAlchemyError:
                pass  # a connection already lost has nothing left to close
        self._dispose()

    def _dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
        self.engine, self.conn = None, None

    def _connection(self) -> Connection:
        assert self.conn is not None, "use SqlSource as a context manager"
        return self.conn

    def _check_schema(self) -> None:
        """The configured schema, spelled as the database spells it, or the error."""
        schemas = [str(s) for s in self._inspect(lambda i: i.get_schema_names())]
        wanted = str(self.schema)
        exact = [s for s in schemas if s == wanted]
        found = exact or [s for s in schemas if s.casefold() == wanted.casefold()]
        if len(found) == 1:
            self.schema = found[0]
        else:
            shown = ", ".join(f"'{s}'" for s in sorted(schemas)[:20]) or "none visible"
            raise KaMlError(
                f"{safe_url(self.url)} has no schema '{self.schema}' (schemas: {shown}).",
                "set data.schema to the schema holding the tables (or remove it for the "
                "connection's default), and check the user may USAGE that schema.",
            )

    def _inspect(self, fn: Any) -> Any:
        try:
            return fn(sa.inspect(self._connection()))
        except SQLAlchemyError as e:
            raise self.lost_error(e, "listing the tables") from e

    # -- what is there ----------------------------------------------------------------
    def tables(self) -> list[str]:
        """Tables and views (materialized too, on PostgreSQL) in the schema."""

        def names(insp: sa.Inspector) -> list[str]:
            found = [*insp.get_table_names(self.schema), *insp.get_view_names(self.schema)]
            if insp.dialect.name == "postgresql":
                found += insp.get_materialized_view_names(self.schema)  # type: ignore[attr-defined]
            return sorted(set(found))

        return list(self._inspect(names))

    def schemas_holding(self, table: str) -> list[str]:
        """The other schemas with a table or view named ``table`` (any case), for the hint
        when the schema read lacks it (on PostgreSQL a CRM's tables often sit in their own
        schema, not in the connection's default 'public')."""

        def holding(insp: sa.Inspector) -> list[str]:
            out = []
            for schema in insp.get_schema_names():
                if schema == self.schema or schema in ("information_schema", "pg_catalog"):
                    continue
                names = [*insp.get_table_names(schema), *insp.get_view_names(schema)]
                if any(n.casefold() == table.casefold() for n in names):
                    out.append(str(schema))
            return sorted(out)

        return list(self._inspect(holding))

    def columns(self, table: str) -> list[SqlColumn]:
        cols = self._inspect(lambda i: i.get_columns(table, self.schema))
        return [SqlColumn(str(c["name"]), c["type"]) for c in cols]

    def qualified(self, table: str) -> str:
        return f"{self.schema}.{table}" if self.schema else table

    def _table(self, table: str, columns: Sequence[SqlColumn]) -> sa.TableClause:
        """The table as a SQLAlchemy construct: names quoted by the dialect, each column
        with its reflected type (so the dialect converts its values)."""
        unique = {c.name: c for c in columns}.values()
        cols = (sa.column(c.name, c.type) for c in unique)
        return sa.table(table, *cols, schema=self.schema)

    # -- reading ----------------------------------------------------------------------
    def read(
        self, table: str, columns: Sequence[SqlColumn], before: Before | None = None
    ) -> pa.Table:
        """``columns`` of ``table`` (only rows before the as-of, or undated, with
        ``before``), streamed in chunks into one Arrow table.

        Raises :class:`TableError` for a problem of this table (no permission, gone) and
        :class:`KaMlError` when the connection fails.
        """
        names = [c.name for c in columns]
        t = self._table(table, columns)
        q = sa.select(*(t.c[n] for n in names))
        if before is not None:
            col = t.c[before.column.name]
            q = q.where(sa.or_(col < before.bound(), col.is_(None)))
        conn = self._connection().execution_options(stream_results=True, yield_per=self.chunk_rows)
        chunks: list[pa.Table] = []
        try:
            with conn.execute(q) as result:
                for part in result.partitions():
                    chunks.append(rows_to_arrow(part, names))
        except SQLAlchemyError as e:
            raise self.table_error(e, table, sum(len(c) for c in chunks)) from e
        if not chunks:
            return rows_to_arrow([], names)
        return concat(chunks)

    def count_from(
        self, table: str, account: SqlColumn, before: Before, limit: int = 5
    ) -> tuple[int, list[tuple[Any, Any]]]:
        """(rows dated on/after the as-of, up to ``limit`` of them as (id, date)): what
        :meth:`read` leaves in the database, for the loader's warning."""
        id_column, date = account.name, before.column.name
        t = self._table(table, [account, before.column])
        late = t.c[date] >= before.bound()
        try:
            conn = self._connection()
            n = conn.execute(sa.select(sa.func.count()).select_from(t).where(late)).scalar()
            examples = conn.execute(
                sa.select(t.c[id_column], t.c[date])
                .where(late)
                .order_by(t.c[date], t.c[id_column])
                .limit(limit)
            ).all()
        except SQLAlchemyError as e:
            raise self.table_error(e, table, 0) from e
        return int(n or 0), [(r[0], r[1]) for r in examples]

    # -- errors -----------------------------------------------------------------------
    def connect_error(self, e: SQLAlchemyError) -> KaMlError:
        code = sqlstate(e)
        where = safe_url(self.url)
        user = self.url.username or "the current user"
        if "no password supplied" in str(e).lower():  # libpq, before the server is asked
            return KaMlError(
                f"Cannot connect to {where}: the database refused the login of {user}: it "
                f"asks for a password and none was supplied ({PASSWORD_ENV} is not set or "
                f"empty, and no PGPASSWORD or ~/.pgpass entry applies) ({first_line(e)}).",
                f"set {PASSWORD_ENV} to {user}'s password in the environment of the run (for "
                "a timer or cron job: in its environment file), or use PGPASSWORD / "
                "~/.pgpass; passwords never go in the URL.",
            )
        if code in _AUTH_FAILED or "authentication failed" in str(e).lower():
            return KaMlError(
                f"Cannot connect to {where}: the database refused the login of {user} "
                f"({first_line(e)}).",
                f"check the user name in the URL and the password in {PASSWORD_ENV} "
                "(PostgreSQL: or PGPASSWORD / ~/.pgpass); passwords never go in the URL.",
            )
        if code in _NO_DATABASE:
            return KaMlError(
                f"Cannot connect to {where}: the database does not exist ({first_line(e)}).",
                "check the database name at the end of the URL.",
            )
        return KaMlError(
            f"Cannot connect to {where}: {first_line(e)}.",
            "check that the database server is running and reachable from this machine "
            "(host, port, firewall), and the URL's driver, host, port and database.",
        )

    def lost_error(self, e: SQLAlchemyError, doing: str) -> KaMlError:
        return KaMlError(
            f"The connection to {safe_url(self.url)} failed while {doing}: {first_line(e)}. "
            "Nothing was written.",
            "rerun when the database is reachable (the read is all or nothing); if it "
            "keeps failing, ask the DBA whether a statement timeout or a connection limit "
            "ends ka_ml's session.",
        )

    def table_error(self, e: SQLAlchemyError, table: str, rows_read: int) -> Exception:
        """A :class:`TableError` for this table's own problem; a KaMlError when the
        connection itself failed (after a problem of one table the transaction is rolled
        back, and the next table starts a new one)."""
        code = sqlstate(e)
        lost = (
            (isinstance(e, DBAPIError) and e.connection_invalidated)
            or (code is not None and code[:2] in _CONNECTION_CLASSES)
            or (isinstance(e, sa.exc.OperationalError) and code is None)
        )
        if lost:
            return self.lost_error(
                e, f"reading table '{self.qualified(table)}' (after {rows_read:,} rows)"
            )
        try:
            self._connection().rollback()
        except SQLAlchemyError as again:
            return self.lost_error(again, f"reading table '{self.qualified(table)}'")
        user = self.url.username or "the current user"
        if code == _NO_PERMISSION:
            issue = DataIssue(
                table,
                None,
                f"the database user {user} may not read '{self.qualified(table)}' "
                f"({first_line(e)})",
                f"ask the DBA for read access: GRANT SELECT ON {self.qualified(table)} TO "
                f"{user} (and USAGE on its schema); README 'Your database' has a read-only "
                "role to copy.",
            )
        elif code == _LOCK_TIMEOUT:
            issue = DataIssue(
                table,
                None,
                f"reading '{self.qualified(table)}' waited longer than "
                f"data.lock_timeout_seconds ({self.lock_timeout_s:g} s) for a lock another "
                f"session holds on it ({first_line(e)})",
                "rerun when that session is done (a migration, a LOCK TABLE, a VACUUM FULL?): "
                "ask the DBA which session holds the lock (pg_locks); or raise "
                "data.lock_timeout_seconds.",
            )
        elif code == _NO_TABLE:
            issue = DataIssue(
                table,
                None,
                f"'{self.qualified(table)}' disappeared while it was being read ({first_line(e)})",
                "rerun once the table is back (was it being rebuilt?).",
            )
        else:
            issue = DataIssue(
                table,
                None,
                f"'{self.qualified(table)}' cannot be read: {type(e).__name__}: {first_line(e)}",
                "check the table in the database (a view that fails, a column type the "
                "driver cannot read); or export the table to a file and read that.",
            )
        return TableError(issue)


class TableError(Exception):
    """One table could not be read; the issue says why (the loader collects it)."""

    def __init__(self, issue: DataIssue) -> None:
        self.issue = issue
        super().__init__(issue.render())


# -- rows -> Arrow ------------------------------------------------------------------------
def rows_to_arrow(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> pa.Table:
    """A chunk of rows as an Arrow table, column by column: typed values keep their type
    (dates, timestamps with their zone, integers, booleans, floats, text); decimals become
    floats (Python's exact rounding); anything else (UUIDs, intervals, JSON) becomes text."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pa.Table.from_arrays([_column(list(v)) for v in columns], names=list(names))


_KEEP = (
    pa.types.is_null,
    pa.types.is_boolean,
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_date,
    pa.types.is_timestamp,
)


def _column(values: list[Any]) -> pa.Array:
    first = next((v for v in values if v is not None), None)  # a column holds one type
    if isinstance(first, decimal.Decimal):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    try:
        arr = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        arr = None
    if arr is not None and any(check(arr.type) for check in _KEEP):
        return arr
    if arr is not None and pa.types.is_binary(arr.type):
        return pa.array(
            [None if v is None else bytes(v).decode("utf-8", "replace") for v in values]
        )
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def concat(chunks: Sequence[pa.Table]) -> pa.Table:
    """Chunks as one table: a column all-NULL in one chunk takes the others' type; a
    column whose chunks hold types that do not unify (integers, then text) becomes text."""
    try:
        return pa.concat_tables(chunks, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        names = chunks[0].column_names
        seen = {n: {c.schema.field(n).type for c in chunks} - {pa.null()} for n in names}
        as_text = {n for n, types in seen.items() if len(types) > 1}
        fixed = [
            c.cast(
                pa.schema(
                    [(n, pa.string() if n in as_text else c.schema.field(n).type) for n in names]
                )
            )
            for c in chunks
        ]
        return pa.concat_tables(fixed, promote_options="permissive")


# -- helpers ------------------------------------------------------------------------------
def sqlstate(e: BaseException) -> str | None:
    """The SQLSTATE of a driver error (psycopg 3, psycopg2), None when there is none."""
    orig = getattr(e, "orig", e)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(code) if code else None


def first_line(e: BaseException) -> str:
    """The driver's message without SQLAlchemy's statement and background lines."""
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip()
    return text.splitlines()[0].strip() if text else type(orig).__name__


__all__ = [
    "CHUNK_ROWS",
    "PASSWORD_ENV",
    "Before",
    "SqlColumn",
    "SqlSource",
    "TableError",
    "check_no_password",
    "connect_url",
    "has_password",
    "rows_to_arrow",
    "safe_url",
    "sql_url",
]
