"""The churn model: a LightGBM booster, optionally blended with a logistic model, plus a
probability calibrator.

The booster is fitted with early stopping on an account-grouped hold-out, then refitted
on every training row; the optional logistic part (``ka_ml.modeling.linear``) is blended
in log-odds with weight ``1 - blend_weight_``. Training chooses the family (trees, blend
or logistic) and the calibration (none, Platt or isotonic) on rolling out-of-time origins
(``ka_ml.training``); predictions are P(churn within the horizon).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupShuffleSplit, StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from ka_ml.errors import ModelError
from ka_ml.modeling import metrics as M
from ka_ml.modeling.feature_frame import align_frame, as_frame, category_levels
from ka_ml.modeling.lightgbm_params import base_params, default_params, train_booster
from ka_ml.modeling.linear import LinearChurn
from ka_ml.modeling.treeshap import tree_contributions

FAMILY_WEIGHTS = {"lightgbm": 1.0, "blend": 0.5, "logistic": 0.0}


@dataclass(frozen=True)
class ProbeData:
    """A booster's training rows as LightGBM Datasets (:meth:`ChurnModel.probe_data`):
    the column layout they were aligned to, the training and early-stopping sets, and the
    trees to fit when there is no early stopping (None: ``MAX_ROUNDS``)."""

    features: list[str]
    categories: dict[str, list[str]]
    train: lgb.Dataset
    valid: lgb.Dataset | None
    rounds: int | None


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Log-odds to probability: the model's own probability, before any calibration."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def legacy_state_error(kind: str) -> ModelError:
    """A model pickled before the models became scikit-learn estimators (their fitted state
    used other names): refused with the remedy, never half-loaded."""
    return ModelError(
        f"This {kind} model was saved by an older ka_ml (before the models became "
        "scikit-learn estimators) and cannot be loaded by this version.",
        "retrain with `ka-ml train` (it registers a new version and promotes it when no "
        "comparable champion can be loaded), or promote a newer registered version with "
        "`ka-ml promote NAME VERSION` (`ka-ml models` lists them).",
    )


def churn_labels(X: Any, y: Any, who: str) -> np.ndarray:
    """``y`` as floats 0/1 after scikit-learn's checks of a classification target (given,
    finite, 1-D, one per row of ``X``, discrete), refusing labels other than 0 and 1."""
    if y is None:
        raise ValueError(f"{who} requires y to be passed, but the target y is None.")
    y = column_or_1d(check_array(y, ensure_2d=False, dtype=None, input_name="y"), warn=True)
    check_consistent_length(X, y)
    check_classification_targets(y)
    labels = np.unique(y)
    if not set(labels.tolist()) <= {0, 1}:
        raise ValueError(
            f"Only binary classification is supported. {who} takes the labels 0 and 1 "
            f"(1 = churn); got {labels[:5].tolist()}."
        )
    return np.asarray(y, dtype=float)


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


# Calibrator.choose's rule: a method must lower the out-of-sample Brier by this share of
# none's (less is noise), and isotonic (whose steps tie accounts) may lose at most this
# much ROC AUC; `train`'s console says which rule kept "none"
CALIBRATION_MIN_GAIN = 0.005
CALIBRATION_MAX_AUC_LOSS = 1e-3


def calibration_passed_over(
    method: str,
    brier: float,
    brier_best: float,
    auc: float,
    auc_none: float,
    *,
    min_gain: float = CALIBRATION_MIN_GAIN,
    max_auc_loss: float = CALIBRATION_MAX_AUC_LOSS,
) -> Literal["", "gain", "ties"]:
    """Why :meth:`Calibrator.choose` does not take ``method`` over the best so far: "gain"
    (its cross-fitted Brier is not ``min_gain`` of ``brier_best`` lower), "ties" (isotonic
    losing more than ``max_auc_loss`` of the uncalibrated ROC AUC); "" when it takes it."""
    if not brier < brier_best * (1 - min_gain):
        return "gain"
    if method == "isotonic" and not auc >= auc_none - max_auc_loss:
        return "ties"
    return ""


@dataclass
class Calibrator:
    """Maps raw booster margins to calibrated probabilities.

    The maps are scikit-learn's: ``IsotonicRegression`` and, for Platt scaling, a
    ``LogisticRegression`` on the margin (``C=1e6``: practically unpenalised). Not
    ``sklearn.calibration._SigmoidCalibration``: it fits Platt's smoothed targets
    ((n+ + 1) / (n+ + 2) for positives) with its own optimiser, which moves the
    probabilities by up to ~1e-3 on the same margins, and the package's outputs are kept
    identical. Not ``CalibratedClassifierCV(FrozenEstimator(model))`` either: the margins
    a map is fitted on come from a different model per test origin (each fitted on its own
    past), and the choice judges each map forward in time on origins it did not see, while
    ``CalibratedClassifierCV`` calibrates one estimator's own outputs on folds of rows.
    Not an estimator itself: it is built by :meth:`choose` (which also refits the winner)
    and its state is the chosen ``method``, the fitted map ``model_``, the forward-judged
    scores ``cv_brier_`` and the cross-fitted probabilities ``crossfit_``.
    """

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
        min_gain: float = CALIBRATION_MIN_GAIN,
        max_auc_loss: float = CALIBRATION_MAX_AUC_LOSS,
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
            why_not = calibration_passed_over(
                method,
                scores[method],
                scores[best],
                aucs[method],
                aucs["none"],
                min_gain=min_gain,
                max_auc_loss=max_auc_loss,
            )
            if not why_not:
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


class ChurnModel(ClassifierMixin, BaseEstimator):
    """LightGBM churn classifier, optionally blended with a logistic part, with a separate
    out-of-time calibrator; a scikit-learn classifier of the labels 0 and 1 (1 = churn).

    Hyperparameters are one ``params`` mapping of LightGBM settings (None: the package's
    defaults) beside ``random_state``, not one keyword each: the defaults, the Optuna
    search space and the tuned results are LightGBM parameter mappings shared with the
    timing model and logged as such, and any LightGBM setting (``scale_pos_weight``, ...)
    can be passed without this class repeating LightGBM's parameter list. ``holdout`` and
    ``refit`` govern :meth:`fit` with ``groups``: early stopping on a hold-out of that share
    of whole accounts, then (``refit``) a refit on every row with the rounds found.

    Fitted: ``classes_``, ``features_``, ``categories_`` (training levels of the
    categorical features), ``booster_``, ``best_iteration_``, ``linear_`` (after
    :meth:`fit_linear`), ``family_`` and ``blend_weight_`` (the weight of the trees in the
    log-odds blend; :meth:`set_family`), ``calibrator_``, and what training attaches
    (:meth:`attach`): ``card_`` (what training measured; it travels with the model to the
    scorer's run record and report), ``reference_profile_`` (the training reference of
    the input-drift checks, :mod:`ka_ml.monitoring.drift`) and ``reason_reference_`` (the
    mean log-odds contribution of each feature over the accounts that get a light, the
    point the reasons are measured from: :func:`ka_ml.scoring.explain.reason_reference`)
    with ``reason_typical_`` (that typical account's window counts and spends, said beside
    them: :func:`ka_ml.scoring.explain.reason_typical`).
    """

    def __init__(
        self,
        *,
        params: Mapping[str, Any] | None = None,
        random_state: int = 42,
        holdout: float = 0.2,
        refit: bool = True,
    ) -> None:
        self.params = params
        self.random_state = random_state
        self.holdout = holdout
        self.refit = refit

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "random_state" not in state:  # pickled as the old dataclass (params, seed, ...)
            raise legacy_state_error("churn")
        super().__setstate__(state)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # LightGBM's missing branch; the features have gaps
        tags.classifier_tags.multi_class = False  # churn or not
        return tags

    def fit(
        self,
        X: pd.DataFrame,
        y: Any,
        groups: Any = None,
        *,
        eval_set: tuple[pd.DataFrame, Any] | None = None,
        num_boost_round: int | None = None,
    ) -> ChurnModel:
        """Fit the booster (the logistic part and the calibrator come after, see
        :meth:`fit_linear`, :meth:`attach`).

        With ``groups`` (account ids): early stopping on a hold-out of whole accounts, so
        the number of trees is chosen on accounts the booster has not seen (not on their
        other snapshots), then a refit on every row (``refit=False`` keeps the early-stopped
        booster: tuning only compares settings); a hold-out or rest with one class gets 200
        trees. With ``eval_set=(X_valid, y_valid)``: early stopping on it. Otherwise
        ``num_boost_round`` trees (default ``MAX_ROUNDS``).
        """
        X, y = self._start(X, y)
        if groups is None:
            return self._fit_booster(X, y, eval_set, num_boost_round)
        data = self._probe_data(X, y, np.asarray(groups))
        self._train(data)
        if data.valid is None or not self.refit:
            return self
        return self._fit_booster(X, y, None, max(self.best_iteration_, 10))

    def probe_data(self, X: pd.DataFrame, y: Any, groups: Any) -> ProbeData:
        """The early-stopping probe of ``fit(X, y, groups)`` binned once, for fits that
        differ only in booster settings (tuning trials on the same rows):
        ``ChurnModel(params=p, refit=False).fit_probe(data)`` is the same booster as
        ``ChurnModel(params=p, refit=False).fit(X, y, groups)``, without binning the rows
        again."""
        X, y = self._start(X, y)
        return self._probe_data(X, y, np.asarray(groups), shared=True)

    def fit_probe(self, data: ProbeData) -> ChurnModel:
        """The early-stopped booster on :meth:`probe_data`'s rows (no refit)."""
        self._reset(len(data.features))
        return self._train(data)

    def _start(self, X: Any, y: Any) -> tuple[pd.DataFrame, np.ndarray]:
        X = as_frame(X, None, type(self).__name__)
        y = churn_labels(X, y, type(self).__name__)
        _check_two_classes(y, "training")
        self._reset(X.shape[1])
        return X, y

    def _reset(self, n_features: int) -> None:
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = n_features
        self.linear_: LinearChurn | None = None
        self.blend_weight_, self.family_ = 1.0, "lightgbm"
        self.calibrator_: Calibrator | None = None
        self.card_: dict[str, Any] | None = None
        self.reference_profile_: dict[str, Any] | None = None
        self.reason_reference_: np.ndarray | None = None
        self.reason_typical_: dict[str, float] | None = None

    def _probe_data(
        self, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, *, shared: bool = False
    ) -> ProbeData:
        """Early stopping on a hold-out of whole accounts; a hold-out or rest with one
        class gets 200 trees on every row (``valid`` None)."""
        split = GroupShuffleSplit(
            n_splits=1, test_size=self.holdout, random_state=self.random_state
        )
        tr, va = next(split.split(X, y, groups))
        if len(set(y[va])) < 2 or len(set(y[tr])) < 2:
            return self._data(X, y, None, 200, shared)
        return self._data(X.iloc[tr], y[tr], (X.iloc[va], y[va]), None, shared)

    def _data(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        eval_set: tuple[pd.DataFrame, Any] | None,
        rounds: int | None,
        shared: bool = False,
    ) -> ProbeData:
        features = list(X.columns)
        categories = category_levels(X, features)
        # binned once here when shared, with the settings lgb.train would bin with (the seed
        # draws the rows the bin edges are taken from); the frames are dropped once binned
        params = self._booster_params() if shared else None
        train = lgb.Dataset(
            align_frame(X, features, categories), y, params=params, free_raw_data=shared
        )
        valid = None
        if eval_set is not None:
            Xv = align_frame(as_frame(eval_set[0], None, "eval_set"), features, categories)
            valid = lgb.Dataset(Xv, np.asarray(eval_set[1], float), params=params, reference=train)
        data = ProbeData(features, categories, train, valid, rounds)
        if shared:  # bin now, so every fit on it skips the frames
            train.construct()
            if valid is not None:
                valid.construct()
        return data

    def _fit_booster(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        eval_set: tuple[pd.DataFrame, Any] | None,
        num_boost_round: int | None,
    ) -> ChurnModel:
        return self._train(self._data(X, y, eval_set, num_boost_round))

    def _train(self, data: ProbeData) -> ChurnModel:
        self.features_, self.categories_ = list(data.features), dict(data.categories)
        self.booster_, self.best_iteration_ = train_booster(
            self._booster_params(), data.train, data.valid, data.rounds
        )
        return self

    def _booster_params(self) -> dict[str, Any]:
        return {**base_params(self.random_state), **self._lightgbm_params(), "objective": "binary"}

    def _lightgbm_params(self) -> dict[str, Any]:
        return default_params() if self.params is None else dict(self.params)

    def fit_linear(self, X: pd.DataFrame, y: Any) -> ChurnModel:
        """Fit the logistic part on the same rows (blended by ``set_family``)."""
        linear = LinearChurn(random_state=self.random_state)
        self.linear_ = linear.fit(self.aligned(X), np.asarray(y, int))
        return self

    def set_family(self, family: str) -> ChurnModel:
        """``lightgbm`` (trees only), ``blend`` (equal log-odds weights) or ``logistic``."""
        if family not in FAMILY_WEIGHTS:
            raise ModelError(
                f"Unknown model family {family!r}.", f"use one of {list(FAMILY_WEIGHTS)}."
            )
        check_is_fitted(self, "booster_")
        if family != "lightgbm" and self.linear_ is None:
            raise ModelError("The logistic part is not fitted.", "call fit_linear() first.")
        self.family_, self.blend_weight_ = family, FAMILY_WEIGHTS[family]
        return self

    def attach(
        self,
        *,
        calibrator: Calibrator | None = None,
        reference_profile: dict[str, Any] | None = None,
        card: dict[str, Any] | None = None,
        reason_reference: np.ndarray | None = None,
        reason_typical: Mapping[str, float] | None = None,
    ) -> ChurnModel:
        """Attach what training chose or measured around the fitted model (each given one
        replaces the current): the calibrator, the drift reference, the model card, the
        reasons' reference and its typical values."""
        check_is_fitted(self, "booster_")
        if reason_reference is not None:
            self.reason_reference_ = np.asarray(reason_reference, float)
        if reason_typical is not None:
            self.reason_typical_ = dict(reason_typical)
        if calibrator is not None:
            self.calibrator_ = calibrator
        if reference_profile is not None:
            self.reference_profile_ = reference_profile
        if card is not None:
            self.card_ = card
        return self

    def tree_margin(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "booster_")
        return np.asarray(
            self.booster_.predict(
                self.aligned(X), raw_score=True, num_iteration=self.best_iteration_
            )
        )

    def aligned(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "features_")
        X = as_frame(X, self.features_, type(self).__name__)
        return align_frame(X, self.features_, self.categories_)

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of the model before calibration (what the contributions add up to)."""
        check_is_fitted(self, "booster_")
        w = self.blend_weight_
        if self.linear_ is None or w >= 1.0:
            return self.tree_margin(X)
        linear = self.linear_.margin(self.aligned(X))  # aligned: missing features named
        return linear if w <= 0.0 else w * self.tree_margin(X) + (1 - w) * linear

    def calibrate(self, X: pd.DataFrame, y: Any) -> ChurnModel:
        """Choose and attach a calibrator on these rows (:meth:`Calibrator.choose`)."""
        cal = Calibrator.choose(self.margin(X), np.asarray(y, float), self.random_state)
        return self.attach(calibrator=cal)

    def predict_uncalibrated(self, X: pd.DataFrame) -> np.ndarray:
        """P(churn) before calibration, one value per row."""
        return sigmoid(self.margin(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2): P(no churn), P(churn), calibrated (the model's own if no calibrator)."""
        m = self.margin(X)
        p = self.calibrator_.transform(m) if self.calibrator_ else sigmoid(m)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where the calibrated P(churn) is above 1/2."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def predict_frame(
        self,
        X: pd.DataFrame,
        windows: Sequence[int] = (),
        churn_probability: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """The registered model's output: ``churn_probability`` per row (``windows`` and
        ``churn_probability`` are the timing model's; ignored)."""
        return pd.DataFrame({"churn_probability": self.predict_proba(X)[:, 1]}, index=X.index)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Exact contributions in log-odds (n x (features + 1), last column = base value).

        TreeSHAP for the trees (LightGBM's, per distinct split pattern:
        :mod:`ka_ml.modeling.treeshap`), exact linear terms for the logistic part, weighted as in
        the blend: every row adds up to :meth:`margin`.
        """
        check_is_fitted(self, "booster_")
        w = self.blend_weight_
        linear = (
            None
            if self.linear_ is None or w >= 1.0
            else self.linear_.contributions(self.aligned(X))
        )
        if linear is not None and w <= 0.0:
            return linear
        trees = tree_contributions(self.booster_, self.aligned(X), self.best_iteration_)
        return trees if linear is None else w * trees + (1 - w) * linear

    def feature_importance(self) -> pd.Series:
        check_is_fitted(self, "booster_")
        return pd.Series(
            self.booster_.feature_importance(importance_type="gain"), index=self.features_
        ).sort_values(ascending=False)
