"""BG/NBD ("buy till you die"): the classic, transparent baseline for purchase timing and churn.

Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to the
Pareto/NBD model", Marketing Science 24(2). While alive, a customer buys at a Poisson rate
``lambda ~ Gamma(r, alpha)``; right after each repeat purchase they drop out for good with
probability ``p ~ Beta(a, b)``. The model needs only three numbers per customer:

- ``frequency`` x: repeat purchases (purchase occasions after the first),
- ``recency`` t_x: time from the first to the last purchase,
- ``T``: time from the first purchase to the end of the observation period,

all in one time unit of the caller's choice (days or weeks); ``alpha`` is in that unit and
so are the ``t`` given to the predictors. Written with scipy rather than ``lifetimes``
(unmaintained) so that we control validation, numerics and dependencies.

The model is a baseline the LightGBM models must beat out of time, and a source of
features (``P(alive)``, expected purchases) that encode recency/frequency in a principled way.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from ka_ml.data.history import is_purchase
from ka_ml.errors import ModelError

FloatArray = NDArray[np.float64]

PARAM_NAMES = ("r", "alpha", "a", "b")
# Log-parameters are kept in [-LOG_BOUND, LOG_BOUND] so exp() never overflows. The time
# axis is rescaled before fitting (longest T -> 10), so alpha lives on a sane scale too.
LOG_BOUND = 20.0
_FIT_TIME_SCALE = 10.0
_GRAD_TOL = 1e-6  # on the mean log-likelihood per customer, in log-parameters


# -- input checking ---------------------------------------------------------------------
def _first_bad(values: NDArray[Any], mask: NDArray[np.bool_]) -> str:
    """Up to three offending values, for error messages that name the value."""
    return ", ".join(repr(v) for v in values[mask][:3].tolist())


def _validate_rfm(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Check and convert the (x, t_x, T) triple; raise ``ValueError`` naming bad values.

    The checks are the model's assumptions, not pedantry: a non-integer frequency or a
    purchase after the end of the period (t_x > T) make the likelihood meaningless, and a
    customer with no repeat purchase must have t_x = 0 (the first purchase is time 0).
    """
    arrays = []
    for name, values in (("frequency", frequency), ("recency", recency), ("T", T)):
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
        if arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}.")
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(f"{name} must be finite; got {_first_bad(arr, bad)}.")
        bad = arr < 0
        if bad.any():
            raise ValueError(f"{name} must be >= 0; got {_first_bad(arr, bad)}.")
        arrays.append(arr)
    x, t_x, T_arr = arrays
    if not (len(x) == len(t_x) == len(T_arr)):
        raise ValueError(
            f"frequency, recency and T must have the same length; got {len(x)}, {len(t_x)}, "
            f"{len(T_arr)}."
        )
    bad = x != np.round(x)
    if bad.any():
        raise ValueError(
            f"frequency must count repeat purchases (whole numbers); got {_first_bad(x, bad)}."
        )
    tol = 1e-9 * np.maximum(1.0, T_arr)
    bad = t_x > T_arr + tol
    if bad.any():
        raise ValueError(
            f"recency must not exceed T (a purchase after the end of the period); got recency "
            f"{_first_bad(t_x, bad)} with T {_first_bad(T_arr, bad)}."
        )
    bad = (x == 0) & (t_x > 0)
    if bad.any():
        raise ValueError(
            f"recency must be 0 when frequency is 0 (time runs from the first purchase); got "
            f"recency {_first_bad(t_x, bad)}."
        )
    return x, np.minimum(t_x, T_arr), T_arr


def _validate_t(t: ArrayLike) -> FloatArray:
    arr = np.asarray(t, dtype=np.float64)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        raise ValueError(f"t (the prediction window) must be finite and >= 0; got {arr[bad][:3]}.")
    return arr


# -- the model's formulas ---------------------------------------------------------------
def bgnbd_log_likelihood(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    r: float,
    alpha: float,
    a: float,
    b: float,
) -> FloatArray:
    """Per-customer log-likelihood, Fader et al. (2005) eq. 6, in log space.

    L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))

    The first term is "still alive at T", the second "dropped out right after the last
    purchase". Both are summed with log-add-exp so heavy buyers do not underflow.
    """
    x, t_x, T_arr = _validate_rfm(frequency, recency, T)
    return _log_likelihood(x, t_x, T_arr, r, alpha, a, b)


