"""Purchase timing as a discrete-time hazard model (censoring handled by construction).

Each snapshot row (account, as-of) becomes person-period rows, one per time interval
``[a_j, b_j)`` after the as-of during which the account is still *at risk* (has not
ordered yet). The label is 1 in the interval that holds the next order. A censored row
(no order seen before the end of the data) contributes the intervals it was observed
through with label 0, and its last, partly observed interval with a weight equal to the
observed fraction of it. Censored accounts thus count as "not yet" for exactly as long
as they were watched, never as "never", and never as an order at the censoring time:
the bias of a regressor on observed gaps only is avoided.

LightGBM learns the hazard ``h_j(x) = P(order in [a_j, b_j) | none before a_j, x)`` with
time-varying covariates (interval start, width, days since last order at the interval
start, and that recency relative to the account's typical gap). The survival curve is
``S(b_j) = prod_{i<=j} (1 - h_i)`` and ``P(order within k days) = 1 - S(k)``, which is
non-decreasing in k by construction. Quantiles (p10, median, p90) are read off the curve
with linear interpolation inside intervals; beyond the last edge they are open (NaN), and so
are they beyond the model's learnt range (``learnt_days_``): the last edge the training
rows were watched up to. Past it the booster never saw an interval; its hazard there is
the trees' extrapolation of the nearest one, not something learnt. On CDNOW's rolling
origins (timing snapshots watched 119-147 days) the medians dated past the learnt range
ranked the next orders worse than the chance of an order within 90 days (Harrell's C
0.704 vs 0.720 pooled, 0.674 vs 0.721 on one origin); cut there, 0.720.

Anchoring to the churn model: when the churn label is "no order within the horizon" (every
training row's definition is ``no_order``) the churn model forecasts ``S(horizon)`` itself,
and on CDNOW's rolling origins it ranks that event better than the hazard model's own
``S(horizon)`` does (the hazard is learned from few, partly censored snapshots). The model
then records ``anchor_days_`` and its survival curve is rescaled at prediction time so that
``S(horizon) = P(churn)`` (:func:`anchor_cdf`): up to the horizon the cumulative hazard is
multiplied by one factor per account, which keeps the curve's shape, keeps it monotone, and
keeps the window probabilities consistent with the churn score the user sees beside them;
after it the hazard model's own conditional hazards go on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ka_ml.errors import ModelError
from ka_ml.features.labels import contract_rule_rows
from ka_ml.modeling.churn import legacy_state_error
from ka_ml.modeling.feature_frame import align_frame, category_levels
from ka_ml.modeling.lightgbm_params import base_params, default_params, train_booster

DEFAULT_GRID = (7, 14, 21, 30, 45, 60, 75, 90, 120, 150, 180, 240, 365)
ANCHOR_EPS = 1e-9  # keeps log(S) finite where a curve or a churn probability is 0 or 1
# the share of next orders a p10-p90 interval should hold; training sets the interval's
# levels on the origins to reach it (ka_ml.training.timing.interval_levels)
INTERVAL_TARGET = 0.8
TIME_COLUMNS = ("t_start", "t_width", "recency_at_t", "overdue_at_t")


@dataclass(frozen=True)
class HazardData:
    """A hazard booster's person-period rows as LightGBM Datasets
    (:meth:`TimingModel.probe_data`): the interval edges and column layout they were built
    with, the training and early-stopping sets, and the trees to fit without early stopping
    (None: ``MAX_ROUNDS``)."""

    edges: np.ndarray
    features: list[str]
    categories: dict[str, list[str]]
    train: lgb.Dataset
    valid: lgb.Dataset | None
    rounds: int | None
    learnt_days: float


def learnt_days(edges: np.ndarray, duration: Any) -> float:
    """The last edge the training rows were watched up to: the longest duration seen (a
    next order's day or a censoring's), down to an edge. No training row reaches an
    interval past it; the first edge when none is reached whole."""
    d = np.asarray(duration, dtype=float)
    longest = float(np.nanmax(d)) if d.size and np.isfinite(d).any() else 0.0
    inside = edges[1:][edges[1:] <= longest]
    return float(inside[-1]) if len(inside) else float(edges[1])


def open_beyond(q: pd.DataFrame, days: Any) -> pd.DataFrame:
    """Quantile days past ``days`` (a number, or one per row) made open (NaN)."""
    limit = np.asarray(days, dtype=float)
    return q.where(q.le(limit, axis=0) if limit.ndim else q.le(float(limit)))


def interval_edges(
    windows: list[int] | tuple[int, ...], grid: tuple[int, ...] = DEFAULT_GRID
) -> np.ndarray:
    """Interval edges 0 = e_0 < e_1 < ... covering the grid and every purchase window."""
    edges = sorted({0, *grid, *windows})
    return np.asarray(edges, dtype=float)


def _time_covariates(
    X: pd.DataFrame, starts: np.ndarray, widths: np.ndarray, recency_col: str, gap_col: str
) -> dict[str, np.ndarray]:
    rec = X[recency_col].to_numpy(float) if recency_col in X else np.full(len(X), np.nan)
    gap = X[gap_col].to_numpy(float) if gap_col in X else np.full(len(X), np.nan)
    rec_t = rec + starts
    with np.errstate(divide="ignore", invalid="ignore"):
        over = np.where(gap > 0, rec_t / gap, np.nan)
    return {"t_start": starts, "t_width": widths, "recency_at_t": rec_t, "overdue_at_t": over}


def expand_person_period(
    X: pd.DataFrame,
    duration: np.ndarray,
    event: np.ndarray,
    edges: np.ndarray,
    *,
    recency_col: str = "recency_days",
    gap_col: str = "gap_median_days",
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Person-period rows (features + time covariates), labels and exposure weights."""
    duration = np.asarray(duration, dtype=float)
    event = np.asarray(event, dtype=bool)
    a, b = edges[:-1], edges[1:]
    n, j = len(X), len(a)
    t = duration[:, None]
    at_risk = t >= a[None, :]
    in_interval = (t >= a[None, :]) & (t < b[None, :])
    label = in_interval & event[:, None]
    full = t >= b[None, :]
    partial_censored = in_interval & ~event[:, None]
    keep = at_risk & (label | full | partial_censored)
    weight = np.where(partial_censored, (t - a[None, :]) / (b - a)[None, :], 1.0)
    keep &= weight > 0
    rows, cols = np.nonzero(keep)
    base = X.iloc[rows].reset_index(drop=True)
    tv = _time_covariates(base, a[cols], (b - a)[cols], recency_col, gap_col)
    pp = base.assign(**tv)
    del n, j
    return pp, label[rows, cols].astype(float), weight[rows, cols].astype(float)


