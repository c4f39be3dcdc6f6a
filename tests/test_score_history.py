"""The SQLite score history: idempotent runs written in one transaction, reads before a date
(with the purchase windows), last week, open forecasts, the read-only queries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ka_ml.config import Config
from ka_ml.scoring import score_history

AS_OF = pd.Timestamp("2026-06-01")


def day(n: int) -> pd.Timestamp:
    return AS_OF + pd.Timedelta(days=n)


def scores(as_of: pd.Timestamp, ids: list[str], p: list[float]) -> pd.DataFrame:
    """A scores frame typed like the scorer's (str ids, us dates, categorical tier)."""
    n = len(ids)
    return pd.DataFrame(
        {
            "account_id": pd.Series(ids, dtype="str"),
            "as_of": pd.Series([as_of] * n, dtype="datetime64[us]"),
            "churn_probability": p,
            "health": pd.Series(np.where(np.array(p) >= 0.5, "red", "green"), dtype="str"),
            "next_purchase_p90_date": pd.Series(
                [as_of + pd.Timedelta(days=30)] * n, dtype="datetime64[us]"
            ),
            "abc_tier": pd.Categorical(["A"] * n, categories=["A", "B", "C"]),
            "reason_1": pd.Series(["No order for 40 days"] * n, dtype="str"),
            "churn_model_version": "3",
            "not_stored": 1.0,
        }
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "sub" / "score_history.sqlite"


def test_reading_a_missing_store_gives_an_empty_frame_with_the_columns(db: Path) -> None:
    got = score_history.read(db)
    assert got.empty and list(got.columns) == [*score_history.COLUMNS, "lifecycle"]
    assert not db.exists()


def test_a_written_run_round_trips_values_and_types(db: Path) -> None:
    df = scores(day(0), ["a", "b"], [0.7, 0.1])
    assert score_history.write_run(db, df) == 2
    got = score_history.read(db).sort_values("account_id").reset_index(drop=True)
    assert list(got["account_id"]) == ["a", "b"]
    assert list(got["churn_probability"]) == [0.7, 0.1]
    assert list(got["health"]) == ["red", "green"]
    assert list(got["abc_tier"]) == ["A", "A"]
    assert list(got["churn_model_version"]) == ["3", "3"]
    assert (got["as_of"] == day(0)).all()
    assert (got["next_purchase_p90_date"] == day(30)).all()
    assert got["expected_next_purchase_date"].isna().all()
    assert "not_stored" not in got.columns


def test_writing_the_same_date_twice_replaces_its_rows(db: Path) -> None:
    score_history.write_run(db, scores(day(-7), ["a", "b"], [0.2, 0.3]))
    score_history.write_run(db, scores(day(0), ["a", "b", "c"], [0.4, 0.5, 0.6]))
    score_history.write_run(db, scores(day(0), ["a", "b", "c"], [0.4, 0.5, 0.6]))
    once = score_history.read(db)
    assert len(once) == 5
    assert not once.duplicated(["account_id", "as_of"]).any()
    # a rerun with other numbers and fewer accounts replaces that date only
    score_history.write_run(db, scores(day(0), ["a"], [0.9]))
    got = score_history.read(db)
    assert sorted(zip(got["account_id"], got["as_of"], got["churn_probability"], strict=True)) == [
        ("a", day(-7), 0.2),
        ("a", day(0), 0.9),
        ("b", day(-7), 0.3),
    ]


def test_read_before_keeps_only_dates_strictly_earlier(db: Path) -> None:
    for n in (-14, -7, 0):
        score_history.write_run(db, scores(day(n), ["a"], [0.1]))
    assert sorted(score_history.read(db, before=day(0))["as_of"]) == [day(-14), day(-7)]
    assert sorted(score_history.read(db, before=day(-6))["as_of"]) == [day(-14), day(-7)]
    assert score_history.read(db, before=day(-14)).empty


def hist(rows: list[tuple[str, int, float, int | None]]) -> pd.DataFrame:
    """(account, as-of day, p, p90 day or None) -> a frame like ``read`` returns."""
    return pd.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "as_of": pd.to_datetime([day(r[1]) for r in rows]),
            "churn_probability": [r[2] for r in rows],
            "health": ["red" if r[2] >= 0.5 else "green" for r in rows],
            "next_purchase_p90_date": pd.Series(
                [None if r[3] is None else day(r[3]) for r in rows], dtype="datetime64[us]"
            ),
        }
    )