def _log_likelihood(
    x: FloatArray, t_x: FloatArray, T: FloatArray, r: float, alpha: float, a: float, b: float
) -> FloatArray:
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    alive = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    # For x == 0 the second term is absent; b + x - 1 would be b - 1 (possibly <= 0).
    dropped = np.where(
        repeat,
        betaln(a + 1.0, np.where(repeat, b + x - 1.0, 1.0)) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return np.asarray(common + np.logaddexp(alive, dropped), dtype=np.float64)


def _mean_ll_and_grad(
    theta: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray, weights: FloatArray
) -> tuple[float, FloatArray]:
    """Weighted mean log-likelihood and its gradient in the log-parameters.

    The analytic gradient (digamma terms from the gamma/beta functions, the two
    likelihood branches weighted by their posterior share) lets L-BFGS-B converge to
    the optimum rather than to finite-difference noise.
    """
    r, alpha, a, b = np.exp(theta)
    repeat = x > 0
    b_drop = np.where(repeat, b + x - 1.0, 1.0)
    log_alive = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    log_dropped = np.where(repeat, betaln(a + 1.0, b_drop) - (r + x) * np.log(alpha + t_x), -np.inf)
    lse = np.logaddexp(log_alive, log_dropped)
    ll = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b) + lse
    w_alive = np.exp(log_alive - lse)
    w_drop = np.exp(log_dropped - lse)  # exactly 0 where x == 0
    psi_abx = digamma(a + b + x)
    d_r = (
        digamma(r + x)
        - digamma(r)
        + np.log(alpha)
        - w_alive * np.log(alpha + T)
        - w_drop * np.log(alpha + t_x)
    )
    d_alpha = r / alpha - (r + x) * (w_alive / (alpha + T) + w_drop / (alpha + t_x))
    d_a = (
        digamma(a + b)
        - digamma(a)
        + w_alive * (digamma(a) - psi_abx)
        + w_drop * (digamma(a + 1.0) - psi_abx)
    )
    d_b = (
        digamma(a + b)
        - digamma(b)
        + w_alive * (digamma(b + x) - psi_abx)
        + w_drop * (digamma(b_drop) - psi_abx)
    )
    grad = np.array([weights @ d_r, weights @ d_alpha, weights @ d_a, weights @ d_b])
    return float(weights @ ll), grad * np.exp(theta)


def _log_odds_dead(
    x: FloatArray, t_x: FloatArray, T: FloatArray, r: float, alpha: float, a: float, b: float
) -> FloatArray:
    """log[P(dead at T) / P(alive at T)]; -inf for customers without a repeat purchase."""
    repeat = x > 0
    return np.where(
        repeat,
        np.log(a)
        - np.log(np.where(repeat, b + x - 1.0, 1.0))
        + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)),
        -np.inf,
    )


