"""The churn model: a LightGBM booster plus an out-of-time probability calibrator.

The booster is fitted on the training snapshots with early stopping on a later, purged
validation block; the calibrator (isotonic or Platt, whichever has the lower
cross-validated Brier score on the calibration snapshots) is fitted on a later fold still,
never on rows the booster saw. Predictions are calibrated P(churn within the horizon).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from ka_ml.errors import ModelError
from ka_ml.modeling.lgb_utils import (
    MAX_ROUNDS,
    align_frame,
    base_params,
    category_levels,
    sigmoid,
)


def _check_two_classes(y: np.ndarray, where: str) -> None:
    n_pos = int(np.sum(y == 1))
    if n_pos == 0 or n_pos == len(y):
        kind = "no churners" if n_pos == 0 else "only churners"
        raise ModelError(
            f"The {where} rows contain {kind} ({len(y)} rows): a churn model cannot be fitted "
            "or calibrated.",
            "use a longer history, a different labels.churn_definition, or check that the "
            "data's dates cover the churn horizon.",
        )


@dataclass
class Calibrator:
    """Maps raw booster margins to calibrated probabilities."""

    method: Literal["isotonic", "sigmoid"] = "sigmoid"
    model_: Any = None
    cv_brier_: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def _fit_one(method: str, margin: np.ndarray, y: np.ndarray) -> Any:
        if method == "isotonic":
            return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(margin, y)
        return LogisticRegression(C=1e6).fit(margin.reshape(-1, 1), y)

    @staticmethod
    def _apply(model: Any, margin: np.ndarray) -> np.ndarray:
        if isinstance(model, IsotonicRegression):
            return np.clip(model.predict(margin), 1e-4, 1 - 1e-4)
        return model.predict_proba(margin.reshape(-1, 1))[:, 1]

    @classmethod
    def choose(cls, margin: np.ndarray, y: np.ndarray, seed: int) -> Calibrator:
        """Pick isotonic or Platt by 5-fold CV Brier on the calibration rows, then refit."""
        _check_two_classes(y, "calibration")
        smaller = int(min(np.bincount(y.astype(int))))
        if smaller < 2:
            kind = "churner" if int(np.sum(y == 1)) == smaller else "non-churner"
            raise ModelError(
                f"The calibration rows contain a single {kind} ({len(y)} rows): too few to "
                "choose and fit a calibration by cross-validation.",
                "use a longer history or raise tuning.calibration_snapshots.",
            )
        folds = StratifiedKFold(
            n_splits=min(5, smaller),
            shuffle=True,
            random_state=seed,
        )
        scores: dict[str, float] = {}
        for method in ("sigmoid", "isotonic"):
            errs = []
            for tr, va in folds.split(margin, y):
                m = cls._fit_one(method, margin[tr], y[tr])
                errs.append(np.mean((cls._apply(m, margin[va]) - y[va]) ** 2))
            scores[method] = float(np.mean(errs))
        best: Literal["isotonic", "sigmoid"] = (
            "isotonic" if scores["isotonic"] < scores["sigmoid"] else "sigmoid"
        )
        return cls(method=best, model_=cls._fit_one(best, margin, y), cv_brier_=scores)

    def transform(self, margin: np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise ModelError("Calibrator is not fitted.", "call Calibrator.choose first.")
        return self._apply(self.model_, np.asarray(margin, dtype=float))


@dataclass
class ChurnModel:
    """LightGBM churn classifier with a separate out-of-time calibrator."""

    params: dict[str, Any]
    seed: int = 42
    features_: list[str] = field(default_factory=list)
    categories_: dict[str, list[str]] = field(default_factory=dict)
    booster_: lgb.Booster | None = None
    calibrator_: Calibrator | None = None
    best_iteration_: int = 0
    # training reference for input-drift checks (ka_ml.monitoring.drift), set by train
    reference_profile_: dict[str, Any] | None = None

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        *,
        X_valid: pd.DataFrame | None = None,
        y_valid: np.ndarray | None = None,
        num_boost_round: int | None = None,
    ) -> ChurnModel:
        """Fit the booster; early-stop on ``X_valid`` when given, else ``num_boost_round``."""
        y = np.asarray(y, dtype=float)
        _check_two_classes(y, "training")
        self.features_ = list(X.columns)
        self.categories_ = category_levels(X, self.features_)
        Xa = align_frame(X, self.features_, self.categories_)
        params = {**base_params(self.seed), **self.params, "objective": "binary"}
        train = lgb.Dataset(Xa, y, free_raw_data=False)
        callbacks: list[Callable[..., Any]] = []
        valid_sets: list[lgb.Dataset] = []
        if X_valid is not None and y_valid is not None:
            Xv = align_frame(X_valid, self.features_, self.categories_)
            valid_sets = [lgb.Dataset(Xv, np.asarray(y_valid, float), reference=train)]
            callbacks = [lgb.early_stopping(50, verbose=False)]
        rounds = num_boost_round or MAX_ROUNDS
        self.booster_ = lgb.train(
            params, train, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks
        )
        self.best_iteration_ = int(self.booster_.best_iteration or rounds)
        return self

    def _check(self) -> lgb.Booster:
        if self.booster_ is None:
            raise ModelError("ChurnModel is not fitted.", "call fit() first.")
        return self.booster_

    def aligned(self, X: pd.DataFrame) -> pd.DataFrame:
        return align_frame(X, self.features_, self.categories_)

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """Raw log-odds of the booster (what SHAP values add up to)."""
        b = self._check()
        return np.asarray(
            b.predict(self.aligned(X), raw_score=True, num_iteration=self.best_iteration_)
        )

    def calibrate(self, X: pd.DataFrame, y: np.ndarray) -> ChurnModel:
        self.calibrator_ = Calibrator.choose(self.margin(X), np.asarray(y, float), self.seed)
        return self

    def predict_uncalibrated(self, X: pd.DataFrame) -> np.ndarray:
        return sigmoid(self.margin(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated P(churn); uncalibrated booster output if no calibrator was fitted."""
        m = self.margin(X)
        return self.calibrator_.transform(m) if self.calibrator_ else sigmoid(m)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Exact TreeSHAP values in log-odds (n x (features + 1), last column = base value)."""
        b = self._check()
        out = b.predict(self.aligned(X), pred_contrib=True, num_iteration=self.best_iteration_)
        return np.asarray(out)

    def feature_importance(self) -> pd.Series:
        b = self._check()
        return pd.Series(
            b.feature_importance(importance_type="gain"), index=self.features_
        ).sort_values(ascending=False)