def test_previous_week_is_the_latest_scoring_date_before_the_as_of() -> None:
    h = hist([("a", -28, 0.1, None), ("a", -14, 0.2, None), ("a", -7, 0.3, None), ("a", 0, 0.4, None),
              ("b", -7, 0.6, None), ("c", -14, 0.9, None)])  # fmt: skip
    got = score_history.previous_week(h, AS_OF)
    assert set(got.index) == {"a", "b"}
    assert got.loc["a", "churn_probability"] == 0.3
    assert got.loc["b", "health"] == "red"


def test_previous_week_looks_back_at_most_21_days() -> None:
    h = hist([("a", -22, 0.3, None), ("b", -21, 0.6, None)])
    got = score_history.previous_week(h, AS_OF)
    assert list(got.index) == ["b"]
    assert score_history.previous_week(h, day(-22)).empty
    assert score_history.previous_week(hist([("a", -22, 0.3, None)]), AS_OF).empty


def test_the_open_forecast_is_the_earliest_one_made_after_the_last_order() -> None:
    h = hist([
        ("a", -35, 0.1, -20),  # made before the last order: superseded
        ("a", -21, 0.1, -3),   # first forecast after the last order (day -25): this one
        ("a", -14, 0.1, 5),
        ("a", -7, 0.1, 12),
        ("b", -21, 0.1, 30),   # b ordered since (day -10): no open forecast
        ("c", -7, 0.1, 40),
    ])  # fmt: skip
    last_order = pd.Series(
        pd.to_datetime([day(-25), day(-10), day(-50), day(-3)]), index=["a", "b", "c", "d"]
    )
    got = score_history.open_forecast_p90(h, last_order)
    assert list(got.index) == ["a", "b", "c", "d"]
    assert got["a"] == day(-3)
    assert pd.isna(got["b"])
    assert got["c"] == day(40)
    assert pd.isna(got["d"])  # never scored
    # only a forecast made soon after the order forecast from it: c's came 43 days later
    # the earliest forecast, whole: an open-ended one is not replaced by a later date
    h_open = h.copy()
    h_open.loc[
        (h_open["account_id"] == "a") & (h_open["as_of"] == day(-21)), "next_purchase_p90_date"
    ] = pd.NaT
    assert pd.isna(score_history.open_forecast_p90(h_open, last_order)["a"])
    near = score_history.open_forecast_p90(h, last_order, within_days=21)
    assert near["a"] == day(-3)  # made 4 days after a's order
    assert pd.isna(near["c"]) and pd.isna(near["b"]) and pd.isna(near["d"])


def test_an_empty_history_has_no_open_forecasts() -> None:
    last_order = pd.Series(pd.to_datetime([day(-25)]), index=["a"])
    got = score_history.open_forecast_p90(
        pd.DataFrame(columns=list(score_history.COLUMNS)), last_order
    )
    assert got.isna().all() and list(got.index) == ["a"]


def test_history_read_back_feeds_previous_week_and_open_forecasts(db: Path) -> None:
    score_history.write_run(db, scores(day(-7), ["a", "b"], [0.7, 0.1]))
    h = score_history.read(db, before=AS_OF)
    prev = score_history.previous_week(h, AS_OF)
    assert prev.loc["a", "health"] == "red" and prev.loc["b", "churn_probability"] == 0.1
    p90 = score_history.open_forecast_p90(h, pd.Series(pd.to_datetime([day(-30)]), index=["a"]))
    assert p90["a"] == day(23)


def contributions(as_of: pd.Timestamp, ids: list[str], features: list[str]) -> Any:
    values = np.arange(len(ids) * len(features), dtype=float).reshape(len(ids), -1) / 100
    return score_history.Contributions(as_of, pd.Series(ids), features, values)


