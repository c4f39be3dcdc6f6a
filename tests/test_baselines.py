"""Baselines: they learn the obvious signal, behave sensibly, and fail clearly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from ka_ml.modeling.baselines import BGNBDChurn, RecencyBaseline, RFMLogistic


@pytest.fixture(scope="module")
def snapshots() -> tuple[pd.DataFrame, np.ndarray]:
    """Accounts whose churn risk grows with recency and falls with frequency."""
    rng = np.random.default_rng(0)
    n = 4000
    recency = rng.exponential(60, n)
    orders = rng.poisson(rng.gamma(1.5, 6, n)).astype(float)
    spend = orders * rng.gamma(5, 200, n)
    logit = -1.0 + 1.2 * (np.log1p(recency) - 3.6) - 1.0 * (np.log1p(orders) - 2.0)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame({"recency_days": recency, "orders_365d": orders, "spend_365d": spend})
    return X, y


# -- recency ----------------------------------------------------------------------------
def test_recency_baseline_gives_more_risk_to_longer_silences(
    snapshots: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = snapshots
    model = RecencyBaseline().fit(X, y)
    grid = pd.DataFrame({"recency_days": [1.0, 10.0, 30.0, 90.0, 365.0]})
    proba = model.predict_proba(grid)
    assert proba.shape == (5, 2)  # scikit-learn's columns: P(no churn), P(churn)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    p = proba[:, 1]
    assert (np.diff(p) > 0).all()
    assert ((p > 0) & (p < 1)).all()


def test_recency_baseline_probabilities_beat_the_base_rate_on_brier(
    snapshots: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = snapshots
    p = RecencyBaseline().fit(X[:3000], y[:3000]).predict_proba(X[3000:])[:, 1]
    brier_model = np.mean((p - y[3000:]) ** 2)
    brier_constant = np.mean((y[:3000].mean() - y[3000:]) ** 2)
    assert brier_model < brier_constant
    assert p.mean() == pytest.approx(y[3000:].mean(), abs=0.04)


def test_recency_baseline_treats_missing_recency_as_the_coldest_seen(
    snapshots: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = snapshots
    model = RecencyBaseline().fit(X, y)
    p = model.predict_proba(pd.DataFrame({"recency_days": [np.nan, X["recency_days"].max()]}))[:, 1]
    assert p[0] == p[1]


def test_recency_baseline_reads_the_configured_column() -> None:
    X = pd.DataFrame({"days_silent": [1.0, 2.0, 50.0, 80.0]})
    model = RecencyBaseline(recency_col="days_silent").fit(X, [0, 0, 1, 1])
    p = model.predict_proba(X)[:, 1]
    assert p[3] > p[0]
    with pytest.raises(ValueError, match=r"\['recency_days'\] not found"):
        RecencyBaseline().fit(X, [0, 0, 1, 1])


def test_baselines_refuse_a_single_class_target_and_non_binary_labels() -> None:
    X = pd.DataFrame({"recency_days": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="single class"):
        RecencyBaseline().fit(X, [0, 0, 0])
    with pytest.raises(ValueError, match=r"0/1 \(1 = churn\); got \[2\.0\]"):
        RecencyBaseline().fit(X, [0, 1, 2])


def test_baselines_refuse_to_predict_before_fit() -> None:
    X = pd.DataFrame({"recency_days": [1.0]})
    with pytest.raises(NotFittedError):
        RecencyBaseline().predict_proba(X)
    with pytest.raises(NotFittedError):
        RFMLogistic().predict_proba(X)


# -- RFM logistic -----------------------------------------------------------------------
def test_rfm_logistic_learns_that_recency_raises_and_frequency_lowers_risk(
    snapshots: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = snapshots
    model = RFMLogistic().fit(X, y)
    recency_coef, frequency_coef, _ = model.coef_
    assert recency_coef > 0
    assert frequency_coef < 0


def test_rfm_logistic_ranks_better_than_recency_alone_when_frequency_matters(
    snapshots: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = snapshots
    train, test = slice(0, 3000), slice(3000, None)
    p_rfm = RFMLogistic().fit(X[train], y[train]).predict_proba(X[test])[:, 1]
    p_rec = RecencyBaseline().fit(X[train], y[train]).predict_proba(X[test])[:, 1]
    assert roc_auc_score(y[test], p_rfm) > roc_auc_score(y[test], p_rec) + 0.02


def test_rfm_logistic_fills_gaps_and_treats_net_credits_as_zero_spend(
    snapshots: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = snapshots
    model = RFMLogistic().fit(X, y)
    rows = pd.DataFrame(
        {
            "recency_days": [20.0, 20.0, 20.0],
            "orders_365d": [np.nan, 0.0, 0.0],
            "spend_365d": [-500.0, 0.0, np.nan],
        }
    )
    p = model.predict_proba(rows)[:, 1]
    assert np.isfinite(p).all()
    assert p[0] == p[1] == p[2]


# -- BG/NBD churn -----------------------------------------------------------------------
START = pd.Timestamp("2022-01-01")


@pytest.fixture(scope="module")
def orders() -> pd.DataFrame:
    """Orders from a BG/NBD-like world in days: 600 accounts over three years."""
    rng = np.random.default_rng(4)
    n = 600
    rate = rng.gamma(2.0, 1 / 60.0, n)  # about one order every 30 days on average
    dropout = rng.beta(1.0, 10.0, n)
    first = rng.uniform(0, 365, n)
    horizon = 3 * 365.0
    times, ids = [first], [np.arange(n)]
    now = first.copy()
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1 / rate[idx])
        alive = now[idx] < horizon
        active[idx[~alive]] = False
        buyers = idx[alive]
        times.append(now[buyers].copy())
        ids.append(buyers)
        active[buyers[rng.uniform(size=len(buyers)) < dropout[buyers]]] = False
    t = np.concatenate(times)
    acc = np.concatenate(ids)
    return pd.DataFrame(
        {
            "account_id": pd.Series([f"acc{i:04d}" for i in acc], dtype="str"),
            "order_date": START + pd.to_timedelta(np.floor(t), unit="D"),
            "amount": rng.gamma(3, 300, len(t)),
        }
    ).astype({"order_date": "datetime64[us]"})


def churn_labels(orders: pd.DataFrame, as_of: pd.Timestamp, ids: pd.Index, days: int) -> np.ndarray:
    window = orders[
        (orders["order_date"] >= as_of) & (orders["order_date"] < as_of + pd.Timedelta(days=days))
    ]
    return (~ids.isin(window["account_id"])).astype(int)


def test_bgnbd_churn_predicts_out_of_time_churn_well(orders: pd.DataFrame) -> None:
    fit_at, score_at = START + pd.Timedelta(days=540), START + pd.Timedelta(days=720)
    model = BGNBDChurn().fit(orders, fit_at)
    ids = pd.Index(sorted(orders.loc[orders["order_date"] < score_at, "account_id"].unique()))
    p = model.predict_no_order(orders, score_at, 90, ids)
    y = churn_labels(orders, score_at, ids, 90)
    assert np.isfinite(p).all()
    assert roc_auc_score(y, p) > 0.8
    assert p.mean() == pytest.approx(y.mean(), abs=0.06)


def test_bgnbd_churn_gives_nan_to_accounts_without_history(orders: pd.DataFrame) -> None:
    as_of = START + pd.Timedelta(days=400)
    model = BGNBDChurn().fit(orders, as_of)
    known = orders.loc[orders["order_date"] < as_of, "account_id"].iloc[0]
    p = model.predict_no_order(orders, as_of, 90, [known, "nobody", known])
    assert np.isfinite(p[0]) and p[0] == p[2]
    assert np.isnan(p[1])


def test_bgnbd_purchase_within_is_the_complement_and_non_decreasing_in_k(
    orders: pd.DataFrame,
) -> None:
    as_of = START + pd.Timedelta(days=600)
    model = BGNBDChurn().fit(orders, as_of)
    ids = orders["account_id"].unique()[:50]
    within = np.array([model.predict_purchase_within(orders, as_of, k, ids) for k in (30, 60, 90)])
    assert (np.diff(within, axis=0) >= 0).all()
    np.testing.assert_allclose(within[2], 1 - model.predict_no_order(orders, as_of, 90, ids))


def test_bgnbd_table_of_horizons_is_each_horizon_alone_from_one_summary(
    orders: pd.DataFrame,
) -> None:
    as_of = START + pd.Timedelta(days=600)
    model = BGNBDChurn().fit(orders, as_of)
    ids = np.r_[orders["account_id"].unique()[:40], ["nobody"]]
    table = model.predict_no_order_table(orders, as_of, [90, 30, 60], ids)
    assert table.shape == (41, 3) and np.isnan(table[-1]).all()
    for j, k in enumerate((90, 30, 60)):
        np.testing.assert_array_equal(table[:, j], model.predict_no_order(orders, as_of, k, ids))
    with pytest.raises(ValueError, match="positive number of days"):
        model.predict_no_order_table(orders, as_of, [30, 0], ids)
    # one summary made beforehand and passed to both gives the same model and table
    shared = BGNBDChurn()
    summary = shared.summary(orders, as_of)
    shared.fit(orders, as_of, summary)
    np.testing.assert_array_equal(
        shared.predict_no_order_table(orders, as_of, [90, 30, 60], ids, summary=summary), table
    )


def test_bgnbd_churn_ignores_orders_on_or_after_as_of(orders: pd.DataFrame) -> None:
    as_of = START + pd.Timedelta(days=600)
    model = BGNBDChurn().fit(orders, as_of)
    ids = orders["account_id"].unique()[:50]
    past_only = orders[orders["order_date"] < as_of]
    np.testing.assert_array_equal(
        model.predict_no_order(orders, as_of, 90, ids),
        model.predict_no_order(past_only, as_of, 90, ids),
    )


def test_bgnbd_churn_flags_a_frequent_buyer_gone_silent_over_one_who_just_bought(
    orders: pd.DataFrame,
) -> None:
    as_of = START + pd.Timedelta(days=720)
    fortnights = as_of - pd.to_timedelta(np.arange(0, 26 * 14, 14)[::-1] + 1, unit="D")
    two = pd.DataFrame(
        {
            "account_id": ["busy"] * 26 + ["quiet"] * 20,
            # busy: every 14 days for a year, last order yesterday;
            # quiet: the same rhythm, but nothing for the last 12 weeks.
            "order_date": list(fortnights) + list(fortnights[:20]),
            "amount": 100.0,
        }
    ).astype({"account_id": "str", "order_date": "datetime64[us]"})
    world = pd.concat([orders, two], ignore_index=True)
    model = BGNBDChurn().fit(world, as_of)
    quiet, busy = model.predict_no_order(world, as_of, 90, ["quiet", "busy"])
    assert busy < 0.15
    assert quiet > 0.5


def test_bgnbd_churn_rejects_a_non_positive_horizon(orders: pd.DataFrame) -> None:
    as_of = START + pd.Timedelta(days=600)
    model = BGNBDChurn().fit(orders, as_of)
    with pytest.raises(ValueError, match="horizon_days must be a positive number of days; got 0"):
        model.predict_no_order(orders, as_of, 0, ["acc0001"])


def test_bgnbd_churn_fit_needs_orders_before_the_cutoff(orders: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no orders dated before 2021-06-01"):
        BGNBDChurn().fit(orders, pd.Timestamp("2021-06-01"))


def test_a_bgnbd_baseline_that_stops_early_is_logged_in_words_not_warned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A user's train console printed "…/baselines.py:221: ConvergenceWarning: BG/NBD fit
    did not converge … try a larger max_iter" twice: one log line in words instead."""
    import logging
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from ka_ml.modeling.baselines import BGNBDChurn
    from ka_ml.training.churn import fit_baseline_bgnbd

    def stops_early(self: BGNBDChurn, *args: object, **kwargs: object) -> BGNBDChurn:
        warnings.warn("BG/NBD fit did not converge", ConvergenceWarning, stacklevel=2)
        return self

    monkeypatch.setattr(BGNBDChurn, "fit", stops_early)
    summary = pd.DataFrame({"frequency": [1.0, 2.0], "recency": [3.0, 4.0], "T": [5.0, 6.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping fails the test
        with caplog.at_level(logging.WARNING, logger="ka_ml.training.churn"):
            fit_baseline_bgnbd(BGNBDChurn(), pd.DataFrame(), pd.Timestamp("2025-01-06"), summary)
    assert caplog.messages == [
        "the BG/NBD baseline's fit at the 2025-01-06 origin stopped before converging "
        "(2 customers); it is judged as fitted"
    ]
