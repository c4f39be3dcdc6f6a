"""A logistic churn scorer on the same feature frame as the trees, with exact contributions.

Trees cannot extrapolate: a customer cohort that is older at scoring time than in any
training snapshot gets the score of the oldest leaf. A logistic model on signed-log
features extrapolates smoothly, and on real data (CDNOW) blending the two in log-odds
ranked better than either on the pre-cutoff validation origins
(``ka_ml/bench/results/ablation.md``). Its contributions are exact: the log-odds is
``intercept + sum_j coef_j * z_j``, so feature ``f``'s contribution is the sum of
``coef_j * (z_j - mean z_j)`` over the terms ``j`` built from ``f`` (its value and its
missing flag), and the base value is the log-odds at the training means.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

MAX_ROWS = 60_000


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


class LinearChurn(BaseEstimator):
    """Standardised L1 logistic regression on signed log1p(feature) and a missing flag each.

    Categorical columns are left out (they contribute 0); numeric ones enter as
    ``sign(x) log(1 + |x|)`` (counts, money and days are skewed) with missing values at 0
    plus a 0/1 missing flag.

    ``penalty``: the L1 penalty per training row, C = 1 / (penalty x rows), so the strength
    does not change with the number of snapshot rows (chosen on the CDNOW validation
    origins). ``random_state`` seeds the row sample and the saga solver. Fitted:
    ``features_``, ``terms_`` ((feature, "value"|"missing") per design column), ``mean_``,
    ``scale_``, ``coef_`` (on the unscaled design) and ``intercept_``.
    """

    def __init__(self, *, penalty: float = 0.003, random_state: int = 0) -> None:
        self.penalty = penalty
        self.random_state = random_state

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        cols = []
        for feature, part in self.terms_:
            v = pd.to_numeric(X[feature], errors="coerce").to_numpy(np.float64)
            cols.append(
                np.isnan(v).astype(np.float64)
                if part == "missing"
                else _signed_log(np.nan_to_num(v))
            )
        return np.column_stack(cols) if cols else np.zeros((len(X), 0))

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LinearChurn:
        """Fit on at most ``MAX_ROWS`` rows drawn at random (a few dozen coefficients need no
        more; the saga solver's time grows with the rows)."""
        y = np.asarray(y, int)
        seed = self.random_state
        if len(X) > MAX_ROWS:
            keep = np.sort(np.random.default_rng(seed).choice(len(X), MAX_ROWS, replace=False))
            X, y = X.iloc[keep], y[keep]
        self.features_ = list(X.columns)
        numeric = [c for c in self.features_ if pd.api.types.is_numeric_dtype(X[c].dtype)]
        self.terms_ = [(c, "value") for c in numeric]
        self.terms_ += [(c, "missing") for c in numeric if X[c].isna().any()]
        Z = self._design(X)
        self.mean_ = Z.mean(axis=0)
        sd = Z.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        lr = LogisticRegression(
            C=1.0 / (self.penalty * len(Z)),
            l1_ratio=1.0,
            solver="saga",
            max_iter=500,
            tol=1e-3,
            random_state=seed,
        )
        lr.fit((Z - self.mean_) / self.scale_, y)
        # back to the unscaled design: margin = intercept + coef @ (z - mean)
        self.coef_ = lr.coef_[0] / self.scale_
        self.intercept_ = float(lr.intercept_[0])
        return self

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return self.intercept_ + (self._design(X) - self.mean_) @ self.coef_

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """(n x (features + 1)) log-odds contributions; the last column is the base value."""
        check_is_fitted(self, "coef_")
        per_term = (self._design(X) - self.mean_) * self.coef_
        out = np.zeros((len(X), len(self.features_) + 1))
        index = {f: i for i, f in enumerate(self.features_)}
        for j, (feature, _) in enumerate(self.terms_):
            out[:, index[feature]] += per_term[:, j]
        out[:, -1] = self.intercept_
        return out