def test_a_run_stores_its_contributions_for_the_next_run(db: Path) -> None:
    run = contributions(day(-7), ["a", "b"], ["recency_days", "orders_90d"])
    score_history.write_run(db, scores(day(-7), ["a", "b"], [0.7, 0.1]), run)
    got = score_history.read_contributions(db, day(-7), ["orders_90d", "new_feature"])
    assert list(got.index) == ["a", "b"] and list(got.columns) == ["orders_90d", "new_feature"]
    assert got["orders_90d"].tolist() == pytest.approx([0.01, 0.03])
    assert got["new_feature"].tolist() == [0.0, 0.0]  # the stored run's model lacked it
    assert score_history.read_contributions(db, day(0), ["orders_90d"]).empty


def test_rescoring_past_weeks_keeps_each_weeks_contributions_for_the_next(db: Path) -> None:
    """A user rescored 18 past Mondays in order with the later weeks already stored: each
    week's contributions were pruned as soon as written (only the latest 4 dates were
    kept), so the next week explained it again and named another "biggest mover" than the
    first run had, for 821 of 875 accounts one week."""
    weeks = [day(-7 * k) for k in range(10, -1, -1)]  # 11 Mondays, oldest first
    feats = ["recency_days", "orders_90d"]
    for w in weeks:
        score_history.write_run(db, scores(w, ["a"], [0.5]), contributions(w, ["a"], feats))
    for w in weeks[:5]:  # the past again, in order, the later weeks still stored
        score_history.write_run(db, scores(w, ["a"], [0.5]), contributions(w, ["a"], feats))
        assert not score_history.read_contributions(db, w, feats).empty
    # the latest weeks stay, for the next weekly run
    assert not score_history.read_contributions(db, weeks[-1], feats).empty
    assert score_history.read_contributions(db, weeks[5], feats).empty  # beyond both: pruned


