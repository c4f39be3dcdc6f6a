"""Training sets: snapshot dates, unobserved churn, no look past the training as-of."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fixtures import config, make_history

from ka_ml.data.history import History
from ka_ml.features import build_features, build_training_set, churn_labels, snapshot_dates
from ka_ml.features.snapshots import snapshot_every

AS_OF = pd.Timestamp("2024-12-01")
START = pd.Timestamp("2023-06-01")


def world(seed: int = 0, n: int = 6) -> History:
    """A few accounts ordering every ~20-60 days from START; some stop at some point."""
    rng = np.random.default_rng(seed)
    orders, contracts = [], []
    for i in range(n):
        stop = START + pd.Timedelta(days=int(rng.integers(200, 700)))
        day = START + pd.Timedelta(days=int(rng.integers(0, 30)))
        while day < min(stop, AS_OF):
            orders.append({"account_id": f"a{i}", "order_date": day, "amount": float(i + 1)})
            day += pd.Timedelta(days=int(rng.integers(20, 60)))
        if i % 2:
            contracts.append(
                {
                    "account_id": f"a{i}",
                    "start_date": START,
                    "end_date": START + pd.Timedelta(days=int(rng.integers(300, 600))),
                }
            )
    return make_history(orders, contracts=contracts)


def cfg(at_risk_only: bool = False, **features: int):  # type: ignore[no-untyped-def]
    return config(
        features={"max_snapshots": 6, "snapshot_every_days": 30, **features},
        labels={"at_risk_only": at_risk_only},
    )


def test_snapshot_dates_step_back_from_the_as_of_but_not_before_some_history() -> None:
    h = world()
    dates = snapshot_dates(h, cfg(), AS_OF)
    assert dates == [AS_OF - pd.Timedelta(days=30 * k) for k in range(5, -1, -1)]
    first = h.orders["order_date"].min()
    late_start = snapshot_dates(h, cfg(max_snapshots=24, min_history_days=90), AS_OF)
    assert min(late_start) >= first + pd.Timedelta(days=90)
    assert min(late_start) - pd.Timedelta(days=30) < first + pd.Timedelta(days=90)


@pytest.mark.parametrize(
    ("span_days", "every"), [(100, 7), (244, 7), (336, 14), (700, 21), (1095, 28), (5000, 28)]
)
def test_the_automatic_cadence_is_whole_weeks_giving_about_the_target_count(
    span_days: int, every: int
) -> None:
    c = config(features={"target_snapshots": 36})
    assert snapshot_every(span_days, c) == every


def test_without_a_cap_snapshots_cover_the_whole_history_at_the_automatic_cadence() -> None:
    h = world()
    first = h.orders["order_date"].min()
    dates = snapshot_dates(h, config(features={"min_history_days": 28}), AS_OF)
    gaps = {(b - a).days for a, b in itertools.pairwise(dates)}
    assert len(gaps) == 1 and gaps <= {7, 14, 21, 28}
    assert max(dates) == AS_OF
    assert (
        min(dates) >= first + pd.Timedelta(days=28) > min(dates) - min(gaps) * pd.Timedelta(days=1)
    )


def test_training_set_is_sorted_and_carries_labels_beside_the_features() -> None:
    df = build_training_set(world(), cfg(), AS_OF)
    assert df[["as_of", "account_id"]].equals(
        df[["as_of", "account_id"]].sort_values(["as_of", "account_id"]).reset_index(drop=True)
    )
    assert list(df.columns[-4:]) == [
        "churn", "churn_definition", "days_to_next", "next_order_observed",
    ]  # fmt: skip
    assert df["churn"].dtype == "float64" and df["next_order_observed"].dtype == bool
    assert set(df["churn_definition"]) <= {"contract", "no_order"}


def test_churn_is_nan_exactly_where_the_window_is_not_fully_observed() -> None:
    df = build_training_set(world(), cfg(), AS_OF)
    unobserved = df["as_of"] + pd.Timedelta(days=90) > AS_OF
    assert df.loc[unobserved, "churn"].isna().all()
    assert df.loc[~unobserved, "churn"].notna().all()
    assert unobserved.any() and (~unobserved).any()
    assert set(df.loc[~unobserved, "churn"]) <= {0.0, 1.0}


def test_at_risk_only_keeps_churn_labels_just_for_accounts_that_can_still_churn() -> None:
    every = build_training_set(world(), cfg(), AS_OF)
    at_risk = build_training_set(world(), cfg(at_risk_only=True), AS_OF)
    observed = every["churn"].notna()
    active = (every["churn_definition"] == "contract") | (every["recency_days"] <= 90)
    # same rows and features; only the churn label of inactive accounts is withdrawn
    pd.testing.assert_frame_equal(every.drop(columns="churn"), at_risk.drop(columns="churn"))
    assert (
        at_risk.loc[observed & active, "churn"].tolist()
        == every.loc[observed & active, "churn"].tolist()
    )
    assert at_risk.loc[~active, "churn"].isna().all()
    assert (observed & ~active).any() and (observed & active).any()


def test_no_snapshot_sees_rows_on_or_after_the_training_as_of() -> None:
    h = world()
    later = [AS_OF, AS_OF + pd.Timedelta(days=1), AS_OF + pd.Timedelta(days=60)]
    future_orders = pd.DataFrame(
        {"account_id": ["a0", "a1", "new"], "order_date": later, "amount": [5.0, -2.0, 9.0]}
    )
    future_contracts = pd.DataFrame(
        {"account_id": ["a0", "a2"], "start_date": later[:2], "end_date": later[1:]}
    )
    more = make_history(
        pd.concat([h.orders, future_orders], ignore_index=True),
        contracts=pd.concat([h.contracts, future_contracts], ignore_index=True),
    )
    pd.testing.assert_frame_equal(
        build_training_set(h, cfg(), AS_OF), build_training_set(more, cfg(), AS_OF)
    )


def test_each_snapshot_equals_the_point_in_time_features_and_labels() -> None:
    h = world(seed=3)
    c = cfg()
    df = build_training_set(h, c, AS_OF)
    known = h.before(AS_OF)
    for s in sorted(set(df["as_of"])):
        rows = df[df["as_of"] == s]
        feats = build_features(known, pd.Timestamp(s), c)
        got = rows.drop(
            columns=["churn", "churn_definition", "days_to_next", "next_order_observed"]
        )
        pd.testing.assert_frame_equal(got.reset_index(drop=True), feats)
        if pd.Timestamp(s) + pd.Timedelta(days=90) <= AS_OF:
            lab = churn_labels(known, pd.Timestamp(s), c, pd.Index(feats["account_id"]))
            assert rows["churn"].tolist() == lab["churn"].astype(float).tolist()


def test_timing_labels_are_censored_at_the_training_as_of() -> None:
    df = build_training_set(world(), cfg(), AS_OF)
    censored = df[~df["next_order_observed"]]
    expected = (AS_OF - censored["as_of"]).dt.days.astype(float)
    assert censored["days_to_next"].tolist() == expected.tolist()
    seen = df[df["next_order_observed"]]
    assert (seen["as_of"] + pd.to_timedelta(seen["days_to_next"], unit="D") < AS_OF).all()


def test_progress_is_logged_per_snapshot(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ka_ml.features"):
        build_training_set(world(), cfg(), AS_OF)
    lines = [r.getMessage() for r in caplog.records if r.name == "ka_ml.features"]
    assert len(lines) == 6 and all(line.startswith("snapshot ") for line in lines)
    assert "not observed" in lines[-1]


def test_no_history_before_the_as_of_gives_an_empty_table_with_all_columns() -> None:
    h = world()
    df = build_training_set(h, cfg(), START)
    assert df.empty
    assert "recency_days" in df.columns and "churn" in df.columns


def test_demo_world_training_set_uses_every_table_and_reads_well() -> None:
    from ka_ml.demo import generate_world
    from ka_ml.features import features_for, get

    w = generate_world(80, 2.0, 1)
    tables: dict[str, Any] = dict(w.tables)
    h = History(**tables)
    as_of = h.default_as_of
    df = build_training_set(h, cfg(max_snapshots=8), as_of)
    assert list(df.columns[2:-4]) == [f.name for f in features_for(h)]
    assert {f.family for f in features_for(h)} == {
        "orders", "usage", "tickets", "surveys", "contracts", "account", "portfolio",
    }  # fmt: skip
    observed = df["churn"].dropna()
    assert 0 < observed.mean() < 0.5
    assert set(df["churn_definition"]) == {"contract", "no_order"}
    row = {str(k): v for k, v in df.iloc[-1].items()}
    for name in df.columns[2:-4]:
        assert get(name).describe(row[name], other=row)


def test_no_snapshot_says_whether_the_history_is_missing_or_too_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Seen: 'no order history before 2023-10-20' where 25 days of orders stood, short of
    the 28 the first snapshot needs."""
    from ka_ml.features.snapshots import no_snapshot_reason

    as_of = pd.Timestamp("2023-10-20")
    h = make_history(
        [{"account_id": "a", "order_date": as_of - pd.Timedelta(days=25), "amount": 1.0}]
    )
    assert no_snapshot_reason(h, config(), as_of) == (
        "the order history before 2023-10-20 starts on 2023-09-25: 25 days, fewer than "
        "features.min_history_days (28)"
    )
    assert no_snapshot_reason(h, config(), as_of - pd.Timedelta(days=30)) == (
        "no order history before 2023-09-20"
    )
    with caplog.at_level(logging.WARNING, logger="ka_ml"):
        assert build_training_set(h, config(), as_of).empty
    assert "25 days, fewer than features.min_history_days (28)" in caplog.text
