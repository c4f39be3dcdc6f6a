"""Database write-back: idempotent upserts per (account_id, as_of), one transaction.

Every test runs against SQLite and against a real PostgreSQL server when
``KA_ML_TEST_PG_URL`` names one (``.ci/postgres.sh`` starts it in CI).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import write_config
from delivery_data import AS_OF, scores_frame
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from ka_ml.cli import app
from ka_ml.config import Config, PathsConfig
from ka_ml.delivery import writeback
from ka_ml.delivery.writeback import parse_url, read_back, resolve_url, write_back
from ka_ml.errors import KaMlError

PG_ENV = "KA_ML_TEST_PG_URL"


@dataclass(frozen=True)
class Target:
    url: str
    table: str


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    table = f"scores_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        yield Target(f"sqlite:///{tmp_path / 'crm.db'}", table)
        return
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (bash .ci/postgres.sh starts a local PostgreSQL)")
    yield Target(url, table)
    engine = sa.create_engine(parse_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
    engine.dispose()


def canon(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["as_of", "account_id"]).reset_index(drop=True)


def test_the_table_is_created_and_values_round_trip(target: Target) -> None:
    scores = scores_frame()
    res = write_back(scores, target.url, table=target.table)
    assert (res.rows, res.removed, res.table) == (len(scores), 0, target.table)
    got = read_back(target.url, table=target.table).set_index("account_id")
    assert list(got.columns) == [c for c in scores.columns if c != "account_id"]
    a1 = got.loc["A1"]
    assert a1["as_of"] == dt.date(2026, 6, 1)
    assert a1["next_purchase_p90_date"] == dt.date(2026, 7, 31)
    assert a1["churn_probability"] == pytest.approx(0.62)
    assert a1["abc_tier"] == "A" and a1["owner"] == "alice.meyer"
    assert a1["name"] == "A1 Holdings <b>&</b>"
    assert a1["churn_model_version"] == "3"
    assert got.loc["U2", "next_purchase_p90_date"] is None  # NaT -> NULL
    missing = got[["owner", "health_prev", "churn_probability_prev"]].isna()
    assert missing.loc["U1", "owner"] and missing.loc["B2", "health_prev"]
    assert missing.loc["B2", "churn_probability_prev"]


def test_writing_the_same_date_twice_leaves_the_same_rows(target: Target) -> None:
    write_back(scores_frame(AS_OF - pd.Timedelta(days=7)), target.url, table=target.table)
    write_back(scores_frame(), target.url, table=target.table)
    once = read_back(target.url, table=target.table)
    again = write_back(scores_frame(), target.url, table=target.table)
    assert again.removed == 0
    pd.testing.assert_frame_equal(canon(read_back(target.url, table=target.table)), canon(once))
    assert len(once) == 18 and not once.duplicated(["account_id", "as_of"]).any()


def test_a_rerun_replaces_that_dates_rows_and_leaves_other_dates_alone(target: Target) -> None:
    last_week = AS_OF - pd.Timedelta(days=7)
    write_back(scores_frame(last_week), target.url, table=target.table)
    write_back(scores_frame(), target.url, table=target.table)
    changed = scores_frame(ids=["A1", "B1"])
    changed["churn_probability"] = [0.99, 0.01]
    res = write_back(changed, target.url, table=target.table)
    assert (res.rows, res.removed) == (2, 7)
    got = read_back(target.url, table=target.table)
    now = got[got["as_of"] == AS_OF.date()].set_index("account_id")
    assert sorted(now.index) == ["A1", "B1"]
    assert list(now.loc[["A1", "B1"], "churn_probability"]) == [0.99, 0.01]
    assert (got["as_of"] == last_week.date()).sum() == 9


def test_a_column_new_in_the_scores_is_added_to_the_table(target: Target) -> None:
    old = scores_frame().drop(columns=["p_purchase_90d"])
    write_back(old, target.url, table=target.table)
    res = write_back(scores_frame(), target.url, table=target.table)
    assert res.added_columns == ("p_purchase_90d",)
    got = read_back(target.url, table=target.table).set_index("account_id")
    assert got.loc["A1", "p_purchase_90d"] == pytest.approx(0.28)


def test_a_failure_mid_write_changes_nothing(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_back(scores_frame(), target.url, table=target.table)
    before = read_back(target.url, table=target.table)

    def broken(*args: object) -> None:
        raise OperationalError("INSERT", {}, Exception("connection lost"))

    monkeypatch.setattr(writeback, "_upsert", broken)
    fewer = scores_frame(ids=["A1"])  # the prune step deletes 8 rows before the failure
    with pytest.raises(KaMlError, match="nothing was changed there") as err:
        write_back(fewer, target.url, table=target.table)
    assert "idempotent" in err.value.remedy
    pd.testing.assert_frame_equal(canon(read_back(target.url, table=target.table)), canon(before))


def test_the_password_never_appears_in_messages(target: Target) -> None:
    res = write_back(scores_frame(ids=["A1"]), target.url, table=target.table)
    password = sa.engine.make_url(target.url).password
    assert not password or (f":{password}@" not in res.url and ":***@" in res.url)


def test_duplicate_keys_are_refused_before_touching_the_database(tmp_path: Path) -> None:
    scores = pd.concat([scores_frame(ids=["A1"]), scores_frame(ids=["A1"])])
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    with pytest.raises(KaMlError, match="1 duplicate"):
        write_back(scores, url)
    assert not (tmp_path / "crm.db").exists()


def test_the_url_comes_from_the_environment_then_the_config_then_a_sqlite_default(
    tmp_path: Path,
) -> None:
    cfg = Config().model_copy(update={"paths": PathsConfig(outputs=tmp_path / "out")})
    assert resolve_url(cfg, {}) == f"sqlite:///{(tmp_path / 'out' / 'scores.db').resolve()}"
    with_url = Config.model_validate(
        {"paths": {"outputs": str(tmp_path)}, "delivery": {"writeback_url": "sqlite:///x.db"}}
    )
    assert resolve_url(with_url, {}) == "sqlite:///x.db"
    env = {"KA_ML_WRITEBACK_URL": "postgresql://u:p@db/crm"}
    assert resolve_url(with_url, env) == "postgresql://u:p@db/crm"
    assert parse_url("postgresql://u:p@db/crm").drivername == "postgresql+psycopg"
    with pytest.raises(KaMlError, match="not a SQLAlchemy URL"):
        parse_url("not a url")


def test_rerunning_score_with_writeback_for_a_date_leaves_the_same_rows(
    target: Target, trained, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    cfg = trained.cfg.model_copy(
        update={
            "paths": PathsConfig(outputs=tmp_path / "outputs", models=trained.cfg.paths.models),
            "delivery": trained.cfg.delivery.model_copy(update={"writeback_table": target.table}),
        }
    )
    config = write_config(cfg, tmp_path / "ka_ml.yaml")
    monkeypatch.setenv("KA_ML_WRITEBACK_URL", target.url)
    args = ["score", "--config", str(config), "--data", str(demo_dir), "--writeback"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    (folder,) = (tmp_path / "outputs").glob("20*")
    record = json.loads((folder / "run_record.json").read_text())["delivery"]["writeback"]
    assert (record["table"], record["removed"]) == (target.table, 0)
    rows = read_back(target.url, table=target.table)
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    again = read_back(target.url, table=target.table)
    pd.testing.assert_frame_equal(canon(again), canon(rows))
    scores = pd.read_parquet(folder / "scores.parquet")
    assert len(again) == len(scores) and set(again["account_id"]) == set(scores["account_id"])


# -- a target that cannot take the scores: found before scoring, never costs the week ------


def _make_table(target: Target, ddl: str) -> None:
    engine = sa.create_engine(parse_url(target.url))
    with engine.begin() as conn:
        conn.execute(sa.text(ddl.format(t=f'"{target.table}"')))
    engine.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(parse_url(url))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_checking_a_new_target_proves_it_can_be_created_and_leaves_nothing(
    target: Target,
) -> None:
    before = _tables(target.url)
    assert writeback.check_target(target.url, table=target.table)
    assert _tables(target.url) == before  # no probe table, no scores table yet


def test_a_target_the_user_may_not_create_in_is_refused_before_scoring(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    sqlite3_connect_and_close(db)
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"
    with pytest.raises(KaMlError, match="not usable; checked before scoring") as err:
        writeback.check_target(read_only, table="ka_ml_scores")
    assert "readonly" in err.value.message and "GRANT CREATE ON SCHEMA" in err.value.remedy
    assert "delivery.writeback_table to schema.table" in err.value.remedy


def sqlite3_connect_and_close(db: Path) -> None:
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("CREATE TABLE other (x INTEGER)")
    con.commit()
    con.close()


@pytest.mark.parametrize(
    ("ddl", "named"),
    [
        (  # no key the upsert can conflict on
            "CREATE TABLE {t} (account_id VARCHAR(255), as_of DATE, churn_probability FLOAT)",
            ["no primary key or unique constraint on exactly (account_id, as_of)"],
        ),
        (  # a column of another type
            "CREATE TABLE {t} (account_id VARCHAR(255), as_of DATE, churn_probability TEXT, "
            "PRIMARY KEY (account_id, as_of))",
            ["column churn_probability is TEXT, ka_ml writes number there"],
        ),
        (  # a NOT NULL column ka_ml does not fill
            "CREATE TABLE {t} (account_id VARCHAR(255), as_of DATE, crm_team TEXT NOT NULL, "
            "PRIMARY KEY (account_id, as_of))",
            ["column crm_team is NOT NULL without a default"],
        ),
    ],
    ids=["no-key", "text-probability", "extra-not-null"],
)
def test_an_existing_table_of_another_layout_is_refused_naming_table_and_columns(
    target: Target, ddl: str, named: list[str]
) -> None:
    _make_table(target, ddl)
    for check in (  # before scoring, and at write time
        lambda: writeback.check_target(target.url, table=target.table),
        lambda: write_back(scores_frame(), target.url, table=target.table),
    ):
        with pytest.raises(KaMlError) as err:
            check()
        text = str(err.value)
        assert f"table '{target.table}' exists with another layout" in text
        for part in named:
            assert part in text
        assert "Fix: point delivery.writeback_table at a new table name" in text
    assert read_back(target.url, table=target.table).empty  # nothing written


def _score_args(trained, demo_dir: Path, tmp_path: Path, table: str) -> tuple[Config, list[str]]:  # type: ignore[no-untyped-def]
    cfg = trained.cfg.model_copy(
        update={
            "paths": PathsConfig(outputs=tmp_path / "outputs", models=trained.cfg.paths.models),
            "delivery": trained.cfg.delivery.model_copy(
                update={"writeback_table": table, "owner_reports": False}
            ),
        }
    )
    config = write_config(cfg, tmp_path / "ka_ml.yaml")
    return cfg, ["score", "--config", str(config), "--data", str(demo_dir), "--writeback"]


def test_an_unusable_target_fails_the_run_before_the_data_is_read(
    trained, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import ka_ml.jobs.data

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data was read for an unusable write-back target")

    monkeypatch.setattr(ka_ml.jobs.data, "load_history", no_work)
    db = tmp_path / "crm.db"
    sqlite3_connect_and_close(db)
    monkeypatch.setenv("KA_ML_WRITEBACK_URL", f"sqlite:///file:{db}?mode=ro&uri=true")
    _, args = _score_args(trained, demo_dir, tmp_path, "ka_ml_scores")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "nothing was scored or written" in " ".join(res.output.split())
    assert not list((tmp_path / "outputs").glob("20*"))


def test_a_write_back_failing_after_scoring_publishes_files_and_history_and_says_so(
    trained, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from ka_ml.scoring import score_history

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    monkeypatch.setenv("KA_ML_WRITEBACK_URL", url)
    cfg, args = _score_args(trained, demo_dir, tmp_path, "ka_ml_scores")

    def broken(*args: object) -> None:
        raise OperationalError("INSERT", {}, Exception("connection lost"))

    monkeypatch.setattr(writeback, "_upsert", broken)  # the check before scoring passes
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    (folder,) = (tmp_path / "outputs").glob("20*")
    for name in ("scores.parquet", "scores.csv", "report.html", "run_record.json"):
        assert (folder / name).is_file(), name
    scores = pd.read_parquet(folder / "scores.parquet")
    history = score_history.read(score_history.history_path(cfg))
    assert len(history) == len(scores) > 0
    assert "writeback" not in json.loads((folder / "run_record.json").read_text()).get(
        "delivery", {}
    )
    text = " ".join(res.output.split())
    assert "the database write-back failed" in text and "connection lost" in text
    # the run's own config and data repeated: run without them, the printed command had
    # scored the demo data and written it over a user's production table
    again_cmd = f"ka-ml score --config {tmp_path / 'ka_ml.yaml'} --data {demo_dir.resolve()}"
    assert (
        f"The scores are in {folder}/; rerun `{again_cmd} --as-of {folder.name} --writeback`"
        in text
    )
    assert "reruns are idempotent" in text
    # with --notify the digests were not sent either, and the message says so
    notified = " ".join(CliRunner().invoke(app, [*args, "--notify"]).output.split())
    assert (
        f"The digests were not sent either: `ka-ml notify --config {tmp_path / 'ka_ml.yaml'}"
        in (notified)
    )
    monkeypatch.undo()
    monkeypatch.setenv("KA_ML_WRITEBACK_URL", url)
    again = CliRunner().invoke(app, args)  # the retry the message promises
    assert again.exit_code == 0, again.output
    assert len(read_back(url)) == len(scores)


@pytest.mark.parametrize("password", ["S3cr@tPw/x7Q", "Ab9/cd@Efgh", "Qz7k@Wm2p"])
def test_a_password_with_unencoded_at_or_slash_is_refused_and_never_shown(password: str) -> None:
    url = f"postgresql+psycopg://crm_writer:{password}@127.0.0.1:55431/crm"
    for attempt in (
        lambda: writeback.check_target(url),
        lambda: write_back(scores_frame(), url),
    ):
        with pytest.raises(KaMlError) as err:
            attempt()
        text = str(err.value)
        assert "crm_writer:***@127.0.0.1:55431/crm" in text and "URL-encoded" in text
        for part in {password, *password.replace("/", "@").split("@")}:
            assert part not in text  # no piece of it, as 'tPw/x%40127...' was
    assert writeback.safe_url(url) == "postgresql+psycopg://crm_writer:***@127.0.0.1:55431/crm"
    encoded = url.replace(password, urllib.parse.quote(password, safe=""))
    parsed = parse_url(encoded)
    assert (parsed.password, parsed.host, parsed.port) == (password, "127.0.0.1", 55431)


def test_a_schema_qualified_table_is_written_in_that_schema(target: Target) -> None:
    schema = "main" if target.url.startswith("sqlite") else f"ka_{uuid.uuid4().hex[:8]}"
    if schema != "main":
        engine = sa.create_engine(parse_url(target.url))
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
    table = f"{schema}.{target.table}"
    try:
        assert writeback.check_target(target.url, table=table)
        write_back(scores_frame(ids=["A1", "B1"]), target.url, table=table)
        res = write_back(scores_frame(), target.url, table=table)  # upsert into the same table
        assert (res.table, res.rows) == (table, 9)
        assert len(read_back(target.url, table=table)) == 9
        engine = sa.create_engine(parse_url(target.url))
        assert target.table in sa.inspect(engine).get_table_names(schema=schema)
        engine.dispose()
    finally:
        if schema != "main":
            engine = sa.create_engine(parse_url(target.url))
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            engine.dispose()


@pytest.mark.parametrize("name", ["ka.ka_ml_scores", "ka_ml_scores", "Crm_1.Scores_2"])
def test_the_config_takes_a_table_or_schema_dot_table(name: str) -> None:
    cfg = Config.model_validate({"delivery": {"writeback_table": name}})
    assert cfg.delivery.writeback_table == name


@pytest.mark.parametrize("name", ["a.b.c", "ka.", ".t", 'ka."t"', "ka;drop", "ka. t"])
def test_the_config_refuses_other_table_names(name: str) -> None:
    with pytest.raises(ValueError, match="writeback_table"):
        Config.model_validate({"delivery": {"writeback_table": name}})


def _within(seconds: float, fn: Callable[[], object]) -> BaseException | None:
    """What ``fn`` raised, run in a thread that must finish within ``seconds`` (a write-back
    without timeouts hung a weekly run until it was killed, the log empty)."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
            raised.append(None)
        except BaseException as e:
            raised.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still waiting after {seconds} s"
    return raised[0]


