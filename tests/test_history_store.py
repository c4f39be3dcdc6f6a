"""The SQLite score history: idempotent upserts, reads before a date, last week, open forecasts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ka_ml.scoring import history_store

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
    got = history_store.read(db)
    assert got.empty and list(got.columns) == list(history_store.COLUMNS)
    assert not db.exists()


def test_upsert_round_trips_values_and_types(db: Path) -> None:
    df = scores(day(0), ["a", "b"], [0.7, 0.1])
    assert history_store.upsert(db, df) == 2
    got = history_store.read(db).sort_values("account_id").reset_index(drop=True)
    assert list(got["account_id"]) == ["a", "b"]
    assert list(got["churn_probability"]) == [0.7, 0.1]
    assert list(got["health"]) == ["red", "green"]
    assert list(got["abc_tier"]) == ["A", "A"]
    assert list(got["churn_model_version"]) == ["3", "3"]
    assert (got["as_of"] == day(0)).all()
    assert (got["next_purchase_p90_date"] == day(30)).all()
    assert got["expected_next_purchase_date"].isna().all()
    assert "not_stored" not in got.columns


def test_upserting_the_same_date_twice_replaces_its_rows(db: Path) -> None:
    history_store.upsert(db, scores(day(-7), ["a", "b"], [0.2, 0.3]))
    history_store.upsert(db, scores(day(0), ["a", "b", "c"], [0.4, 0.5, 0.6]))
    history_store.upsert(db, scores(day(0), ["a", "b", "c"], [0.4, 0.5, 0.6]))
    once = history_store.read(db)
    assert len(once) == 5
    assert not once.duplicated(["account_id", "as_of"]).any()
    # a rerun with other numbers and fewer accounts replaces that date only
    history_store.upsert(db, scores(day(0), ["a"], [0.9]))
    got = history_store.read(db)
    assert sorted(zip(got["account_id"], got["as_of"], got["churn_probability"], strict=True)) == [
        ("a", day(-7), 0.2),
        ("a", day(0), 0.9),
        ("b", day(-7), 0.3),
    ]


def test_read_before_keeps_only_dates_strictly_earlier(db: Path) -> None:
    for n in (-14, -7, 0):
        history_store.upsert(db, scores(day(n), ["a"], [0.1]))
    assert sorted(history_store.read(db, before=day(0))["as_of"]) == [day(-14), day(-7)]
    assert sorted(history_store.read(db, before=day(-6))["as_of"]) == [day(-14), day(-7)]
    assert history_store.read(db, before=day(-14)).empty


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
    got = history_store.previous_week(h, AS_OF)
    assert set(got.index) == {"a", "b"}
    assert got.loc["a", "churn_probability"] == 0.3
    assert got.loc["b", "health"] == "red"


def test_previous_week_looks_back_at_most_21_days() -> None:
    h = hist([("a", -22, 0.3, None), ("b", -21, 0.6, None)])
    got = history_store.previous_week(h, AS_OF)
    assert list(got.index) == ["b"]
    assert history_store.previous_week(h, day(-22)).empty
    assert history_store.previous_week(hist([("a", -22, 0.3, None)]), AS_OF).empty


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
    got = history_store.open_forecast_p90(h, last_order)
    assert list(got.index) == ["a", "b", "c", "d"]
    assert got["a"] == day(-3)
    assert pd.isna(got["b"])
    assert got["c"] == day(40)
    assert pd.isna(got["d"])  # never scored


def test_an_empty_history_has_no_open_forecasts() -> None:
    last_order = pd.Series(pd.to_datetime([day(-25)]), index=["a"])
    got = history_store.open_forecast_p90(
        pd.DataFrame(columns=list(history_store.COLUMNS)), last_order
    )
    assert got.isna().all() and list(got.index) == ["a"]


def test_history_read_back_feeds_previous_week_and_open_forecasts(db: Path) -> None:
    history_store.upsert(db, scores(day(-7), ["a", "b"], [0.7, 0.1]))
    h = history_store.read(db, before=AS_OF)
    prev = history_store.previous_week(h, AS_OF)
    assert prev.loc["a", "health"] == "red" and prev.loc["b", "churn_probability"] == 0.1
    p90 = history_store.open_forecast_p90(h, pd.Series(pd.to_datetime([day(-30)]), index=["a"]))
    assert p90["a"] == day(23)