def test_a_run_whose_contributions_fail_leaves_the_history_as_it_was(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    score_history.write_run(db, scores(day(-7), ["a"], [0.2]))

    def crash(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(score_history, "_write_contributions", crash)
    run = contributions(day(0), ["a", "b"], ["recency_days"])
    with pytest.raises(OSError, match="disk full"):
        score_history.write_run(db, scores(day(0), ["a", "b"], [0.4, 0.5]), run)
    assert sorted(score_history.read(db)["as_of"].unique()) == [day(-7)]  # no week without
    assert score_history.read_contributions(db, day(0), ["recency_days"]).empty


def test_reading_with_windows_decodes_the_purchase_probabilities(db: Path) -> None:
    old = scores(day(-7), ["a"], [0.2])
    new = scores(day(0), ["a", "b"], [0.4, 0.5]).assign(
        p_purchase_30d=[0.1, 0.2], p_purchase_90d=[0.6, 0.7]
    )
    score_history.write_run(db, old)
    score_history.write_run(db, new)
    got = score_history.read(db, windows=True).sort_values(["as_of", "account_id"])
    assert list(got.columns) == [
        *score_history.COLUMNS, *score_history.READ_DETAIL, "p_purchase_30d", "p_purchase_90d"
    ]  # fmt: skip
    assert got["p_purchase_90d"].tolist() == pytest.approx([np.nan, 0.6, 0.7], nan_ok=True)
    # each week's lifecycle comes back too: last week's tells "back from lapsed" from "not scored"
    assert list(score_history.read(db).columns) == [*score_history.COLUMNS, "lifecycle"]
    assert "p_purchase_30d" not in score_history.read(db, before=day(0), windows=True)


def test_the_history_lives_in_the_outputs_folder(tmp_path: Path) -> None:
    cfg = Config.model_validate({"paths": {"outputs": str(tmp_path)}})
    assert score_history.history_path(cfg) == tmp_path / "score_history.sqlite"


def test_the_read_only_view_never_creates_the_file(db: Path) -> None:
    with pytest.raises(score_history.NoScores), score_history.ReadOnlyHistory(db).open():
        pass
    assert not db.exists()
    score_history.write_run(db, scores(day(0), ["a", "b"], [0.7, 0.1]))
    with score_history.ReadOnlyHistory(db).open() as q:
        assert q.latest_as_of() == "2026-06-01" and q.has_as_of("2026-06-01")
        assert q.count("2026-06-01", {"health": "red"}) == 1
        assert q.count("2026-06-01", {"owner": "nobody"}) == 0  # a column the file lacks
        page = q.page("2026-06-01", {}, ["account_id"], renamed={}, limit=1, offset=1)
        assert page == [{"account_id": "b"}]


# -- readers while a run is written (issue 16.3) -------------------------------------------


def test_the_file_is_in_wal_mode_with_the_api_indexes_and_a_run_per_week(db: Path) -> None:
    import sqlite3

    score_history.write_run(db, scores(day(0), ["a", "b"], [0.7, 0.1]))
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = {r[1] for r in con.execute("PRAGMA index_list(scores)")}
        runs = con.execute("SELECT as_of, accounts FROM runs").fetchall()
    assert set(score_history.INDEXES) <= indexes
    assert runs == [("2026-06-01", 2)]


def test_a_rewritten_week_gets_a_new_run_id_and_other_weeks_keep_theirs(db: Path) -> None:
    score_history.write_run(db, scores(day(0), ["a"], [0.7]))
    score_history.write_run(db, scores(day(7), ["a"], [0.6]))
    store = score_history.ReadOnlyHistory(db)
    with store.open() as q:
        first = (q.run_id("2026-06-01"), q.run_id("2026-06-08"))
        assert None not in first and q.run_id("2026-06-15") is None
    score_history.write_run(db, scores(day(7), ["a", "b"], [0.2, 0.3]))  # a rerun
    with store.open() as q:
        assert q.run_id("2026-06-01") == first[0]
        assert q.run_id("2026-06-08") != first[1]
        assert q.count("2026-06-08", {}) == 2


def test_a_reader_keeps_its_snapshot_while_a_run_is_committed(db: Path) -> None:
    """All queries of one open() see the same history: a run committed in between shows
    only in the next open() (WAL: the writer did not wait for the reader either)."""
    score_history.write_run(db, scores(day(0), ["a", "b"], [0.7, 0.1]))
    store = score_history.ReadOnlyHistory(db)
    with store.open() as q:
        assert q.latest_as_of() == "2026-06-01"
        score_history.write_run(db, scores(day(7), ["a", "b", "c"], [0.9, 0.2, 0.4]))
        assert q.latest_as_of() == "2026-06-01"
        assert q.latest_of("a")["as_of"] == "2026-06-01"  # type: ignore[index]
        assert [r["as_of"] for r in q.history_of("a", ["as_of"], 10)] == ["2026-06-01"]
    with store.open() as q:
        assert q.latest_as_of() == "2026-06-08" and q.count("2026-06-08", {}) == 3


def test_a_file_written_before_runs_were_recorded_is_read_without_run_ids(db: Path) -> None:
    import sqlite3

    score_history.write_run(db, scores(day(0), ["a"], [0.7]))
    with sqlite3.connect(db) as con:
        con.execute("DROP TABLE runs")
    with score_history.ReadOnlyHistory(db).open() as q:
        assert q.run_id("2026-06-01") is None and q.latest_as_of() == "2026-06-01"
    score_history.write_run(db, scores(day(7), ["a"], [0.6]))  # the next run adds it
    with score_history.ReadOnlyHistory(db).open() as q:
        assert q.run_id("2026-06-08") is not None and q.run_id("2026-06-01") is None


def test_a_new_column_from_a_newer_scorer_is_seen_by_a_running_reader(db: Path) -> None:
    """The table's shape is cached by the reader, and reflected again when the file's
    schema changes."""
    import sqlite3

    score_history.write_run(db, scores(day(0), ["a"], [0.7]))
    store = score_history.ReadOnlyHistory(db)
    with store.open() as q:
        assert "segment" not in q.table.c
    with sqlite3.connect(db) as con:
        con.execute("ALTER TABLE scores ADD COLUMN segment TEXT")
    with store.open() as q:
        assert "segment" in q.table.c
