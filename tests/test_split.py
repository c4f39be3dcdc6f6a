"""The purged time split: test is the latest, calibration before it, training before that,
and no label window of one fold reaches into the next."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ka_ml.errors import ModelError
from ka_ml.modeling.split import cv_folds, time_split

START = pd.Timestamp("2023-01-02")


def monthly(n: int, every: int = 30) -> list[pd.Timestamp]:
    return list(pd.date_range(START, periods=n, freq=f"{every}D"))


@st.composite
def snapshot_dates(draw: st.DrawFn) -> list[pd.Timestamp]:
    """Irregular cadences: each gap between snapshots drawn independently (1-60 days)."""
    gaps = draw(st.lists(st.integers(1, 60), min_size=0, max_size=40))
    return [START + pd.Timedelta(days=int(d)) for d in np.cumsum([0, *gaps])]


def test_split_of_monthly_snapshots_is_the_hand_computed_one() -> None:
    dates = monthly(12)  # every 30 days; 90-day horizon needs a 3-snapshot purge
    split = time_split(dates, horizon_days=90)
    assert split.test_dates == (dates[11],)
    # dates[8] + 90 days == dates[11]: the half-open label window closes exactly in time
    assert split.calibration_dates == (dates[7], dates[8])
    assert split.train_dates == tuple(dates[:5])
    assert split.calibration_start == dates[7]
    assert split.test_start == dates[11]
    assert split.describe()["train"] == "2023-01-02..2023-05-02 (5 snapshots)"


def test_split_ignores_input_order_duplicates_and_array_type() -> None:
    dates = monthly(12)
    shuffled = np.array([*dates[::-1], dates[3], dates[11]], dtype="datetime64[us]")
    assert time_split(shuffled, horizon_days=90) == time_split(dates, horizon_days=90)


@settings(max_examples=300, deadline=None)
@given(
    dates=snapshot_dates(),
    horizon=st.integers(1, 200),
    n_test=st.integers(1, 3),
    n_cal=st.integers(1, 3),
    n_train=st.integers(1, 3),
)
def test_no_label_window_reaches_the_next_fold_for_any_cadence_or_horizon(
    dates: list[pd.Timestamp], horizon: int, n_test: int, n_cal: int, n_train: int
) -> None:
    kw = {"test_snapshots": n_test, "calibration_snapshots": n_cal, "min_train_snapshots": n_train}
    try:
        split = time_split(dates, horizon_days=horizon, **kw)
    except ModelError as e:
        assert "Fix:" in str(e)
        return
    h = pd.Timedelta(days=horizon)
    train, cal, test = split.train_dates, split.calibration_dates, split.test_dates
    assert test == tuple(sorted(dates)[-n_test:]), "test must be the latest snapshots"
    assert len(cal) == n_cal
    assert len(train) >= n_train
    assert max(cal) < split.test_start and max(train) < split.calibration_start
    assert all(d + h <= split.calibration_start for d in train)
    assert all(d + h <= split.test_start for d in cal)
    assert set(train).isdisjoint(cal) and set(cal).isdisjoint(test)
    # nothing usable is thrown away: every date skipped between folds would have leaked
    assert all(d + h > split.test_start for d in dates if max(cal) < d < split.test_start)
    assert all(
        d + h > split.calibration_start for d in dates if max(train) < d < split.calibration_start
    )


def test_too_few_snapshots_error_names_the_counts_and_the_remedy() -> None:
    with pytest.raises(ModelError) as err:
        time_split(monthly(3), horizon_days=90)
    text = str(err.value)
    assert "Only 3 fully labelled snapshots" in text
    assert "at least 5 (test 1, calibration 2, train 2)" in text
    assert "Fix:" in text and "longer history" in text


def test_snapshots_lost_to_the_purge_error_names_what_remains() -> None:
    # 6 snapshots is enough in number, but the 90-day purge leaves no training snapshot
    with pytest.raises(ModelError) as err:
        time_split(monthly(6), horizon_days=90)
    text = str(err.value)
    assert "only 0 training and 2 calibration snapshots remain (of 6 labelled)" in text
    assert "Fix:" in text


@settings(max_examples=300, deadline=None)
@given(dates=snapshot_dates(), horizon=st.integers(1, 200), n_folds=st.integers(1, 6))
def test_cv_validation_dates_come_after_their_purged_training_dates(
    dates: list[pd.Timestamp], horizon: int, n_folds: int
) -> None:
    try:
        folds = cv_folds(tuple(dates), n_folds=n_folds, horizon_days=horizon)
    except ModelError as e:
        assert f"from {len(dates)} training snapshots" in str(e)
        return
    h = pd.Timedelta(days=horizon)
    assert 1 <= len(folds) <= n_folds
    for train, valid in folds:
        assert train and valid
        assert set(train) | set(valid) <= set(dates)
        assert max(train) < min(valid)
        assert all(d + h <= min(valid) for d in train)
    starts = [min(v) for _, v in folds]
    assert starts == sorted(set(starts)), "each fold validates on a new, later block"


def test_cv_folds_expand_over_time_on_a_hand_example() -> None:
    dates = tuple(monthly(14))
    folds = cv_folds(dates, n_folds=2, horizon_days=90)
    # block = 14 // 4 = 3 snapshots; each training set ends 90 days before its block
    assert [v for _, v in folds] == [list(dates[8:11]), list(dates[11:14])]
    assert [t for t, _ in folds] == [list(dates[:6]), list(dates[:9])]


def test_cv_folds_with_more_folds_than_dates_never_repeat_a_validation_block() -> None:
    dates = tuple(monthly(3))
    folds = cv_folds(dates, n_folds=5, horizon_days=10)
    valid = [tuple(v) for _, v in folds]
    assert valid == [(dates[1],), (dates[2],)]


def test_cv_folds_without_any_purged_training_date_raise_with_remedy() -> None:
    with pytest.raises(ModelError, match=r"from 2 training snapshots.*Fix: .*n_folds"):
        cv_folds(tuple(monthly(2)), n_folds=2, horizon_days=90)


def test_without_a_purge_no_snapshot_date_sits_in_two_folds() -> None:
    dates = [pd.Timestamp("2024-01-01") + pd.Timedelta(days=7 * k) for k in range(8)]
    split = time_split(dates, horizon_days=90, purge_days=0, calibration_snapshots=1)
    folds = [set(split.train_dates), set(split.calibration_dates), set(split.test_dates)]
    assert not (folds[0] & folds[1]) and not (folds[1] & folds[2]) and not (folds[0] & folds[2])
    assert max(split.train_dates) < min(split.calibration_dates) < min(split.test_dates)
