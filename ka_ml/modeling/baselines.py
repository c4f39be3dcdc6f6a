"""Baselines the churn and timing models must beat, out of time, before anyone trusts them.

Three rungs of the ladder, from the rule a manager already uses to a real model:

- :class:`RecencyBaseline`: "no order for a long time = at risk", turned into a
  probability by a one-feature logistic regression so Brier/log-loss/ECE mean something.
- :class:`RFMLogistic`: recency, frequency and spend in a logistic regression.
- :class:`BGNBDChurn`: the BG/NBD purchase model's P(no order within the horizon), a
  principled, individually tailored version of the recency rule (it knows that a 60-day
  silence is alarming for a weekly buyer and normal for a quarterly one).

The first two are scikit-learn classifiers on a pandas frame with named columns:
``predict_proba`` returns sklearn's two columns (P(no churn), P(churn)); callers take
column 1. :class:`BGNBDChurn` is fitted on the orders table and a date, not on a feature
frame, so it keeps its own prediction methods (``predict_no_order``,
``predict_purchase_within``) that return one probability per account id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from ka_ml.modeling.bgnbd import BGNBD, rfm_summary

FloatArray = NDArray[np.float64]


# -- helpers ----------------------------------------------------------------------------
def _columns(X: pd.DataFrame, names: Sequence[str], who: str) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"{who} expects a pandas DataFrame; got {type(X).__name__}.")
    missing = [c for c in names if c not in X.columns]
    if missing:
        raise ValueError(
            f"{who}: column(s) {missing} not found; available: {list(X.columns)[:20]}. "
            "Pass the right names to the constructor."
        )
    return X[list(names)].astype("float64")


def _binary_target(y: ArrayLike, n_rows: int, who: str) -> NDArray[np.int64]:
    arr = np.asarray(y, dtype=np.float64).ravel()
    if len(arr) != n_rows:
        raise ValueError(f"{who}: y has {len(arr)} values for {n_rows} rows.")
    bad = ~np.isin(arr, (0.0, 1.0))
    if bad.any():
        raise ValueError(
            f"{who}: y must be 0/1 (1 = churn); got {np.unique(arr[bad])[:5].tolist()}."
        )
    if len(np.unique(arr)) < 2:
        raise ValueError(
            f"{who}: y holds a single class ({arr[0]:g}); both churners and "
            "non-churners are needed to fit."
        )
    return arr.astype(np.int64)


def _log1p_nonneg(values: pd.Series, fill: float) -> FloatArray:
    """log1p of a count/amount/duration after filling gaps and clipping below at 0.

    Negative spend (net credits) and negative durations carry no more risk signal than
    zero, and log1p would fail on them.
    """
    return np.log1p(values.fillna(fill).clip(lower=0.0).to_numpy(dtype=np.float64))


def _two_columns(model: Pipeline, Z: FloatArray) -> FloatArray:
    """(n, 2) probabilities of the classes 0 and 1 from a fitted logistic pipeline."""
    return np.asarray(model.predict_proba(Z), dtype=np.float64)


# -- recency ----------------------------------------------------------------------------
class RecencyBaseline(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """P(churn) from days since the last order alone (logistic on log1p(recency)).

    The score is the account managers' own rule of thumb; the logistic map only makes it
    a probability. Missing recency (no order yet) is treated as the longest recency seen
    in training: an account that never ordered is at least as cold as the coldest one.
    """

    def __init__(self, *, recency_col: str = "recency_days", C: float = 1.0) -> None:
        self.recency_col = recency_col
        self.C = C

    def _features(self, X: pd.DataFrame) -> FloatArray:
        cols = _columns(X, [self.recency_col], type(self).__name__)
        return _log1p_nonneg(cols[self.recency_col], self.fill_recency_).reshape(-1, 1)

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> RecencyBaseline:
        cols = _columns(X, [self.recency_col], type(self).__name__)
        target = _binary_target(y, len(X), type(self).__name__)
        recency = cols[self.recency_col]
        if recency.isna().all():
            raise ValueError(f"RecencyBaseline: column '{self.recency_col}' is entirely missing.")
        self.fill_recency_ = float(recency.max())
        model: Pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=self.C))
        self.model_ = model.fit(self._features(X), target)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        """(n, 2): P(no churn), P(churn) per row."""
        check_is_fitted(self, "model_")
        return _two_columns(self.model_, self._features(X))

    def predict(self, X: pd.DataFrame) -> NDArray[np.int64]:
        """1 where P(churn) is above 1/2."""
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])


# -- RFM logistic -----------------------------------------------------------------------
class RFMLogistic(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Logistic regression on log1p of recency, frequency and monetary value.

    Gaps are filled before the log: recency with the longest training recency (never
    ordered = coldest), frequency and spend with 0 (no orders in the window).
    """

    def __init__(
        self,
        *,
        recency_col: str = "recency_days",
        frequency_col: str = "orders_365d",
        monetary_col: str = "spend_365d",
        C: float = 1.0,
    ) -> None:
        self.recency_col = recency_col
        self.frequency_col = frequency_col
        self.monetary_col = monetary_col
        self.C = C

    @property
    def feature_names(self) -> list[str]:
        return [self.recency_col, self.frequency_col, self.monetary_col]

    def _features(self, X: pd.DataFrame) -> FloatArray:
        cols = _columns(X, self.feature_names, type(self).__name__)
        return np.column_stack(
            [
                _log1p_nonneg(cols[self.recency_col], self.fill_recency_),
                _log1p_nonneg(cols[self.frequency_col], 0.0),
                _log1p_nonneg(cols[self.monetary_col], 0.0),
            ]
        )

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> RFMLogistic:
        cols = _columns(X, self.feature_names, type(self).__name__)
        target = _binary_target(y, len(X), type(self).__name__)
        recency = cols[self.recency_col]
        self.fill_recency_ = float(recency.max()) if recency.notna().any() else 0.0
        model: Pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=self.C))
        self.model_ = model.fit(self._features(X), target)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        """(n, 2): P(no churn), P(churn) per row."""
        check_is_fitted(self, "model_")
        return _two_columns(self.model_, self._features(X))

    def predict(self, X: pd.DataFrame) -> NDArray[np.int64]:
        """1 where P(churn) is above 1/2."""
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])

    @property
    def coef_(self) -> FloatArray:
        """Coefficients on the standardised log1p features (recency, frequency, monetary)."""
        check_is_fitted(self, "model_")
        return np.asarray(self.model_[-1].coef_[0], dtype=np.float64)


