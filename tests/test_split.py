"""Rolling test origins: latest first, each trained only on snapshots whose whole label
window closed before it; fewer origins with a note on short histories; a history shorter
than the purge holds accounts out instead; fewer than two labelled dates is an error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ka_ml.config import Config
from ka_ml.errors import ModelError
from ka_ml.modeling.split import rolling_origins
from ka_ml.training.folds import account_partition, make_folds

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
    one = rolling_origins(dates, purge_days=90, n_origins=1)
    assert one.describe()["test"] == f"{dates[19].date()} (1 origin)"


def test_a_short_history_gives_fewer_origins_and_says_so() -> None:
    dates = every(5, 30)  # 120 days: only the last two have a snapshot 90 days before
    bt = rolling_origins(dates, purge_days=90, n_origins=3)
    assert [o.date for o in bt.origins] == [dates[4], dates[3]]
    assert "only 2 of 3 test origins" in bt.note and "90-day purge" in bt.note


def test_a_history_shorter_than_the_purge_holds_accounts_out_and_says_so() -> None:
    dates = every(3, 30)  # 60 days of labelled snapshots, a 90-day purge: none out of time
    bt = rolling_origins(dates, purge_days=90, n_origins=3)
    assert bt.grouped
    # the first date has nothing before it to fit the timing model on: two origins
    assert [(o.date, o.group) for o in bt.origins] == [(dates[2], 0), (dates[1], 1)]
    assert bt.origins[0].train_dates == tuple(dates)  # up to its own date, never later
    assert bt.origins[1].train_dates == tuple(dates[:2])
    assert "span 60 days, less than the 90-day purge" in bt.note and "held out" in bt.note
    assert bt.describe()["purge"] == "none: accounts held out"


def test_fewer_than_two_labelled_dates_is_a_model_error_with_the_remedy() -> None:
    with pytest.raises(ModelError, match=r"No test is possible.*Fix: .*longer history"):
        rolling_origins(every(1, 30), purge_days=90, n_origins=3)
    with pytest.raises(ModelError, match=r"No test is possible"):
        rolling_origins([], purge_days=90, n_origins=3)


def labelled_snapshots(dates: list[pd.Timestamp], n_accounts: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        {"account_id": f"A{i:03d}", "as_of": d, "churn": float(rng.uniform() < 0.3), "x": 1.0}
        for d in dates
        for i in range(n_accounts)
    ]
    return pd.DataFrame(rows)


def test_held_out_origins_never_train_on_an_account_they_test() -> None:
    cfg = Config()
    folds = make_folds(labelled_snapshots(every(6, 7), 90), cfg)
    assert folds.split.grouped and len(folds.split.origins) == 3
    tested: list[str] = []
    for o in folds.split.origins:
        tr, te = folds.train_rows(o), folds.test_rows(o)
        assert set(te["as_of"]) == {o.date} and tr["as_of"].max() <= o.date
        assert not set(tr["account_id"]) & set(te["account_id"])
        assert len(te) == 30  # a third of the 90 accounts
        tested += list(te["account_id"])
    # every account tested once, at one origin: the pooled rows hold each account once
    assert sorted(tested) == sorted(folds.test["account_id"]) and len(set(tested)) == 90


def test_two_labelled_dates_give_one_held_out_origin_trained_on_the_other_half() -> None:
    folds = make_folds(labelled_snapshots(every(2, 7), 60), Config())
    (o,) = folds.split.origins
    assert folds.split.account_groups == 2 and "1 of 2 account groups" in folds.split.note
    tr, te = folds.train_rows(o), folds.test_rows(o)
    assert len(te) == 30 and len(tr) == 2 * 30  # the other half, at both dates
    assert not set(tr["account_id"]) & set(te["account_id"])


def test_out_of_time_origins_test_every_account_at_their_date() -> None:
    folds = make_folds(labelled_snapshots(every(20, 7), 40), Config())
    assert not folds.split.grouped and folds.groups is None
    for o in folds.split.origins:
        assert len(folds.test_rows(o)) == 40


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 5), seed=st.integers(0, 10))
def test_the_account_partition_is_balanced_and_ignores_row_order(n: int, k: int, seed: int) -> None:
    ids = pd.Series([f"C{i}" for i in range(n)] * 2)
    g = account_partition(ids, k, seed)
    assert set(g) <= set(range(k)) and (g[:n] == g[n:]).all()  # one group per account
    sizes = np.bincount(g[:n], minlength=k)
    assert sizes.max() - sizes.min() <= 1
    shuffled = ids.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    again = dict(zip(shuffled, account_partition(shuffled, k, seed), strict=True))
    assert [again[a] for a in ids[:n]] == list(g[:n])


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
        # only when a single date is labelled (nothing to train on before a test)
        assert len(set(dates)) < 2
        return
    assert 1 <= len(bt.origins) <= n
    tests = [o.date for o in bt.origins]
    assert tests == sorted(tests, reverse=True) and len(set(tests)) == len(tests)
    if bt.grouped:  # only when no date has any snapshot a full purge before it
        assert all(d - pd.Timedelta(days=purge) < min(dates) for d in dates)
        assert [o.group for o in bt.origins] == list(range(len(bt.origins)))
    for o in bt.origins:
        assert o.train_dates and all(d <= o.date for d in o.train_dates)
        if not bt.grouped:
            assert all(d + pd.Timedelta(days=purge) <= o.date for d in o.train_dates)
