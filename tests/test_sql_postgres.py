"""PostgreSQL as a data source (issue 16): the demo world loaded into a real server gives the
History, features and scores the CSV files give; the as-of pushed into the queries changes
nothing but what is read; and each fault - a connection dropped mid-read, a missing table,
a permission error, a wrong password - ends the command with one clear message, exit 2,
and the outputs, score history and registry as they were.

Needs ``KA_ML_TEST_PG_URL`` (``bash .ci/postgres.sh`` starts a local server; CI does); the
tests skip without it. Every module run works in its own fresh schemas, dropped after.
The reads use the URL without its password, which comes from KA_ML_DB_PASSWORD, as a user
would run it.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import isolated, registry_state, small_config, write_config
from typer.testing import CliRunner

from ka_ml.cli import app
from ka_ml.config import Config, DataConfig
from ka_ml.data import sql
from ka_ml.data.history import History
from ka_ml.data.loader import load_history, read_raw_tables
from ka_ml.data.schema import SCHEMA
from ka_ml.errors import DataValidationError, KaMlError
from ka_ml.features.build import build_features
from ka_ml.scoring import score_history
from ka_ml.scoring.score_history import history_path

PG_ENV = "KA_ML_TEST_PG_URL"
runner = CliRunner()


@dataclass(frozen=True)
class Pg:
    admin: sa.URL  # the test role with its password: setting up, never what ka_ml gets
    password: str

    def url(self) -> str:
        """What a user passes to --data: no password."""
        return self.admin._replace(password=None).render_as_string(hide_password=False)

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.admin)

    def run(self, *statements: str) -> None:
        eng = self.engine()
        try:
            with eng.begin() as conn:
                for s in statements:
                    conn.exec_driver_sql(s)
        finally:
            eng.dispose()


@pytest.fixture(scope="module")
def pg() -> Pg:
    text = os.environ.get(PG_ENV)
    if not text:
        pytest.skip(f"{PG_ENV} is not set (bash .ci/postgres.sh starts a local PostgreSQL)")
    url = sa.make_url(text)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return Pg(url, url.password or "")


def env_of(pg: Pg, password: str | None = None) -> dict[str, str | None]:
    """The environment of a ka_ml run: the password in KA_ML_DB_PASSWORD, no PGPASSWORD."""
    return {sql.PASSWORD_ENV: pg.password if password is None else password, "PGPASSWORD": None}


@pytest.fixture
def password(pg: Pg, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in env_of(pg).items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)


def db_frame(raw: pd.DataFrame, table: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A CSV table (text) as a CRM would hold it: DATE, DOUBLE PRECISION, BOOLEAN and
    TEXT columns, NULL for blanks; columns outside the contract stay text."""
    spec = SCHEMA[table]
    out: dict[str, Any] = {}
    types: dict[str, Any] = {}
    for col in raw.columns:
        values = raw[col].mask(raw[col].str.strip() == "")
        kind = spec.kind(col)
        if kind == "date":
            out[col] = pd.to_datetime(values, format="ISO8601").dt.date
            types[col] = sa.Date()
        elif kind == "float":
            out[col] = values.astype(float)
            types[col] = sa.Double()
        elif kind == "bool":
            out[col] = values.str.lower().map({"true": True, "false": False}).astype("boolean")
            types[col] = sa.Boolean()
        else:
            out[col] = values
            types[col] = sa.Text()
    return pd.DataFrame(out), types


@dataclass(frozen=True)
class Crm:
    pg: Pg
    schema: str  # the demo world, six tables
    empty: str  # a schema with only an accounts table

    def cfg(self, schema: str | None = None, **over: Any) -> DataConfig:
        return DataConfig(db_schema=schema or self.schema, **over)