def test_a_write_back_target_that_never_answers_fails_within_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ka_ml.data.sql

    monkeypatch.setattr(ka_ml.data.sql, "CONNECT_TIMEOUT_S", 2)  # libpq's minimum
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql+psycopg://crm_writer:pw@127.0.0.1:{port}/crm"
        for attempt in (
            lambda: writeback.check_target(url),
            lambda: write_back(scores_frame(), url),
        ):
            err = _within(15, attempt)
            assert isinstance(err, KaMlError), err
            assert "127.0.0.1" in str(err) and "table 'ka_ml_scores'" in str(err)


def test_a_table_another_session_locks_fails_the_write_back_naming_it(tmp_path: Path) -> None:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (bash .ci/postgres.sh starts a local PostgreSQL)")
    from ka_ml.delivery.run_delivery import write_back_scores
    from ka_ml.jobs.score import check_writeback

    table = f"scores_{uuid.uuid4().hex[:10]}"
    write_back(scores_frame(), url, table=table)
    cfg = Config.model_validate(  # the run's own calls take the read side's setting
        {"data": {"lock_timeout_seconds": 1}, "delivery": {"writeback_table": table}}
    )
    engine = sa.create_engine(parse_url(url))
    try:
        with engine.connect() as other, other.begin():  # a migration holding the table
            other.execute(sa.text(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE'))
            for attempt, done in (
                (lambda: check_writeback(cfg, url), "nothing was scored or written"),
                (lambda: write_back_scores(scores_frame(), url, cfg), "nothing was changed"),
                (
                    lambda: writeback.check_target(url, table=table, lock_timeout_s=1),
                    "nothing was scored or written",
                ),
                (
                    lambda: write_back(scores_frame(), url, table=table, lock_timeout_s=1),
                    "nothing was changed there",
                ),
            ):
                err = _within(20, attempt)
                assert isinstance(err, KaMlError), err
                text = str(err)
                assert f"table '{table}'" in text and done in text
                assert "waited longer than data.lock_timeout_seconds (1 s)" in text
                assert "pg_locks" in err.remedy
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()


# -- the SQLite default when the URL variable is missing: said, never silent --------------
def test_the_sqlite_default_is_noted_only_when_the_variable_is_missing(tmp_path: Path) -> None:
    cfg = Config().model_copy(update={"paths": PathsConfig(outputs=tmp_path / "out")})
    note = writeback.fallback_note(cfg, {})
    assert "KA_ML_WRITEBACK_URL is not set" in note
    assert str((tmp_path / "out" / "scores.db").resolve()) in note
    assert writeback.fallback_note(cfg, {"KA_ML_WRITEBACK_URL": "postgresql://u@db/crm"}) == ""
    with_url = Config.model_validate({"delivery": {"writeback_url": "sqlite:///x.db"}})
    assert writeback.fallback_note(with_url, {}) == ""  # a configured URL is no fallback


def test_a_sqlite_default_that_cannot_hold_the_table_says_why_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    from ka_ml.jobs.score import check_writeback, writeback_fallback, writeback_url

    cfg = Config.model_validate(
        {
            "paths": {"outputs": str(tmp_path / "out")},
            "delivery": {"writeback_table": "ops_out.ka_ml_scores"},  # no such SQLite schema
        }
    )
    url, fallback = writeback_url(cfg, {}), writeback_fallback(cfg, {})
    with pytest.raises(KaMlError) as err:
        check_writeback(cfg, url, fallback)
    text = str(err.value)
    assert text.startswith("The write-back goes to the local SQLite file")
    assert "KA_ML_WRITEBACK_URL is not set" in text and "nothing was scored" in text
    assert not (tmp_path / "out" / "scores.db").exists()  # an empty one was left behind
    check_writeback(cfg.model_copy(update={"delivery": Config().delivery}), url, fallback)
    assert not (tmp_path / "out" / "scores.db").exists()  # the check writes no file either


def test_the_sqlite_default_can_be_refused_for_production(tmp_path: Path) -> None:
    """An operator's job whose environment file went missing wrote back to the local SQLite
    file with exit 0 every week, the CRM table no longer updated."""
    from ka_ml.jobs.score import check_writeback, writeback_fallback, writeback_url

    cfg = Config.model_validate(
        {"paths": {"outputs": str(tmp_path / "out")}, "delivery": {"writeback_fallback": False}}
    )
    url, fallback = writeback_url(cfg, {}), writeback_fallback(cfg, {})
    with pytest.raises(KaMlError) as err:
        check_writeback(cfg, url, fallback)
    assert "KA_ML_WRITEBACK_URL is not set" in err.value.message
    assert "nothing was scored or written" in err.value.message
    assert "writeback_fallback: true" in err.value.remedy
    assert not (tmp_path / "out" / "scores.db").exists()
    env = {"KA_ML_WRITEBACK_URL": f"sqlite:///{tmp_path / 'crm.db'}"}
    check_writeback(cfg, writeback_url(cfg, env), writeback_fallback(cfg, env))  # set: fine


def test_a_write_back_to_the_sqlite_default_warns_on_the_console_and_in_the_record(
    trained, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("KA_ML_WRITEBACK_URL", raising=False)  # the env file not sourced
    _, args = _score_args(trained, demo_dir, tmp_path, "ka_ml_scores")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    db = (tmp_path / "outputs" / "scores.db").resolve()
    text = " ".join(res.output.split())
    assert f"warning: the write-back goes to the local SQLite file {db} because " in text
    assert "KA_ML_WRITEBACK_URL is not set" in text
    (folder,) = (tmp_path / "outputs").glob("20*")
    record = json.loads((folder / "run_record.json").read_text())["delivery"]["writeback"]
    assert "KA_ML_WRITEBACK_URL is not set" in record["warning"] and str(db) in record["warning"]
    assert len(read_back(f"sqlite:///{db}")) == record["rows"] > 0


# -- an interruption once the files are published says so, and what is left to do --------
@pytest.mark.parametrize("stage", ["write-back", "notify"])
def test_an_interruption_after_publishing_says_what_was_published_and_what_was_not(
    stage: str, trained, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A SIGTERM during the write-back said "nothing of it was published" while the files
    and the score history of that date were."""
    import ka_ml.jobs.notify
    import ka_ml.jobs.score

    def terminated(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("terminated by signal 15")

    target = ka_ml.jobs.score if stage == "write-back" else ka_ml.jobs.notify
    name = "write_back_scores" if stage == "write-back" else "notify"
    monkeypatch.setattr(target, name, terminated)
    monkeypatch.setenv("KA_ML_WRITEBACK_URL", f"sqlite:///{tmp_path / 'crm.db'}")
    _, args = _score_args(trained, demo_dir, tmp_path, "ka_ml_scores")
    res = CliRunner().invoke(app, [*args, "--notify"])
    assert res.exit_code == 130, res.output
    (folder,) = (tmp_path / "outputs").glob("20*")
    day = folder.name
    text = " ".join(res.output.split())
    assert "nothing of it was published" not in text
    assert f"the outputs and score history of {day} are published ({folder}/)" in text
    config = tmp_path / "ka_ml.yaml"
    sends = f"`ka-ml notify --config {config} --as-of {day}` sends them"
    if stage == "write-back":
        rerun = f"ka-ml score --config {config} --data {demo_dir.resolve()} --as-of {day}"
        assert f"the write-back was not done: rerun `{rerun} --writeback`" in text
        assert "the digests were not sent" in text and sends in text
    else:
        assert "are published" in text and "and written back to the database" in text
        assert "write-back was not done" not in text and sends in text


def test_an_interruption_names_the_output_folder_of_a_run_with_out(tmp_path: Path) -> None:
    from ka_ml.jobs.score import Progress, interrupted_text

    nothing = interrupted_text(Progress(), writeback=True, notify=True)
    assert nothing.startswith("the score run stopped; nothing of it was published")
    done = Progress("2026-10-01", tmp_path / "wk40", default_dir=False, published=True)
    text = interrupted_text(done, writeback=True, notify=True)
    assert f"rerun `ka-ml score --as-of 2026-10-01 --out {tmp_path / 'wk40'} --writeback`" in text
    assert f"`ka-ml notify --scores {tmp_path / 'wk40'}` sends them" in text
    assert interrupted_text(done, writeback=False, notify=False) == (
        f"the outputs and score history of 2026-10-01 are published ({tmp_path / 'wk40'}/)"
    )


def test_a_refused_login_at_the_write_back_target_names_the_password_not_grants() -> None:
    """An operator's wrong write-back password got "... may create that table (PostgreSQL:
    GRANT CREATE ON SCHEMA ...)" as the fix."""
    from sqlalchemy.exc import OperationalError as SaOperationalError

    class Refusing:
        def connect(self) -> None:
            raise SaOperationalError(
                "connect", {}, Exception('FATAL:  password authentication failed for user "w"')
            )

    with pytest.raises(KaMlError) as err:
        writeback.check_target(
            "postgresql+psycopg://w:secret@127.0.0.1:5432/crm", engine=Refusing()
        )
    assert "refused the login" in err.value.message and "GRANT" not in err.value.remedy
    assert "KA_ML_WRITEBACK_URL" in err.value.remedy and "secret" not in err.value.render()
