"""Database URLs as data sources, without a server: which text is a database URL, passwords
kept out of URLs, rows from a driver as typed columns, and the streaming reader against a
SQLite file through SQLAlchemy (the PostgreSQL side: tests/test_sql_postgres.py)."""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ka_ml.cli import app
from ka_ml.config import Config, DataConfig
from ka_ml.data import sql
from ka_ml.data.loader import arrow_to_frame, source_name
from ka_ml.errors import ConfigError, KaMlError

# -- which sources are database URLs ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "driver"),
    [
        ("postgresql+psycopg://reader@crm-db:5432/crm", "postgresql+psycopg"),
        ("postgresql://reader@crm-db/crm", "postgresql+psycopg"),  # the driver ka_ml ships
        ("postgres://reader@crm-db/crm", "postgresql+psycopg"),
        ("mysql+pymysql://reader@crm-db/crm", "mysql+pymysql"),  # driver not installed
        (" mssql+pyodbc://reader@dsn ", "mssql+pyodbc"),
    ],
)
def test_sqlalchemy_urls_are_database_sources(text: str, driver: str) -> None:
    url = sql.sql_url(text)
    assert url is not None and url.drivername == driver


@pytest.mark.parametrize(
    "text",
    [
        "data/crm",
        "sqlite:///crm.db",  # files: the loader's own readers
        "sqlite+pysqlite:///crm.db",
        "duckdb:///crm.duckdb",
        "s3a://bucket/crm",  # paths for Spark
        "hdfs://namenode/crm",
        "catalog:crm",
        "https://example.com/crm.csv",
    ],
)
def test_paths_file_uris_and_spark_paths_are_not_database_sources(text: str) -> None:
    assert sql.sql_url(text) is None


def test_an_unknown_scheme_names_the_forms_that_work(tmp_path: Path) -> None:
    from ka_ml.data.loader import load_history

    with pytest.raises(KaMlError) as err:
        load_history("ftp://files.example.com/crm", DataConfig())
    assert "unsupported URI scheme" in err.value.message
    assert "postgresql+psycopg://user@host:5432/db" in err.value.remedy


# -- passwords ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "postgresql+psycopg://reader:s3cret@crm-db/crm",
        "postgresql+psycopg://reader@crm-db/crm?password=s3cret",
        "mysql+pymysql://reader@crm-db/crm?PWD=s3cret",
    ],
)
def test_a_password_in_the_url_is_refused_and_never_echoed(text: str) -> None:
    url = sql.sql_url(text)
    assert url is not None and sql.has_password(url)
    with pytest.raises(KaMlError) as err:
        sql.SqlSource(url)
    assert "contains a password" in err.value.message
    assert sql.PASSWORD_ENV in err.value.remedy and "PGPASSWORD" in err.value.remedy
    assert "s3cret" not in err.value.render()
    assert "s3cret" not in sql.safe_url(url) and "s3cret" not in source_name(text)


def test_a_password_on_the_command_line_is_refused_before_connecting() -> None:
    res = CliRunner().invoke(
        app, ["validate", "--data", "postgresql://reader:s3cret@127.0.0.1:9/crm"]
    )
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "contains a password" in text and "KA_ML_DB_PASSWORD" in text
    assert "s3cret" not in text and "Traceback" not in text


@pytest.mark.parametrize(
    "source",
    [
        "postgresql://reader:s3cret@crm-db/crm",
        "postgresql://reader@crm-db/crm?password=s3cret",
    ],
)
def test_a_password_in_data_source_is_refused_by_the_config(source: str) -> None:
    with pytest.raises(ValueError, match="contains a password") as err:
        Config.model_validate({"data": {"source": source}})
    assert "s3cret" not in str(err.value).split("input_value")[0]


def test_the_password_comes_from_the_environment_at_connect_time() -> None:
    url = sql.sql_url("postgresql+psycopg://reader@crm-db:5432/crm")
    assert url is not None
    merged = sql.connect_url(url, {sql.PASSWORD_ENV: "from-env"})
    assert merged.password == "from-env" and url.password is None
    assert sql.connect_url(url, {}).password is None  # libpq: PGPASSWORD, ~/.pgpass
    assert "from-env" not in sql.safe_url(merged)