@pytest.fixture(scope="module")
def crm(pg: Pg, demo_dir: Path) -> Iterator[Crm]:
    tag = uuid.uuid4().hex[:8]
    schema, empty = f"ka_ml_crm_{tag}", f"ka_ml_empty_{tag}"
    pg.run(f"CREATE SCHEMA {schema}", f"CREATE SCHEMA {empty}")
    eng = pg.engine()
    try:
        for table, raw in read_raw_tables(demo_dir, DataConfig()).items():
            frame, types = db_frame(raw, table)
            frame.to_sql(table, eng, schema=schema, index=False, dtype=types, chunksize=5000)
        with eng.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {empty}.accounts AS TABLE {schema}.accounts")
        yield Crm(pg, schema, empty)
    finally:
        with eng.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {empty} CASCADE")
        eng.dispose()


def contract_equal(a: History, b: History) -> None:
    assert sorted(a.tables()) == sorted(b.tables())
    for name, frame in a.tables().items():
        cols = [c.name for c in SCHEMA[name].columns]
        pd.testing.assert_frame_equal(frame[cols], b.tables()[name][cols], obj=name)


def without_rows(text: str) -> str:
    """A message without its example row numbers (file lines vs. rows as read)."""
    return re.sub(r"row \d+: ", "", text)


def rows_of(warnings: tuple[str, ...]) -> dict[str, int]:
    """table -> rows dropped for lying on/after the as-of, from the warnings."""
    out = {}
    for w in warnings:
        m = re.match(r"table '(\w+)'.*on or after the as-of date .*? \((\d+) rows\)", w)
        if m:
            out[m[1]] = int(m[2])
    return out


# -- parity with the CSV files ------------------------------------------------------------


def test_the_demo_world_read_from_postgresql_is_the_csv_history(
    crm: Crm, demo_history: History, password: None
) -> None:
    history = load_history(crm.pg.url(), crm.cfg())
    contract_equal(demo_history, history)
    # only the contract's columns are selected: the demo's extra 'segment' stays there
    assert "segment" in demo_history.accounts and "segment" not in history.accounts
    assert [without_rows(w) for w in history.warnings] == [
        without_rows(w) for w in demo_history.warnings
    ]
    assert history.source == crm.pg.url() and sa.make_url(history.source).password is None