# -- BG/NBD -----------------------------------------------------------------------------
class BGNBDChurn(BaseEstimator):  # type: ignore[misc]
    """BG/NBD as a churn/timing baseline working directly on the orders table.

    ``fit`` summarises orders dated before the training cutoff ``as_of`` (one
    purchase occasion per account-day, see :func:`rfm_summary`) and fits BG/NBD on every
    account with a purchase. Predictions summarise the orders before the *scoring* date
    and give, per requested account:

    - ``predict_no_order``: P(no order in [as_of, as_of + horizon_days)) = churn under
      the "no order within the horizon" definition;
    - ``predict_purchase_within``: P(at least one order within k days), non-decreasing in k.

    Accounts without any purchase before ``as_of`` (prospects, or ids absent from the
    orders) get NaN: the model has no purchase history to condition on, and inventing a
    number would hide that. Account ids must have the dtype of ``orders.account_id``.
    Time is fitted in units of ``unit_days`` (weeks by default); results do not depend
    on it except through ``penalizer``.
    """

    def __init__(
        self, *, unit_days: float = 7.0, penalizer: float = 0.0, max_iter: int = 500
    ) -> None:
        self.unit_days = unit_days
        self.penalizer = penalizer
        self.max_iter = max_iter

    def summary(self, orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
        """The orders before ``as_of`` per account, in this model's time unit: what
        :meth:`fit` and :meth:`predict_no_order_table` read (pass it to both to summarise
        the orders once)."""
        return rfm_summary(orders, as_of, unit_days=self.unit_days)

    def fit(
        self, orders: pd.DataFrame, as_of: pd.Timestamp, summary: pd.DataFrame | None = None
    ) -> BGNBDChurn:
        if summary is None:
            summary = self.summary(orders, as_of)
        if summary.empty:
            raise ValueError(f"BGNBDChurn: no orders dated before {pd.Timestamp(as_of).date()}.")
        self.model_ = BGNBD(penalizer=self.penalizer, max_iter=self.max_iter).fit(
            summary["frequency"], summary["recency"], summary["T"]
        )
        self.fit_as_of_ = pd.Timestamp(as_of)
        self.n_accounts_ = len(summary)
        return self

    def _apply(
        self,
        orders: pd.DataFrame,
        as_of: pd.Timestamp,
        days: float,
        account_ids: ArrayLike,
        what: str,
    ) -> FloatArray:
        return self.predict_no_order_table(orders, as_of, [days], account_ids, what)[:, 0]

    def predict_no_order_table(
        self,
        orders: pd.DataFrame,
        as_of: pd.Timestamp,
        days: Sequence[float],
        account_ids: ArrayLike,
        what: str = "days",
        summary: pd.DataFrame | None = None,
    ) -> FloatArray:
        """P(no order within each of ``days`` of ``as_of``), shape (accounts, len(days)),
        from one summary of the orders (the summary is the cost; NaN: no history).
        ``summary``: :meth:`summary` of the same orders and date, when already made."""
        check_is_fitted(self, "model_")
        for d in days:
            if not (np.isfinite(d) and d > 0):
                raise ValueError(f"{what} must be a positive number of days; got {d!r}.")
        ids = np.asarray(account_ids).ravel()
        if summary is None:
            summary = self.summary(orders, as_of)
        rows = summary.reindex(pd.Index(ids))
        known = rows["frequency"].notna().to_numpy()
        out = np.full((len(ids), len(days)), np.nan)
        if known.any():
            x = rows["frequency"].to_numpy()[known]
            t_x, T = rows["recency"].to_numpy()[known], rows["T"].to_numpy()[known]
            for j, d in enumerate(days):
                out[known, j] = self.model_.prob_no_purchase(d / self.unit_days, x, t_x, T)
        return out

    def predict_no_order(
        self,
        orders: pd.DataFrame,
        as_of: pd.Timestamp,
        horizon_days: float,
        account_ids: ArrayLike,
    ) -> FloatArray:
        """P(no order within ``horizon_days`` of ``as_of``) per account id (NaN: no history)."""
        return self._apply(orders, as_of, horizon_days, account_ids, "horizon_days")

    def predict_purchase_within(
        self,
        orders: pd.DataFrame,
        as_of: pd.Timestamp,
        k_days: float,
        account_ids: ArrayLike,
    ) -> FloatArray:
        """P(at least one order within ``k_days`` of ``as_of``) per account id (NaN: no history)."""
        return 1.0 - self._apply(orders, as_of, k_days, account_ids, "k_days")


__all__ = ["BGNBDChurn", "RFMLogistic", "RecencyBaseline"]