def test_data_schema_is_a_plain_identifier(tmp_path: Path) -> None:
    assert Config.model_validate({"data": {"schema": "crm_2024"}}).data.db_schema == "crm_2024"
    assert Config().model_dump()["data"]["schema"] is None  # the YAML key is `schema`
    path = tmp_path / "ka_ml.yaml"
    path.write_text('data:\n  schema: "crm; DROP SCHEMA crm"\n')
    from ka_ml.config import load_config

    with pytest.raises(ConfigError, match=r"data\.schema"):
        load_config(path)


# -- Spark does not read database URLs, and says so before a JVM starts -------------------


def test_the_spark_engine_refuses_a_database_url_early_with_the_alternatives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ka_ml.jobs.data

    def no_session(*a: object, **k: object) -> None:
        raise AssertionError("a Spark session was started for a database URL")

    monkeypatch.setattr(ka_ml.jobs.data, "spark_session", no_session)
    res = CliRunner().invoke(
        app,
        [
            "features",
            "--engine",
            "spark",
            "--data",
            "postgresql+psycopg://reader@127.0.0.1:9/crm",
            "--out",
            str(tmp_path / "f.parquet"),
        ],
    )
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "--engine spark does not read database URLs" in text
    assert "JDBC" in text and "--engine local" in text and "Parquet" in text
    assert not (tmp_path / "f.parquet").exists()


# -- rows from a driver as typed columns ----------------------------------------------------


def test_driver_values_become_the_arrow_types_the_validator_reads() -> None:
    utc = dt.UTC
    rows = [
        (
            "00017",
            dt.date(2024, 1, 5),
            dt.datetime(2024, 1, 5, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            decimal.Decimal("120.50"),
            True,
            uuid.UUID(int=7),
            17,
            2.5,
        ),
        (None, None, None, None, None, None, None, None),
    ]
    names = ["id", "day", "ts", "amount", "flag", "uuid", "n", "x"]
    table = sql.rows_to_arrow(rows, names)
    types = dict(zip(names, table.schema.types, strict=True))
    assert types["id"] == pa.string() and types["day"] == pa.date32()
    assert pa.types.is_timestamp(types["ts"]) and types["ts"].tz is not None
    assert types["amount"] == pa.float64() and types["flag"] == pa.bool_()
    assert types["uuid"] == pa.string() and types["n"] == pa.int64()
    frame = arrow_to_frame(table)
    assert frame.loc[0, "uuid"] == str(uuid.UUID(int=7))
    assert frame.loc[0, "amount"] == 120.5 and frame["amount"].isna().tolist() == [False, True]
    assert frame.loc[0, "ts"].tz_convert(utc) == pd.Timestamp("2024-01-05 21:30", tz="UTC")
    assert sql.rows_to_arrow([], names).num_rows == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False, places=4)),
        min_size=1,
        max_size=30,
    )
)
def test_decimals_become_the_nearest_float_like_python_float(values: list) -> None:
    table = sql.rows_to_arrow([(v,) for v in values], ["amount"])
    got = table.column("amount").to_pylist()
    assert got == [None if v is None else float(v) for v in values]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(max_size=5)), min_size=1, max_size=40),
    st.integers(1, 7),
)
def test_chunks_with_all_null_columns_join_under_the_other_chunks_type(
    values: list, size: int
) -> None:
    chunks = [
        sql.rows_to_arrow([(v,) for v in values[i : i + size]], ["t"])
        for i in range(0, len(values), size)
    ]
    joined = sql.concat(chunks)
    assert joined.column("t").to_pylist() == values
    assert joined.schema.types[0] in (pa.string(), pa.null())


def test_a_column_whose_chunks_do_not_unify_becomes_text_and_the_others_keep_their_type() -> None:
    chunks = [
        sql.rows_to_arrow([(1, dt.date(2024, 1, 1))], ["x", "day"]),
        sql.rows_to_arrow([("A-7", None)], ["x", "day"]),
    ]
    joined = sql.concat(chunks)
    assert joined.column("x").to_pylist() == ["1", "A-7"]
    assert joined.schema.field("day").type == pa.date32()


# -- the streaming reader, against SQLite through SQLAlchemy --------------------------------


