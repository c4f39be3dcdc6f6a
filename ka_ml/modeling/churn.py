"""The churn model: a LightGBM booster, optionally blended with a logistic model, plus a
probability calibrator.

The booster is fitted with early stopping on an account-grouped hold-out, then refitted
on every training row; the optional logistic part (``ka_ml.modeling.linear``) is blended
in log-odds with weight ``1 - blend_weight_``. Training chooses the family (trees, blend
or logistic) and the calibration (none, Platt or isotonic) on rolling out-of-time origins
(``ka_ml.training``); predictions are P(churn within the horizon).
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
from ka_ml.modeling.linear import LinearChurn


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

    method: Literal["none", "isotonic", "sigmoid"] = "sigmoid"
    model_: Any = None
    cv_brier_: dict[str, float] = field(default_factory=dict)
    # cross-fitted probabilities of the chosen method on the rows it was chosen on
    # (reported as the out-of-time estimate; dropped before the model is stored)
    crossfit_: np.ndarray | None = field(default=None, repr=False)

    @staticmethod
    def _fit_one(method: str, margin: np.ndarray, y: np.ndarray) -> Any:
        if method == "none":
            return "none"
        if method == "isotonic":
            return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(margin, y)
        return LogisticRegression(C=1e6).fit(margin.reshape(-1, 1), y)

    @staticmethod
    def _apply(model: Any, margin: np.ndarray) -> np.ndarray:
        if isinstance(model, str):  # "none": the model's own probability
            return sigmoid(margin)
        if isinstance(model, IsotonicRegression):
            return np.clip(model.predict(margin), 1e-4, 1 - 1e-4)
        return model.predict_proba(margin.reshape(-1, 1))[:, 1]

    @classmethod
    def choose(
        cls,
        margin: np.ndarray,
        y: np.ndarray,
        seed: int,
        groups: np.ndarray | None = None,
        *,
        min_gain: float = 0.005,
        max_auc_loss: float = 1e-3,
    ) -> Calibrator:
        """None, Platt or isotonic, by out-of-sample Brier on out-of-time predictions.

        ``margin`` are log-odds the models gave rows they had not seen. With ``groups``
        (training passes the test origins' dates) the check runs forward in time: a map
        fitted on the earlier origins is judged on the next one, as the final model's map
        was fitted on origins older than the rows it will score. Without groups,
        stratified folds of rows. Too little to judge leaves "none". "none" (the model's
        own probability) stays unless a method lowers the Brier score by the share
        ``min_gain`` (0.5%: less is noise) and, for isotonic (whose steps tie accounts),
        keeps the ROC AUC within ``max_auc_loss``. The winner is refitted on every row.
        """
        from ka_ml.modeling import metrics as M

        _check_two_classes(y, "calibration")
        splits = cls.splits(margin, y, seed, groups)
        if not splits:
            return cls(method="none", model_="none", cv_brier_={})
        judged = np.concatenate([va for _, va in splits])
        scores: dict[str, float] = {}
        aucs: dict[str, float] = {}
        for method in ("none", "sigmoid", "isotonic"):
            p = cls.cross_fit(method, margin, y, splits)[judged]
            scores[method] = float(np.mean((p - y[judged]) ** 2))
            aucs[method] = M.roc_auc(y[judged], p)
        best: Literal["none", "isotonic", "sigmoid"] = "none"
        for method in ("sigmoid", "isotonic"):
            better = scores[method] < scores[best] * (1 - min_gain)
            ranks = method == "sigmoid" or aucs[method] >= aucs["none"] - max_auc_loss
            if better and ranks:
                best = method  # type: ignore[assignment]
        out = cls(
            method=best,
            model_=cls._fit_one(best, margin, y),
            cv_brier_=scores | {f"auc_{k}": v for k, v in aucs.items()},
        )
        out.crossfit_ = cls.judged_probabilities(best, margin, y, splits)
        return out

    @classmethod
    def judged_probabilities(
        cls, method: str, margin: np.ndarray, y: np.ndarray, splits: list[tuple[Any, Any]]
    ) -> np.ndarray:
        """Every row's probability under ``method``: out of sample where a split judges it,
        else (the earliest origin) the map fitted on every row."""
        p = cls._apply(cls._fit_one(method, margin, y), margin)
        judged = np.concatenate([va for _, va in splits]) if splits else np.zeros(0, int)
        p[judged] = cls.cross_fit(method, margin, y, splits)[judged]
        return p

    @staticmethod
    def splits(
        margin: np.ndarray, y: np.ndarray, seed: int, groups: np.ndarray | None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(fit rows, judged rows): forward over ordered groups, else stratified K-fold."""
        if groups is not None:
            g = np.asarray(groups)
            order = np.unique(g)
            out = []
            for k in range(1, len(order)):
                tr, va = np.flatnonzero(g < order[k]), np.flatnonzero(g == order[k])
                if len(np.unique(y[tr])) == 2:
                    out.append((tr, va))
            return out
        smaller = int(min(np.bincount(y.astype(int), minlength=2)))
        if min(5, smaller) < 2:
            return []
        folds = StratifiedKFold(n_splits=min(5, smaller), shuffle=True, random_state=seed)
        return [(tr, va) for tr, va in folds.split(margin, y)]

    @classmethod
    def cross_fit(
        cls, method: str, margin: np.ndarray, y: np.ndarray, splits: list[tuple[Any, Any]]
    ) -> np.ndarray:
        """Probabilities of ``method`` on each split's judged rows, fitted on its fit rows
        (NaN on rows no split judges)."""
        p = np.full(len(y), np.nan)
        for tr, va in splits:
            p[va] = cls._apply(cls._fit_one(method, margin[tr], y[tr]), margin[va])
        return p

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
    # logistic part and the weight of the trees in the log-odds blend (1 = trees only)
    linear_: LinearChurn | None = None
    blend_weight_: float = 1.0
    family_: str = "lightgbm"
    # what training measured (family, out-of-time figures beside the best baseline), set
    # by train: it travels with the model to the scorer's run record and report
    card_: dict[str, Any] | None = None
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

    def fit_grouped(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        groups: np.ndarray,
        *,
        holdout: float = 0.2,
        refit: bool = True,
    ) -> ChurnModel:
        """Early stopping on a hold-out of whole accounts, then a refit on every row
        (``refit=False`` keeps the early-stopped booster: tuning only compares settings).

        Rows of one account never sit on both sides of the hold-out, so the number of
        trees is chosen on accounts the booster has not seen (not on their other snapshots).
        """
        from sklearn.model_selection import GroupShuffleSplit

        y = np.asarray(y, dtype=float)
        split = GroupShuffleSplit(n_splits=1, test_size=holdout, random_state=self.seed)
        tr, va = next(split.split(X, y, groups))
        if len(set(y[va])) < 2 or len(set(y[tr])) < 2:
            return self.fit(X, y, num_boost_round=200)
        rounds = self.fit(X.iloc[tr], y[tr], X_valid=X.iloc[va], y_valid=y[va]).best_iteration_
        return self.fit(X, y, num_boost_round=max(rounds, 10)) if refit else self

    def fit_linear(self, X: pd.DataFrame, y: np.ndarray) -> ChurnModel:
        """Fit the logistic part on the same rows (blended by ``set_family``)."""
        self.linear_ = LinearChurn().fit(self.aligned(X), np.asarray(y, int), seed=self.seed)
        return self

    def set_family(self, family: str) -> ChurnModel:
        """``lightgbm`` (trees only), ``blend`` (equal log-odds weights) or ``logistic``."""
        weights = {"lightgbm": 1.0, "blend": 0.5, "logistic": 0.0}
        if family not in weights:
            raise ModelError(f"Unknown model family {family!r}.", f"use one of {list(weights)}.")
        if family != "lightgbm" and self.linear_ is None:
            raise ModelError("The logistic part is not fitted.", "call fit_linear() first.")
        self.family_, self.blend_weight_ = family, weights[family]
        return self

    def tree_margin(self, X: pd.DataFrame) -> np.ndarray:
        b = self._check()
        return np.asarray(
            b.predict(self.aligned(X), raw_score=True, num_iteration=self.best_iteration_)
        )

    def _check(self) -> lgb.Booster:
        if self.booster_ is None:
            raise ModelError("ChurnModel is not fitted.", "call fit() first.")
        return self.booster_

    def aligned(self, X: pd.DataFrame) -> pd.DataFrame:
        return align_frame(X, self.features_, self.categories_)

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of the model before calibration (what the contributions add up to)."""
        w = self.blend_weight_
        if self.linear_ is None or w >= 1.0:
            return self.tree_margin(X)
        linear = self.linear_.margin(self.aligned(X))  # aligned: missing features named
        return linear if w <= 0.0 else w * self.tree_margin(X) + (1 - w) * linear

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
        """Exact contributions in log-odds (n x (features + 1), last column = base value).

        TreeSHAP for the trees, exact linear terms for the logistic part, weighted as in
        the blend: every row adds up to :meth:`margin`.
        """
        w = self.blend_weight_
        linear = (
            None
            if self.linear_ is None or w >= 1.0
            else self.linear_.contributions(self.aligned(X))
        )
        if linear is not None and w <= 0.0:
            return linear
        b = self._check()
        out = b.predict(self.aligned(X), pred_contrib=True, num_iteration=self.best_iteration_)
        trees = np.asarray(out)
        return trees if linear is None else w * trees + (1 - w) * linear

    def feature_importance(self) -> pd.Series:
        b = self._check()
        return pd.Series(
            b.feature_importance(importance_type="gain"), index=self.features_
        ).sort_values(ascending=False)