def test_the_as_of_is_pushed_into_the_queries_and_changes_nothing_else(
    crm: Crm, demo_dir: Path, password: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: dict[tuple[str, ...], int] = {}
    real = sql.rows_to_arrow

    def counting(rows, names):  # type: ignore[no-untyped-def]
        read[tuple(names)] = read.get(tuple(names), 0) + len(rows)
        return real(rows, names)

    monkeypatch.setattr(sql, "rows_to_arrow", counting)
    csv = load_history(demo_dir, DataConfig())
    as_of = csv.default_as_of - pd.Timedelta(days=200)
    from_csv = load_history(demo_dir, DataConfig(), as_of=as_of)
    from_pg = load_history(crm.pg.url(), crm.cfg(), as_of=as_of)
    contract_equal(from_csv, from_pg)
    dropped = rows_of(from_csv.warnings)
    assert set(dropped) == {"orders", "usage", "tickets", "surveys", "contracts"}
    assert rows_of(from_pg.warnings) == dropped  # counted in the database, same warning
    orders_read = next(n for cols, n in read.items() if "order_date" in cols)
    assert orders_read == len(from_pg.orders) < len(csv.orders)  # the rest stayed there


def test_with_future_rows_error_every_row_is_read_and_refused_as_from_files(
    crm: Crm, demo_dir: Path, password: None
) -> None:
    as_of = pd.Timestamp("2026-01-01")
    errors = []
    for source, cfg in ((demo_dir, DataConfig(future_rows="error")), (crm.pg.url(), None)):
        with pytest.raises(DataValidationError) as err:
            load_history(source, cfg or crm.cfg(future_rows="error"), as_of=as_of)
        errors.append(sorted((i.table, i.column, i.n_rows) for i in err.value.issues))
    assert errors[0] == errors[1] and len(errors[0]) == 5


def test_a_mapped_table_the_user_may_not_read_is_one_error_not_also_a_missing_table(
    crm: Crm, pg: Pg, password: None
) -> None:
    """Seen: data.tables {orders: v_secret_orders} without a GRANT gave 'may not read
    crm.v_secret_orders' and then 'the required table is missing ... found v_secret_orders'."""
    user = pg.admin.username
    view = f"{crm.schema}.v_secret_orders"
    pg.run(
        f"CREATE VIEW {view} AS SELECT * FROM {crm.schema}.orders",
        f"REVOKE SELECT ON {view} FROM {user}",
    )
    try:
        with pytest.raises(DataValidationError) as err:
            load_history(crm.pg.url(), crm.cfg(tables={"orders": "v_secret_orders"}))
    finally:
        pg.run(f"DROP VIEW {view}")
    (issue,) = err.value.issues
    assert issue.table == "orders" and f"may not read '{view}'" in issue.problem
    assert "required table is missing" not in str(err.value)


def test_a_table_locked_by_another_session_fails_the_read_after_the_lock_timeout(
    crm: Crm, pg: Pg, password: None
) -> None:
    """Seen: a LOCK TABLE in the CRM held the weekly read forever (the timer never ended)."""
    eng = pg.engine()
    try:
        with eng.connect() as other:
            other.exec_driver_sql(f"LOCK TABLE {crm.schema}.tickets IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(DataValidationError) as err:
                load_history(crm.pg.url(), crm.cfg(lock_timeout_seconds=0.5))
            other.rollback()
    finally:
        eng.dispose()
    (issue,) = err.value.issues
    assert issue.table == "tickets"
    assert "waited longer than data.lock_timeout_seconds (0.5 s) for a lock" in issue.problem
    assert "pg_locks" in issue.remedy


def test_features_from_postgresql_equal_those_from_the_csv_files(
    crm: Crm, trained: Any, password: None
) -> None:
    history = load_history(crm.pg.url(), crm.cfg())
    cfg = trained.cfg
    for as_of in (history.default_as_of, history.default_as_of - pd.Timedelta(days=91)):
        pd.testing.assert_frame_equal(
            build_features(trained.history, as_of, cfg), build_features(history, as_of, cfg)
        )


def test_every_table_is_read_in_one_read_only_repeatable_read_snapshot(
    crm: Crm, password: None
) -> None:
    url = sql.sql_url(crm.pg.url())
    assert url is not None
    with sql.SqlSource(url, crm.schema) as db:
        assert db.conn is not None
        db.tables()
        show = db.conn.exec_driver_sql
        assert show("SHOW transaction_isolation").scalar() == "repeatable read"
        assert show("SHOW transaction_read_only").scalar() == "on"
        assert show("SELECT current_setting('application_name')").scalar() == "ka_ml"


# -- the commands ---------------------------------------------------------------------------


def files(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@dataclass(frozen=True)
class Scored:
    cfg: Config
    config: Path
    out: Path
    scores: pd.DataFrame  # from PostgreSQL
    csv_scores: pd.DataFrame  # the same week from the CSV files
    validate_output: str
    before: dict[str, bytes]
    history: pd.DataFrame
    registry: dict[str, Any]

    def unchanged(self) -> None:
        """Outputs, score history and registry exactly as after the good run."""
        assert files(self.out) == self.before
        pd.testing.assert_frame_equal(score_history.read(history_path(self.cfg)), self.history)
        assert registry_state(self.cfg) == self.registry


@pytest.fixture(scope="module")
def scored(
    crm: Crm, pg: Pg, trained: Any, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Scored:
    """`ka-ml validate` and `ka-ml score` with --data <PostgreSQL URL>, and the same score
    from the CSV files (another output root)."""
    root = tmp_path_factory.mktemp("pg_score")
    base = isolated(trained.cfg, root, owner_reports=False)
    cfg = base.model_copy(update={"data": crm.cfg()})
    config = write_config(cfg, root / "ka_ml.yaml")
    env = env_of(pg)
    checked = runner.invoke(app, ["validate", "--config", str(config), "--data", pg.url()], env=env)
    assert checked.exit_code == 0, checked.output
    out = root / "runs" / "week"
    res = runner.invoke(
        app, ["score", "--config", str(config), "--data", pg.url(), "--out", str(out)], env=env
    )
    assert res.exit_code == 0, res.output
    csv_root = root / "csv"
    csv_cfg = isolated(trained.cfg, csv_root, owner_reports=False)
    csv_out = csv_root / "runs" / "week"
    res = runner.invoke(
        app,
        [
            "score",
            "--config",
            str(write_config(csv_cfg, root / "csv.yaml")),
            "--data",
            str(demo_dir),
            "--out",
            str(csv_out),
        ],
    )
    assert res.exit_code == 0, res.output
    return Scored(
        cfg,
        config,
        out,
        pd.read_parquet(out / "scores.parquet"),
        pd.read_parquet(csv_out / "scores.parquet"),
        checked.output,
        files(out),
        score_history.read(history_path(cfg)),
        registry_state(cfg),
    )


@pytest.mark.slow  # the `scored` fixture: two score runs (~50 s)
def test_validate_reads_postgresql_with_the_row_counts_of_the_csv_files(
    scored: Scored, demo_history: History, crm: Crm
) -> None:
    text = " ".join(scored.validate_output.split())
    assert f"valid: {crm.pg.url()}" in text
    for table, n in demo_history.row_counts().items():
        assert f"{table} {n:,} rows" in text


@pytest.mark.slow  # the `scored` fixture: two score runs (~50 s)
def test_score_from_postgresql_equals_the_score_from_the_csv_files(scored: Scored) -> None:
    assert len(scored.scores) > 100
    pd.testing.assert_frame_equal(scored.scores, scored.csv_scores)


# -- faults: one message, exit 2, nothing written -----------------------------------------


def score_again(scored: Scored, pg: Pg, *, password: str | None = None, config: Path | None = None):  # type: ignore[no-untyped-def]
    args = ["score", "--config", str(config or scored.config), "--data", pg.url()]
    res = runner.invoke(app, [*args, "--out", str(scored.out)], env=env_of(pg, password))
    return res, " ".join(res.output.split())


@pytest.mark.slow  # the `scored` fixture: two score runs (~50 s)
def test_a_connection_dropped_mid_read_fails_clearly_and_writes_nothing(
    scored: Scored, pg: Pg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends the session (pg_terminate_backend, as a DBA or a failover would)
    after the first 1,000 orders; the next fetch from the server-side cursor fails."""
    real = sql.rows_to_arrow
    calls = []

    def drop_after_first_chunk(rows, names):  # type: ignore[no-untyped-def]
        calls.append(len(rows))
        if len(calls) == 1:
            pg.run(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                f"application_name = '{sql.APPLICATION_NAME}' AND pid <> pg_backend_pid()"
            )
        return real(rows, names)

    monkeypatch.setattr(sql, "CHUNK_ROWS", 1000)
    monkeypatch.setattr(sql, "rows_to_arrow", drop_after_first_chunk)
    res, text = score_again(scored, pg)
    assert res.exit_code == 2, res.output
    assert f"The connection to {pg.url()} failed while reading table" in text
    assert "'orders' (after 1,000 rows)" in text.replace(f"{scored.cfg.data.db_schema}.", "")
    assert "Nothing was written" in text and "rerun when the database is reachable" in text
    assert "Traceback" not in text and f":{pg.password}@" not in res.output
    scored.unchanged()


@pytest.mark.slow  # the `scored` fixture: two score runs (~50 s)
def test_a_missing_table_fails_naming_it_and_what_the_schema_holds(
    scored: Scored, pg: Pg, crm: Crm, tmp_path: Path
) -> None:
    cfg = scored.cfg.model_copy(update={"data": crm.cfg(crm.empty)})
    res, text = score_again(scored, pg, config=write_config(cfg, tmp_path / "empty.yaml"))
    assert res.exit_code == 2, res.output
    assert "The input data has 1 error: table 'orders': the required table is missing" in text
    assert f"found '{crm.empty}.accounts'" in text and "data.tables" in text
    scored.unchanged()


@pytest.mark.slow  # the `scored` fixture: two score runs (~50 s)
def test_a_table_the_user_may_not_read_fails_naming_it_and_the_grant(
    scored: Scored, pg: Pg, crm: Crm
) -> None:
    user = pg.admin.username
    table = f"{crm.schema}.tickets"
    pg.run(f"REVOKE SELECT ON {table} FROM {user}")  # the owner can revoke its own right
    try:
        res, text = score_again(scored, pg)
    finally:
        pg.run(f"GRANT SELECT ON {table} TO {user}")
    assert res.exit_code == 2, res.output
    assert f"table 'tickets': the database user {user} may not read '{table}'" in text
    assert "permission denied" in text and f"GRANT SELECT ON {table} TO {user}" in text
    scored.unchanged()


@pytest.mark.slow  # the `scored` fixture: two score runs (~50 s)
def test_a_wrong_password_fails_naming_the_user_and_where_the_password_comes_from(
    scored: Scored, pg: Pg
) -> None:
    res, text = score_again(scored, pg, password="not-the-password")
    assert res.exit_code == 2, res.output
    assert f"Cannot connect to {pg.url()}: the database refused the login of" in text
    assert "password authentication failed" in text and "KA_ML_DB_PASSWORD" in text
    assert "not-the-password" not in text and "Traceback" not in text
    scored.unchanged()


@pytest.mark.slow  # the `scored` fixture: two score runs (~50 s)
def test_a_missing_schema_fails_before_any_table_is_read(
    scored: Scored, pg: Pg, crm: Crm, tmp_path: Path
) -> None:
    cfg = scored.cfg.model_copy(update={"data": crm.cfg("no_such_schema")})
    res, text = score_again(scored, pg, config=write_config(cfg, tmp_path / "nope.yaml"))
    assert res.exit_code == 2, res.output
    assert "has no schema 'no_such_schema'" in text and crm.schema in text
    scored.unchanged()


# -- names from the config, quoting, views, time zones -------------------------------------


def test_a_mixed_case_view_with_renamed_columns_is_read_through_the_remaps(
    crm: Crm, demo_history: History, password: None
) -> None:
    s = crm.schema
    crm.pg.run(
        f'CREATE VIEW {s}."SalesView" AS SELECT account_id AS "Kunde", order_date AS datum, '
        f"amount AS betrag, order_id, product, quantity, 'x' AS note FROM {s}.orders"
    )
    try:
        cfg = crm.cfg(
            tables={"orders": "SalesView"},
            columns={"orders": {"account_id": "kunde", "order_date": "datum", "amount": "betrag"}},
        )
        history = load_history(crm.pg.url(), cfg)
    finally:
        crm.pg.run(f'DROP VIEW {s}."SalesView"')
    pd.testing.assert_frame_equal(history.orders, demo_history.orders)


@pytest.mark.parametrize(
    "name", ['orders"; DROP TABLE accounts; --', "orders; DROP TABLE accounts", "1orders"]
)
def test_hostile_table_names_from_the_config_never_reach_the_database(
    crm: Crm, name: str, password: None
) -> None:
    with pytest.raises(DataValidationError, match="not a plain table name"):
        load_history(crm.pg.url(), crm.cfg(tables={"orders": name}))
    tables = set(sa.inspect(crm.pg.engine()).get_table_names(crm.schema))
    assert {"orders", "accounts"} <= tables


def test_mixed_currencies_and_a_stray_remap_are_said_as_from_files(
    crm: Crm, password: None
) -> None:
    """A user's orders table held 806 CHF lines among EUR ones: the CSV export warned that
    they are added up as they are, the database said nothing (only the contract's columns
    were selected). And a remap to a column the table lacks names the database's columns."""
    s = crm.schema
    crm.pg.run(
        f"CREATE VIEW {s}.orders_fx AS SELECT account_id, order_date, amount, "
        f"CASE WHEN amount > 1000 THEN 'CHF' ELSE 'EUR' END AS currency FROM {s}.orders"
    )
    try:
        cfg = crm.cfg(tables={"orders": "orders_fx"})
        warned = [w for w in load_history(crm.pg.url(), cfg).warnings if "currencies" in w]
        stray = crm.cfg(tables={"orders": "orders_fx"}, columns={"orders": {"amount": "net"}})
        with pytest.raises(DataValidationError) as err:
            load_history(crm.pg.url(), stray)
    finally:
        crm.pg.run(f"DROP VIEW {s}.orders_fx")
    (said,) = warned
    assert said.startswith("table 'orders'") and "column 'currency'" in said
    assert "'EUR' (" in said and "'CHF' (" in said
    (issue,) = err.value.issues
    assert issue.problem == (
        "data.columns.orders.amount points to 'net', which is not among the columns found: "
        "'account_id', 'order_date', 'amount', 'currency'; the source's own 'amount' column "
        "would be read instead"
    )


def test_a_schema_without_tables_names_the_schema_holding_the_orders(
    crm: Crm, password: None
) -> None:
    """A user's CRM tables sat in schema 'crm'; read without data.schema (the default
    'public' holds none) the error said a file orders.csv was expected and found nothing."""
    bare = f"{crm.empty}_bare"
    crm.pg.run(f"CREATE SCHEMA {bare}")
    try:
        with pytest.raises(KaMlError) as err:
            load_history(crm.pg.url(), crm.cfg(schema=bare))
    finally:
        crm.pg.run(f"DROP SCHEMA {bare}")
    assert f"schema '{bare}' holds no table; a table 'orders' is in schema " in err.value.message
    assert f"'{crm.schema}'" in err.value.message
    assert err.value.remedy.startswith("set data.schema: ")


def test_a_hostile_column_remap_is_only_a_missing_column(crm: Crm, password: None) -> None:
    """Column names from the config are only compared with the names the database
    reports: a hostile one is a column not found, named in the message, and never run."""
    s = crm.schema
    crm.pg.run(
        f"CREATE VIEW {s}.orders_de AS SELECT account_id, order_date, amount AS betrag "
        f"FROM {s}.orders"
    )
    hostile = "betrag FROM orders; DROP TABLE orders; --"
    try:
        with pytest.raises(DataValidationError) as err:
            load_history(
                crm.pg.url(),
                crm.cfg(tables={"orders": "orders_de"}, columns={"orders": {"amount": hostile}}),
            )
    finally:
        crm.pg.run(f"DROP VIEW {s}.orders_de")
    text = err.value.render()
    assert (
        "table 'orders' ('orders_de' in your data), column 'amount': the required column is missing"
    ) in text  # the hostile name is quoted once, in the problem
    assert f"points to '{hostile}'" in text and "'betrag'" in text  # what the view has
    assert "orders" in sa.inspect(crm.pg.engine()).get_table_names(crm.schema)


def test_timestamps_with_time_zones_are_cut_at_the_as_of_in_utc_like_files(
    crm: Crm, password: None
) -> None:
    s = f"{crm.schema}_tz"
    stamps = [
        "2024-03-09 23:30+00",
        "2024-03-10 00:30+02",  # 22:30 UTC the day before: kept
        "2024-03-10 00:00+00",  # the as-of itself: dropped
        "2024-03-09 20:00-05",  # 01:00 UTC on the as-of: dropped
        None,  # undated: read, and refused as a blank required date
    ]
    values = ", ".join(
        f"('A{i}', {'NULL' if t is None else repr(t) + '::timestamptz'}, 1.0)"
        for i, t in enumerate(stamps)
    )
    crm.pg.run(
        f"CREATE SCHEMA {s}",
        f"CREATE TABLE {s}.orders (account_id text, order_date timestamptz, amount float8)",
        f"INSERT INTO {s}.orders VALUES {values}",
    )
    try:
        with pytest.raises(DataValidationError) as err:
            load_history(crm.pg.url(), crm.cfg(s), as_of=pd.Timestamp("2024-03-10"))
        assert [(i.column, i.n_rows) for i in err.value.issues] == [("order_date", 1)]
        crm.pg.run(f"DELETE FROM {s}.orders WHERE order_date IS NULL")
        history = load_history(crm.pg.url(), crm.cfg(s), as_of=pd.Timestamp("2024-03-10"))
    finally:
        crm.pg.run(f"DROP SCHEMA {s} CASCADE")
    assert history.orders["account_id"].tolist() == ["A0", "A1"]
    assert history.orders["order_date"].tolist() == [pd.Timestamp("2024-03-09")] * 2
    assert rows_of(history.warnings) == {"orders": 2}


def test_the_pushed_down_rows_are_exactly_the_ones_the_loader_keeps(
    crm: Crm, password: None
) -> None:
    """Any as-of: the rows read (pushed down) = all rows then cut in memory."""
    everything = load_history(crm.pg.url(), crm.cfg())
    for days in (1, 35, 400):
        as_of = everything.default_as_of - pd.Timedelta(days=days)
        pushed = load_history(crm.pg.url(), crm.cfg(), as_of=as_of)
        cut = everything.before(as_of)
        for name in ("orders", "usage", "tickets", "surveys", "contracts"):
            a = getattr(cut, name).reset_index(drop=True)
            b = getattr(pushed, name).reset_index(drop=True)
            cols = [c.name for c in SCHEMA[name].columns]
            pd.testing.assert_frame_equal(a[cols], b[cols], obj=f"{name} @ {days}")


def test_an_as_of_before_all_data_fails_as_it_does_from_files(
    crm: Crm, demo_dir: Path, password: None
) -> None:
    """Tables whose every row lies after the as-of are emptied by it, not "empty"."""
    as_of = pd.Timestamp("2020-01-01")
    messages = []
    for source, cfg in ((demo_dir, DataConfig()), (crm.pg.url(), crm.cfg())):
        with pytest.raises(DataValidationError) as err:
            load_history(source, cfg, as_of=as_of)
        messages.append([(i.table, i.problem) for i in err.value.issues])
    assert messages[0] == messages[1]
    assert [p for _, p in messages[1]] == [
        "no orders remain after dropping the rows reported in the warnings"
    ]


@pytest.mark.slow
def test_train_from_postgresql_logs_the_metrics_of_a_train_from_the_csv_files(
    crm: Crm, pg: Pg, demo_dir: Path, tmp_path: Path, mlflow_state: None
) -> None:
    """`ka-ml train --data <URL>` end to end (a small budget), against the same command on
    the CSV files in a store of its own: the same data, so the same models and metrics."""
    from ka_ml.modeling import registry

    metrics = []
    for name, data, schema in (("pg", pg.url(), crm.schema), ("csv", str(demo_dir), None)):
        root = tmp_path / name
        root.mkdir()
        cfg = small_config(
            root,
            tuning={"n_trials": 1, "timeout_seconds": 120, "backtest_origins": 1},
            features={"max_snapshots": 12},
        )
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"db_schema": schema})})
        config = write_config(cfg, root / "ka_ml.yaml")
        res = runner.invoke(app, ["train", "--config", str(config), "--data", data], env=env_of(pg))
        assert res.exit_code == 0, res.output
        client = registry.connect(cfg)
        exp = client.get_experiment_by_name(cfg.mlflow.experiment)
        runs = client.search_runs([exp.experiment_id])  # the train run and its trials
        metrics.append(
            sorted(
                (
                    r.info.run_name,
                    sorted((k, v) for k, v in r.data.metrics.items() if "second" not in k),
                )
                for r in runs
            )
        )
    assert len(metrics[0]) > 1 and any(m for _, m in metrics[0])
    assert metrics[0] == metrics[1]