@pytest.fixture
def crm_sqlite(tmp_path: Path) -> sa.URL:
    path = tmp_path / "crm.sqlite"
    con = sqlite3.connect(path)
    con.execute('CREATE TABLE "Orders" (account_id TEXT, order_date DATE, amount REAL, memo TEXT)')
    con.executemany(
        'INSERT INTO "Orders" VALUES (?, ?, ?, ?)',
        [(f"A{i % 3}", f"2024-01-{1 + i:02d}", float(i), "x" * 50) for i in range(20)]
        + [("A9", None, 1.0, "undated")],
    )
    con.commit()
    con.close()
    return sa.make_url(f"sqlite:///{path}")


def test_the_reader_streams_chunks_of_the_chosen_columns_only(
    crm_sqlite: sa.URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real = sql.rows_to_arrow

    def counting(rows, names):  # type: ignore[no-untyped-def]
        seen.append(len(rows))
        return real(rows, names)

    monkeypatch.setattr(sql, "rows_to_arrow", counting)
    with sql.SqlSource(crm_sqlite, chunk_rows=6) as db:
        assert db.tables() == ["Orders"]
        cols = {c.name: c for c in db.columns("Orders")}
        assert cols["order_date"].is_date and not cols["amount"].is_date
        picked = [cols["account_id"], cols["amount"]]
        table = db.read("Orders", picked)
    assert table.column_names == ["account_id", "amount"]  # no memo
    assert table.num_rows == 21 and seen == [6, 6, 6, 3]


def test_the_as_of_filter_keeps_earlier_and_undated_rows_and_counts_the_rest(
    crm_sqlite: sa.URL,
) -> None:
    with sql.SqlSource(crm_sqlite) as db:
        cols = {c.name: c for c in db.columns("Orders")}
        before = sql.Before(cols["order_date"], pd.Timestamp("2024-01-15 13:00"))
        table = db.read("Orders", list(cols.values()), before)
        late, examples = db.count_from("Orders", cols["account_id"], before, limit=2)
    days = table.column("order_date").to_pylist()
    assert sorted(d for d in days if d is not None)[-1] == dt.date(2024, 1, 14)
    assert None in days  # undated rows are read: the validator reports them
    assert table.num_rows == 14 + 1 and late == 6
    assert examples == [("A2", dt.date(2024, 1, 15)), ("A0", dt.date(2024, 1, 16))]


def test_a_missing_schema_is_named_with_the_schemas_there(crm_sqlite: sa.URL) -> None:
    with pytest.raises(KaMlError) as err, sql.SqlSource(crm_sqlite, "crm"):
        pass
    assert "has no schema 'crm'" in err.value.message and "'main'" in err.value.message
    assert "data.schema" in err.value.remedy


def test_a_missing_driver_names_the_package_to_install() -> None:
    url = sql.sql_url("mysql+pymysql://reader@127.0.0.1:9/crm")
    assert url is not None
    with pytest.raises(KaMlError) as err, sql.SqlSource(url):
        pass
    assert "driver for mysql+pymysql is not installed" in err.value.message
    assert "pip install" in err.value.remedy


def test_an_unreachable_server_fails_fast_naming_it_without_a_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(sql.PASSWORD_ENV, "s3cret")
    res = CliRunner().invoke(app, ["validate", "--data", "postgresql://reader@127.0.0.1:9/crm"])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "Cannot connect to postgresql+psycopg://reader@127.0.0.1:9/crm" in text
    assert "reachable" in text and "s3cret" not in text and "Traceback" not in text


def test_a_missing_password_is_reported_as_a_refused_login_naming_where_it_comes_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg
    from sqlalchemy.exc import OperationalError

    def no_password(self: object, *args: object, **kwargs: object) -> None:
        raise OperationalError(
            None,
            None,
            psycopg.OperationalError(
                'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
                "fe_sendauth: no password supplied"
            ),
        )

    monkeypatch.setattr(sa.engine.Engine, "connect", no_password)
    url = sa.engine.make_url("postgresql+psycopg://ka_ml_reader@127.0.0.1:5432/crm")
    with pytest.raises(KaMlError) as err, sql.SqlSource(url, env={}):
        pass
    text = str(err.value)
    assert "the database refused the login of ka_ml_reader" in text
    assert "KA_ML_DB_PASSWORD is not set" in text and "no password supplied" in text
    assert "set KA_ML_DB_PASSWORD to ka_ml_reader's password" in err.value.remedy
    assert "reachable" not in text