class TimingModel(BaseEstimator):
    """Discrete-time hazard model of the days to the next order; a scikit-learn estimator
    (neither a classifier nor a regressor: it is fitted on durations and events).

    ``edges``: the interval edges of the hazard (None: :func:`interval_edges` of no window,
    the default grid); ``params``: one mapping of LightGBM settings (None: the package's
    defaults) for the reasons given on :class:`ka_ml.modeling.churn.ChurnModel`;
    ``random_state``; ``recency_col`` / ``gap_col``: the features the time-varying
    covariates are built from.

    Fitted: ``edges_``, ``features_``, ``categories_``, ``booster_``, ``best_iteration_``,
    and what training sets with :meth:`attach`: ``interval_levels_`` (the CDF levels of the
    reported "p10" / "p90" dates: (0.1, 0.9) unless training widened or narrowed them so
    the interval held 80% of next orders out of time, conformal) and ``anchor_days_`` (the
    horizon in days where the curve is anchored to the churn model's P(no order), or None:
    churn is not "no order within the horizon", or the horizon is not an edge).
    """

    def __init__(
        self,
        *,
        edges: Sequence[float] | np.ndarray | None = None,
        params: Mapping[str, Any] | None = None,
        random_state: int = 42,
        recency_col: str = "recency_days",
        gap_col: str = "gap_median_days",
    ) -> None:
        self.edges = edges
        self.params = params
        self.random_state = random_state
        self.recency_col = recency_col
        self.gap_col = gap_col

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "random_state" not in state:  # pickled as the old dataclass (params, edges, seed)
            raise legacy_state_error("purchase-timing")
        super().__setstate__(state)

    @property
    def model_columns(self) -> list[str]:
        return [*self.features_, *TIME_COLUMNS]

    def _expand(self, X: pd.DataFrame, duration: np.ndarray, event: np.ndarray) -> Any:
        return expand_person_period(
            X, duration, event, self.edges_, recency_col=self.recency_col, gap_col=self.gap_col
        )

    def fit(
        self,
        X: pd.DataFrame,
        duration: Any,
        event: Any,
        *,
        eval_set: tuple[pd.DataFrame, Any, Any] | None = None,
        num_boost_round: int | None = None,
    ) -> TimingModel:
        """Fit the hazard booster on the person-period rows of ``X``; early-stop on
        ``eval_set=(X_valid, duration_valid, event_valid)`` when given, else
        ``num_boost_round`` trees (default ``MAX_ROUNDS``)."""
        return self.fit_probe(self._data(X, duration, event, eval_set, num_boost_round))

    def probe_data(
        self,
        X: pd.DataFrame,
        duration: Any,
        event: Any,
        *,
        eval_set: tuple[pd.DataFrame, Any, Any] | None = None,
    ) -> HazardData:
        """The person-period rows of ``fit(X, duration, event, eval_set=...)`` expanded and
        binned once, for fits that differ only in booster settings (tuning trials):
        ``TimingModel(params=p, ...).fit_probe(data)`` is the booster ``fit`` would give."""
        return self._data(X, duration, event, eval_set, None, shared=True)

    def fit_probe(self, data: HazardData) -> TimingModel:
        """Fit the hazard booster on :meth:`probe_data`'s rows (early stopping when it
        holds a validation set)."""
        self.edges_ = data.edges.copy()
        self.learnt_days_ = float(data.learnt_days)
        self.interval_levels_: tuple[float, float] = (0.1, 0.9)
        self.anchor_days_: int | None = None
        self.anchor_skips_contracts_ = False
        self.card_: dict[str, Any] | None = None
        self.features_, self.categories_ = list(data.features), dict(data.categories)
        self.booster_, self.best_iteration_ = train_booster(
            self._booster_params(), data.train, data.valid, data.rounds
        )
        return self

    def _booster_params(self) -> dict[str, Any]:
        lgb_params = default_params() if self.params is None else dict(self.params)
        return {**base_params(self.random_state), **lgb_params, "objective": "binary"}

    def _data(
        self,
        X: pd.DataFrame,
        duration: Any,
        event: Any,
        eval_set: tuple[pd.DataFrame, Any, Any] | None,
        rounds: int | None,
        shared: bool = False,
    ) -> HazardData:
        if not np.any(np.asarray(event, bool)):
            raise ModelError(
                "No next order is observed in the training snapshots: the timing model "
                "has nothing to learn from.",
                "provide a longer history or check the orders table's dates.",
            )
        self.edges_ = np.asarray(
            interval_edges(()) if self.edges is None else self.edges, dtype=float
        )
        self.features_ = list(X.columns)
        self.categories_ = category_levels(X, self.features_)
        # binned once here when shared, with the settings lgb.train would bin with (the seed
        # draws the rows the bin edges are taken from); the frames are dropped once binned
        params = self._booster_params() if shared else None
        pp, y, w = self._expand(X, duration, event)
        train = lgb.Dataset(
            align_frame(pp, self.model_columns, self.categories_), y, weight=w, params=params
        )
        valid = None
        if eval_set is not None:
            vpp, vy, vw = self._expand(*eval_set)
            vX = align_frame(vpp, self.model_columns, self.categories_)
            valid = lgb.Dataset(vX, vy, weight=vw, params=params, reference=train)
        if shared:  # bin now, so every fit on it skips the person-period frames
            del pp
            train.construct()
            if valid is not None:
                valid.construct()
        learnt = learnt_days(self.edges_, duration)
        return HazardData(
            self.edges_, self.features_, self.categories_, train, valid, rounds, learnt
        )

    def attach(
        self,
        *,
        interval_levels: tuple[float, float] | None = None,
        anchor_days: int | None = None,
        anchor_skips_contracts: bool | None = None,
        card: dict[str, Any] | None = None,
    ) -> TimingModel:
        """Set what training chose around the fitted hazard (each given one replaces the
        current): the interval's CDF levels, the anchor horizon in days, whether rows whose
        churn is their contract's are left unanchored (``auto`` with contracts), the card of
        what training measured of it (``card_``: the purchase-cycle record managers see)."""
        check_is_fitted(self, "booster_")
        if interval_levels is not None:
            self.interval_levels_ = interval_levels
        if anchor_days is not None:
            self.anchor_days_ = anchor_days
        if anchor_skips_contracts is not None:
            self.anchor_skips_contracts_ = anchor_skips_contracts
        if card is not None:
            self.card_ = card
        return self

    def log_likelihood(self, X: pd.DataFrame, duration: np.ndarray, event: np.ndarray) -> float:
        """Mean exposure-weighted Bernoulli log-likelihood of the person-period rows."""
        check_is_fitted(self, "booster_")
        pp, y, w = self._expand(X, duration, event)
        h = np.asarray(
            self.booster_.predict(
                align_frame(pp, self.model_columns, self.categories_),
                num_iteration=self.best_iteration_,
            )
        )
        h = np.clip(h, 1e-7, 1 - 1e-7)
        ll = y * np.log(h) + (1 - y) * np.log(1 - h)
        return float(np.sum(w * ll) / max(np.sum(w), 1e-12))

    def hazards(self, X: pd.DataFrame) -> np.ndarray:
        """h[i, j] = P(order in interval j | none before), shape (n, intervals)."""
        check_is_fitted(self, "booster_")
        a, b = self.edges_[:-1], self.edges_[1:]
        n, j = len(X), len(a)
        # positional repeat: label-based .loc would multiply rows of a duplicated index
        base = X.iloc[np.repeat(np.arange(n), j)].reset_index(drop=True)
        tv = _time_covariates(
            base, np.tile(a, n), np.tile(b - a, n), self.recency_col, self.gap_col
        )
        pp = align_frame(base.assign(**tv), self.model_columns, self.categories_)
        h = np.asarray(self.booster_.predict(pp, num_iteration=self.best_iteration_))
        return np.clip(h.reshape(n, j), 0.0, 1.0)

    def cdf(self, X: pd.DataFrame) -> np.ndarray:
        """F[i, j] = P(next order before edge j+1); non-decreasing along j."""
        return 1.0 - np.cumprod(1.0 - self.hazards(X), axis=1)

    def anchored_cdf(self, X: pd.DataFrame, p_no_order: np.ndarray | None) -> np.ndarray:
        """:meth:`cdf`, anchored to the churn model's ``P(no order within the horizon)`` when
        the model was trained for it and the probabilities are given; else the hazard's own.
        Where churn is judged by the contract (``auto`` with contracts: a churn probability
        that is not the chance of no order), that row keeps the hazard's own curve."""
        F = self.cdf(X)
        if self.anchor_days_ is None or p_no_order is None:
            return F
        skips = getattr(self, "anchor_skips_contracts_", False)  # older models: every row
        return anchor_cdf(F, self.edges_, anchor_targets(X, p_no_order, skips), self.anchor_days_)

    def predict_within(self, X: pd.DataFrame, windows: list[int]) -> pd.DataFrame:
        F = self.cdf(X)
        return within_from_cdf(F, self.edges_, windows, index=X.index)

    def predict_quantiles(
        self, X: pd.DataFrame, qs: tuple[float, ...] = (0.1, 0.5, 0.9)
    ) -> pd.DataFrame:
        return self._learnt(quantiles_from_cdf(self.cdf(X), self.edges_, qs, index=X.index))

    def _learnt(self, q: pd.DataFrame) -> pd.DataFrame:
        """``q`` open past the learnt range (models saved before it was kept: the last edge)."""
        return open_beyond(q, getattr(self, "learnt_days_", float(self.edges_[-1])))

    def predict_frame(
        self,
        X: pd.DataFrame,
        windows: Sequence[int],
        churn_probability: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """The registered model's output: ``p_purchase_{k}d`` per window and the q10 / q50 /
        q90 days (the edges of the 80% interval, whatever levels give it).

        ``churn_probability``: the churn model's probabilities for the same rows; a model
        trained with an anchor (churn = no order within the horizon) rescales its curve to
        them, so P(order within the horizon) = 1 - P(churn). Without them (e.g. the timing
        model served alone) the hazard model's own curve is used."""
        return self.frame_from_cdf(self.anchored_cdf(X, churn_probability), windows, index=X.index)

    def frame_from_cdf(
        self, F: np.ndarray, windows: Sequence[int], index: pd.Index | None = None
    ) -> pd.DataFrame:
        """:meth:`predict_frame` from curves already computed (``F`` as :meth:`cdf` or
        :meth:`anchored_cdf` gives them): the hazards are the cost, not this."""
        check_is_fitted(self, "booster_")
        within = within_from_cdf(F, self.edges_, list(windows), index=index)
        lo, hi = self.interval_levels_
        q = self._learnt(quantiles_from_cdf(F, self.edges_, (lo, 0.5, hi), index=index))
        q.columns = ["q10", "q50", "q90"]
        return pd.concat([within, q], axis=1)


def anchor_targets(X: pd.DataFrame, p_no_order: Any, skips_contracts: bool) -> np.ndarray:
    """The churn probabilities to anchor ``X``'s rows to: NaN (the hazard's own curve) for
    rows judged by their contract when ``skips_contracts`` (their churn is the contract's
    lapse, not the chance of no order); the scorer's and the backtest's one rule."""
    p = np.asarray(p_no_order, float)
    return np.where(contract_rule_rows(X), np.nan, p) if skips_contracts else p


def anchor_cdf(F: np.ndarray, edges: np.ndarray, p_no_order: np.ndarray, days: int) -> np.ndarray:
    """The CDF rescaled so that ``S(days) = p_no_order`` per row, shape kept.

    Up to ``days``, proportional in the cumulative hazard: ``S'(t) = S(t) ** lam`` with
    ``lam = log(p_no_order) / log(S(days))``, so the curve stays non-decreasing, 0 at 0, and
    the relative timing of an account's orders (which intervals carry its hazard) is the
    hazard model's; a curve with no hazard at all before ``days`` gets a constant one there.
    After ``days``, the hazard model's own hazards: ``S'(t) = S'(days) * S(t) / S(days)``.
    The churn model knows the chance of no order within its horizon, nothing of when an
    account silent through it orders next: scaling the whole curve by ``lam`` carried its
    correction to every later interval, and a user's seasonal accounts scored in October
    (P(churn) 0.98, spring orders 150-170 days out, which the hazard model saw: its own
    P(order within 180 d) 0.9) read P(order within 180 d) 0.08 and an open median; kept
    conditional, their medians came within 7 days of the order (median error). Where the
    hazard model is certain of an order before ``days`` (S(days) ~ 0), the scaled curve
    goes on. A row whose ``p_no_order`` is NaN keeps its curve. ``days`` must be an edge.
    """
    pos = int(np.searchsorted(edges, days))
    if pos >= len(edges) or edges[pos] != days or pos == 0:
        raise ModelError(
            f"Anchor {days} is not an interval edge {list(edges)}.", "refit the model."
        )
    cum = -np.log(np.clip(1.0 - np.asarray(F, float), ANCHOR_EPS, 1.0))  # cumulative hazard
    at_h = cum[:, pos - 1]
    target = -np.log(np.clip(np.asarray(p_no_order, float), ANCHOR_EPS, 1.0 - ANCHOR_EPS))
    flat = at_h < ANCHOR_EPS  # no hazard before the horizon at all: nothing to scale
    scale = np.where(flat, 0.0, target / np.where(flat, 1.0, at_h))
    linear = target[:, None] * (edges[1:] / days)[None, :]  # then a constant hazard
    out = 1.0 - np.exp(-np.where(flat[:, None], linear, cum * scale[:, None]))
    # after the anchor: the anchored survival at it times the hazard's own conditional one
    s_at = np.exp(-at_h)
    later = s_at > ANCHOR_EPS
    if later.any() and pos < len(edges) - 1:
        cond = np.exp(-(cum[later, pos:] - at_h[later, None]))  # S(t) / S(days)
        out[later, pos:] = 1.0 - (1.0 - out[later, pos - 1])[:, None] * cond
    own = ~np.isfinite(np.asarray(p_no_order, float))
    if own.any():
        out[own] = np.asarray(F, float)[own]
    return out


def forecast_day(days: Any) -> np.ndarray:
    """The day a point of the curve falls on: ``floor(t)`` (NaN stays NaN).

    Day ``d`` holds the orders placed ``d`` days after the as-of (0: the as-of day itself,
    whose orders the data before it cannot hold), and the curve spreads each interval's
    chance evenly over its days, so the curve's time ``t`` lies inside day ``floor(t)``:
    the median day is ``floor(q50)`` (an order by it at least half the time, before it at
    most half). The dates had been ``ceil(t)``, a day late: a user's weekly buyers ordered
    before the p10 date 39% of the time, 36% of them on the as-of day, which the p10 date
    never covered."""
    return np.floor(np.asarray(days, dtype=float))


def cdf_at(F: np.ndarray, edges: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Each row's CDF at its own ``days`` (linear inside intervals, as the quantiles are read;
    0 at day 0, the last edge's value beyond it)."""
    n = F.shape[0]
    Fz = np.hstack([np.zeros((n, 1)), F])
    t = np.clip(np.asarray(days, float), 0.0, edges[-1])
    j = np.clip(np.searchsorted(edges, t, side="right"), 1, len(edges) - 1)
    e0, e1 = edges[j - 1], edges[j]
    frac = np.clip((t - e0) / (e1 - e0), 0.0, 1.0)
    rows = np.arange(n)
    return Fz[rows, j - 1] + frac * (Fz[rows, j] - Fz[rows, j - 1])


def within_from_cdf(
    F: np.ndarray, edges: np.ndarray, windows: list[int], index: pd.Index | None = None
) -> pd.DataFrame:
    """P(order within k days) for each window k (k must be an edge)."""
    out = {}
    for k in windows:
        pos = np.searchsorted(edges, k)
        if pos >= len(edges) or edges[pos] != k:
            raise ModelError(
                f"Window {k} is not an interval edge {list(edges)}.", "refit the model."
            )
        out[f"p_purchase_{k}d"] = F[:, pos - 1]
    return pd.DataFrame(out, index=index)


def quantiles_from_cdf(
    F: np.ndarray, edges: np.ndarray, qs: tuple[float, ...], index: pd.Index | None = None
) -> pd.DataFrame:
    """Days by which the next order has happened with probability q (NaN beyond range)."""
    n = F.shape[0]
    Fz = np.hstack([np.zeros((n, 1)), F])  # F at every edge, F(0) = 0
    out = {}
    for q in qs:
        hit = Fz >= q
        has = hit.any(axis=1)
        j = np.where(has, hit.argmax(axis=1), 0)
        j = np.maximum(j, 1)
        f0 = Fz[np.arange(n), j - 1]
        f1 = Fz[np.arange(n), j]
        e0, e1 = edges[j - 1], edges[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(f1 > f0, (q - f0) / (f1 - f0), 0.0)
        days = e0 + np.clip(frac, 0, 1) * (e1 - e0)
        out[f"q{round(q * 100):02d}"] = np.where(has, days, np.nan)
    return pd.DataFrame(out, index=index)