# -- the estimator ----------------------------------------------------------------------
class BGNBD(BaseEstimator):  # type: ignore[misc]
    """BG/NBD fitted by maximum likelihood (scipy L-BFGS-B on log-parameters).

    Parameters
    ----------
    penalizer:
        L2 penalty on the log-parameters (fitted on a time axis rescaled so the longest T
        is 10, which makes the penalty independent of the caller's time unit). 0 is plain
        maximum likelihood; small values (0.001-0.1) tame small or degenerate samples.
    max_iter:
        Iteration cap for the optimizer; a fit that does not converge warns.

    Attributes (after ``fit``)
    --------------------------
    params_: ``{"r", "alpha", "a", "b"}``, alpha in the caller's time unit.
    log_likelihood_: total log-likelihood of the training data at ``params_`` (unpenalised).
    n_customers_, n_iter_, converged_.
    """

    def __init__(self, *, penalizer: float = 0.0, max_iter: int = 500) -> None:
        self.penalizer = penalizer
        self.max_iter = max_iter

    # -- fitting --------------------------------------------------------------------
    def fit(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> BGNBD:
        """Maximise the log-likelihood; returns ``self``."""
        if not (np.isfinite(self.penalizer) and self.penalizer >= 0):
            raise ValueError(f"penalizer must be a finite number >= 0; got {self.penalizer!r}.")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be >= 1; got {self.max_iter!r}.")
        x, t_x, T_arr = _validate_rfm(frequency, recency, T)
        if len(x) == 0:
            raise ValueError("BG/NBD needs at least one customer; got empty arrays.")
        if not (x > 0).any():
            raise ModelError(
                "BG/NBD cannot be fitted: no customer has a repeat purchase, so the drop-out "
                "process is not identified.",
                "Use a longer history (an earlier first date or later cutoff), or skip this baseline.",
            )
        # Identical (x, t_x, T) rows contribute identically: fit on the unique rows, weighted.
        scale = float(T_arr.max()) / _FIT_TIME_SCALE if T_arr.max() > 0 else 1.0
        rows, counts = np.unique(
            np.column_stack([x, t_x / scale, T_arr / scale]), axis=0, return_counts=True
        )
        ux, utx, uT = rows[:, 0], rows[:, 1], rows[:, 2]
        weights = counts / counts.sum()
        penalizer = float(self.penalizer)

        def objective(theta: FloatArray) -> tuple[float, FloatArray]:
            value, grad = _mean_ll_and_grad(theta, ux, utx, uT, weights)
            return -value + penalizer * float(theta @ theta), -grad + 2.0 * penalizer * theta

        res = minimize(
            objective,
            np.zeros(4),  # r = alpha = a = b = 1 on the rescaled time axis
            jac=True,
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * 4,
            options={"maxiter": int(self.max_iter), "ftol": 1e-13, "gtol": 1e-8},
        )
        # A line-search stop with a vanishing gradient is float round-off at the optimum,
        # not a failure (tolerances are tight on purpose).
        converged = bool(res.success) or (
            res.nit < int(self.max_iter) and float(np.max(np.abs(res.jac))) < _GRAD_TOL
        )
        if not converged:
            warnings.warn(
                f"BG/NBD fit did not converge after {res.nit} iterations ({res.message}); "
                "try a larger max_iter or a small penalizer.",
                ConvergenceWarning,
                stacklevel=2,
            )
        r, alpha_scaled, a, b = (float(v) for v in np.exp(res.x))
        self.params_ = {"r": r, "alpha": alpha_scaled * scale, "a": a, "b": b}
        self.log_likelihood_ = float(
            _log_likelihood(x, t_x, T_arr, r, alpha_scaled * scale, a, b).sum()
        )
        self.n_customers_ = len(x)
        self.n_iter_ = int(res.nit)
        self.converged_ = converged
        return self

    def _params(self) -> tuple[float, float, float, float]:
        if not hasattr(self, "params_"):
            raise NotFittedError(
                "This BGNBD instance is not fitted yet: call fit(frequency, recency, T) first."
            )
        p = self.params_
        return p["r"], p["alpha"], p["a"], p["b"]

    # -- predictions ----------------------------------------------------------------
    def log_likelihood(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """Per-customer log-likelihood at the fitted parameters (e.g. to score a holdout)."""
        r, alpha, a, b = self._params()
        return bgnbd_log_likelihood(frequency, recency, T, r=r, alpha=alpha, a=a, b=b)

    def prob_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(alive at T | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).

        A customer with no repeat purchase is alive for sure: in BG/NBD drop-out happens
        only right after a repeat purchase.
        """
        r, alpha, a, b = self._params()
        x, t_x, T_arr = _validate_rfm(frequency, recency, T)
        return np.asarray(expit(-_log_odds_dead(x, t_x, T_arr, r, alpha, a, b)), dtype=float)

    def prob_no_purchase(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(no purchase in (T, T+t] | history) = (1 - P_alive) + P_alive ((alpha+T)/(alpha+T+t))^(r+x).

        Exact: a customer alive at T has ``lambda | history ~ Gamma(r+x, alpha+T)`` and the
        mean of exp(-lambda t) over it is the power term; with no purchase in the window
        there is no drop-out opportunity, so "alive at T" stays the right condition. This
        is the churn probability of the "no order within the horizon" definition.
        """
        r, alpha, a, b = self._params()
        x, t_x, T_arr = _validate_rfm(frequency, recency, T)
        t_arr = _validate_t(t)
        log_odds = _log_odds_dead(x, t_x, T_arr, r, alpha, a, b)
        p_alive = expit(-log_odds)
        p_dead = expit(log_odds)
        log_silent = (r + x) * (np.log(alpha + T_arr) - np.log(alpha + T_arr + t_arr))
        return np.asarray(p_dead + p_alive * np.exp(log_silent), dtype=float)

    def prob_purchase_within(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(at least one purchase in (T, T+t] | history); non-decreasing in ``t``."""
        return 1.0 - self.prob_no_purchase(t, frequency, recency, T)

    def expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[purchases in (T, T+t] | x, t_x, T], Fader et al. (2005) eq. 10.

        = P_alive * (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x)
                                          * 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
        i.e. P(alive) times the unconditional expectation of a fresh customer whose
        parameters are the posterior ones (r+x, alpha+T, a, b+x).
        """
        r, alpha, a, b = self._params()
        x, t_x, T_arr = _validate_rfm(frequency, recency, T)
        t_arr = _validate_t(t)
        if np.isclose(a, 1.0):
            raise ModelError(
                f"expected_purchases is undefined for a = 1 (fitted a = {a:.6g}).",
                "Refit with a small penalizer.",
            )
        p_alive = expit(-_log_odds_dead(x, t_x, T_arr, r, alpha, a, b))
        z = t_arr / (alpha + T_arr + t_arr)
        # Euler's transformation 2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z) turns
        # ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z), an underflow times an
        # overflow for heavy buyers, into (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z),
        # whose parameters do not grow with x.
        bracket = 1.0 - (1.0 - z) ** (a - 1.0) * hyp2f1(
            a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z
        )
        return np.asarray(p_alive * (a + b + x - 1.0) / (a - 1.0) * bracket, dtype=float)


# -- RFM summary from an orders table ---------------------------------------------------
RFM_COLUMNS = ("frequency", "recency", "T", "monetary", "n_orders", "first_date", "last_date")


def rfm_summary(
    orders: pd.DataFrame, as_of: pd.Timestamp, *, unit_days: float = 7.0
) -> pd.DataFrame:
    """The (frequency, recency, T) summary BG/NBD needs, from orders dated before ``as_of``.

    - A *transaction* is an account-day with at least one order line that is not a credit
      (amount >= 0): several lines on one day are one purchase occasion (the model counts
      occasions, not lines), and credits/returns (negative amounts) are not purchases, so
      they neither start nor extend a purchase history. Zero-priced lines (free goods,
      e.g. 80 lines in CDNOW) do count: they are orders.
    - frequency = transactions after the first; recency = first to last transaction;
      T = first transaction to ``as_of``; recency and T in units of ``unit_days`` days
      (7: weeks, the scale the model is usually fitted on).
    - monetary = mean value (sum of its non-credit lines) of the *repeat* transactions, NaN for
      accounts without one (the first purchase is often atypical: Fader & Hardie).
    - n_orders = distinct ``order_id`` when the column exists, else purchase lines.

    Accounts with no purchase before ``as_of`` are absent from the result (index
    ``account_id``, sorted).
    """
    missing = [c for c in ("account_id", "order_date", "amount") if c not in orders.columns]
    if missing:
        raise ValueError(f"orders is missing required column(s) {missing}.")
    if not pd.api.types.is_datetime64_any_dtype(orders["order_date"]):
        raise ValueError(
            f"orders.order_date must be datetime64; got dtype {orders['order_date'].dtype}."
        )
    if not unit_days > 0:
        raise ValueError(f"unit_days must be > 0; got {unit_days!r}.")
    as_of = pd.Timestamp(as_of)
    unit_seconds = float(unit_days) * 86_400.0

    keep = (orders["order_date"] < as_of) & is_purchase(orders["amount"])  # the one rule
    cols = ["account_id", "order_date", "amount"]
    has_id = "order_id" in orders.columns
    past = orders.loc[keep, [*cols, "order_id"] if has_id else cols]
    past = past.assign(order_date=past["order_date"].dt.normalize())

    per_account = past.groupby("account_id", sort=True)
    n_orders = per_account["order_id"].nunique() if has_id else per_account.size()
    days = past.groupby(["account_id", "order_date"], sort=True)["amount"].sum().reset_index()
    g = days.groupby("account_id", sort=True)
    first = g["order_date"].min()
    last = g["order_date"].max()
    frequency = g.size() - 1
    repeat_value = g["amount"].sum() - g["amount"].first()
    out = pd.DataFrame(
        {
            "frequency": frequency.astype("int64"),
            "recency": (last - first).dt.total_seconds() / unit_seconds,
            "T": (as_of - first).dt.total_seconds() / unit_seconds,
            "monetary": (repeat_value / frequency.where(frequency > 0)).astype("float64"),
            "n_orders": n_orders.reindex(first.index).astype("int64"),
            "first_date": first,
            "last_date": last,
        }
    )
    out.index.name = "account_id"
    return out
