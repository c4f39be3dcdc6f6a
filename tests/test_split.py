"""Rolling test origins: latest first, each trained only on snapshots whose whole label
window closed before it; fewer origins with a note on short histories, none is an error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ka_ml.errors import ModelError
from ka_ml.modeling.split import rolling_origins

START = pd.Timestamp("2023-01-02")


def every(n: int, days: int) -> list[pd.Timestamp]:
    return list(pd.date_range(START, periods=n, freq=f"{days}D"))


@st.composite
def snapshot_dates(draw: st.DrawFn) -> list[pd.Timestamp]:
    """Irregular cadences: each gap between snapshots drawn independently (1-60 days)."""
    gaps = draw(st.lists(st.integers(1, 60), min_size=0, max_size=40))
    return [START + pd.Timedelta(days=int(d)) for d in np.cumsum([0, *gaps])]


def test_weekly_snapshots_give_the_latest_three_origins_each_trained_90_days_earlier() -> None:
    dates = every(20, 7)  # 2023-01-02 .. 2023-05-15
    bt = rolling_origins(dates, purge_days=90, n_origins=3)
    assert [o.date for o in bt.origins] == [dates[19], dates[18], dates[17]]
    # 2023-05-15 - 90 days = 2023-02-14: the snapshots up to 2023-02-13 train the first origin
    assert bt.origins[0].train_dates == tuple(dates[:7])
    assert bt.origins[2].train_dates == tuple(dates[:5])
    assert bt.final_dates == tuple(dates) and bt.note == ""
    assert bt.describe()["test"].endswith("(3 origins)")


def test_a_short_history_gives_fewer_origins_and_says_so() -> None:
    dates = every(5, 30)  # 120 days: only the last two have a snapshot 90 days before
    bt = rolling_origins(dates, purge_days=90, n_origins=3)
    assert [o.date for o in bt.origins] == [dates[4], dates[3]]
    assert "only 2 of 3 test origins" in bt.note and "90-day purge" in bt.note


def test_no_possible_origin_is_a_model_error_with_the_remedy() -> None:
    with pytest.raises(ModelError, match=r"No out-of-time test is possible.*Fix: .*longer history"):
        rolling_origins(every(3, 30), purge_days=90, n_origins=3)


def test_unsorted_and_repeated_dates_give_the_same_origins() -> None:
    dates = every(15, 14)
    shuffled = [*dates[::-1], *dates[:3]]
    a = rolling_origins(dates, purge_days=90, n_origins=3)
    assert rolling_origins(shuffled, purge_days=90, n_origins=3) == a


@settings(max_examples=150, deadline=None)
@given(dates=snapshot_dates(), purge=st.integers(1, 200), n=st.integers(1, 6))
def test_no_training_label_window_reaches_its_origin(
    dates: list[pd.Timestamp], purge: int, n: int
) -> None:
    try:
        bt = rolling_origins(dates, purge_days=purge, n_origins=n)
    except ModelError:
        # only when no date has any snapshot a full purge before it
        assert all(d - pd.Timedelta(days=purge) < min(dates) for d in dates)
        return
    assert 1 <= len(bt.origins) <= n
    tests = [o.date for o in bt.origins]
    assert tests == sorted(tests, reverse=True) and len(set(tests)) == len(tests)
    for o in bt.origins:
        assert o.train_dates and all(d + pd.Timedelta(days=purge) <= o.date for d in o.train_dates)
