"""The churn model: out-of-time calibration, refusal of one-class data, exact SHAP, seeds."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from ka_ml.errors import ModelError
from ka_ml.modeling.churn import Calibrator, ChurnModel
from ka_ml.modeling.metrics import brier, expected_calibration_error

FAST = {"num_leaves": 7, "min_child_samples": 30, "learning_rate": 0.1}


def churn_frame(n: int, seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Risk rises with ``overdue``; ``tier`` matters a little; ``noise`` not at all."""
    rng = np.random.default_rng(seed)
    overdue = rng.normal(size=n)
    overdue[rng.uniform(size=n) < 0.05] = np.nan
    tier = rng.choice(["A", "B", "C"], n)
    logit = 1.5 * np.nan_to_num(overdue) - 1.0 + 0.5 * (tier == "C") + shift
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(float)
    X = pd.DataFrame(
        {"overdue": overdue, "noise": rng.normal(size=n), "tier": pd.Series(tier, dtype="str")}
    )
    return X, y


@pytest.fixture(scope="module")
def model() -> ChurnModel:
    X, y = churn_frame(1500, seed=0)
    return ChurnModel(params=FAST, random_state=7).fit(X, y, num_boost_round=60)


# -- calibration ------------------------------------------------------------------------
def test_calibration_on_separate_rows_repairs_a_badly_calibrated_booster() -> None:
    X, y = churn_frame(2000, seed=1)
    # up-weighting churners 8x makes the raw booster overstate every risk
    m = ChurnModel(params={**FAST, "scale_pos_weight": 8.0}, random_state=7).fit(
        X, y, num_boost_round=60
    )
    X_cal, y_cal = churn_frame(2000, seed=2)
    X_test, y_test = churn_frame(3000, seed=3)
    margin_before = m.margin(X_test)
    m.calibrate(X_cal, y_cal)

    np.testing.assert_array_equal(m.margin(X_test), margin_before)  # booster untouched
    raw, calibrated = m.predict_uncalibrated(X_test), m.predict_proba(X_test)[:, 1]
    ece_raw = expected_calibration_error(y_test, raw)
    ece_cal = expected_calibration_error(y_test, calibrated)
    assert ece_raw > 0.15
    assert ece_cal < 0.05 < ece_raw
    assert brier(y_test, calibrated) < brier(y_test, raw)
    # the order of the accounts is kept: calibration only relabels the scale
    assert np.corrcoef(np.argsort(np.argsort(raw)), np.argsort(np.argsort(calibrated)))[0, 1] > 0.99


def test_calibrator_follows_the_calibration_rows_not_the_training_rows(model: ChurnModel) -> None:
    # calibration snapshots where churn became more common than in training
    X_cal, y_cal = churn_frame(2000, seed=4, shift=1.0)
    model_cal = copy.deepcopy(model).calibrate(X_cal, y_cal)
    p = model_cal.predict_proba(X_cal)[:, 1]
    assert p.mean() == pytest.approx(y_cal.mean(), abs=0.01)
    assert model.predict_uncalibrated(X_cal).mean() < y_cal.mean() - 0.1


def test_calibrator_picks_platt_for_a_logistic_relation_by_cv_brier() -> None:
    rng = np.random.default_rng(3)
    margin = rng.uniform(-3, 3, 400)
    y = (rng.uniform(size=400) < 1 / (1 + np.exp(-(1.5 * margin - 0.5)))).astype(float)
    cal = Calibrator.choose(margin, y, seed=0)
    briers = {k: cal.cv_brier_[k] for k in ("none", "sigmoid", "isotonic")}
    assert cal.method == "sigmoid" == min(briers, key=briers.__getitem__)


def test_calibrator_picks_isotonic_for_a_step_relation_by_cv_brier() -> None:
    rng = np.random.default_rng(3)
    margin = rng.uniform(-3, 3, 2000)
    y = (rng.uniform(size=2000) < np.where(margin < 1, 0.15, 0.85)).astype(float)
    cal = Calibrator.choose(margin, y, seed=0, max_auc_loss=0.01)
    briers = {k: cal.cv_brier_[k] for k in ("none", "sigmoid", "isotonic")}
    assert cal.method == "isotonic" == min(briers, key=briers.__getitem__)
    p = cal.transform(np.array([-2.0, 2.0]))
    assert p[0] == pytest.approx(0.15, abs=0.05) and p[1] == pytest.approx(0.85, abs=0.05)


def test_calibration_with_a_single_churner_keeps_the_models_own_probability() -> None:
    y = np.r_[1.0, np.zeros(50)]
    margin = np.linspace(-1, 1, 51)
    cal = Calibrator.choose(margin, y, seed=0)
    assert cal.method == "none"
    assert np.allclose(cal.transform(margin), 1 / (1 + np.exp(-margin)))


def test_none_stays_when_the_model_is_already_calibrated() -> None:
    rng = np.random.default_rng(5)
    margin = rng.normal(0, 1.5, 3000)
    y = (rng.uniform(size=3000) < 1 / (1 + np.exp(-margin))).astype(float)
    cal = Calibrator.choose(margin, y, seed=0)
    assert cal.method == "none"


def test_with_groups_a_calibration_is_judged_forward_in_time() -> None:
    # fitted on the earlier groups, judged on the later ones; isotonic may not lose ranking
    rng = np.random.default_rng(9)
    margin = rng.normal(0, 1, 3000)
    y = (rng.uniform(size=3000) < 1 / (1 + np.exp(-(2 * margin + 1)))).astype(float)
    groups = np.repeat([1, 2, 3], 1000)
    cal = Calibrator.choose(margin, y, seed=0, groups=groups)
    assert cal.cv_brier_["auc_" + cal.method] >= cal.cv_brier_["auc_none"] - 1e-3
    assert cal.method in {"sigmoid", "isotonic"}  # the margin is miscalibrated: a map wins


def test_an_unfitted_calibrator_says_how_to_fit_it() -> None:
    with pytest.raises(ModelError, match=r"Calibrator\.choose"):
        Calibrator().transform(np.zeros(3))


# -- one-class data ---------------------------------------------------------------------
@pytest.mark.parametrize(("label", "kind"), [(0.0, "no churners"), (1.0, "only churners")])
def test_training_on_a_single_class_is_refused(label: float, kind: str) -> None:
    X, _ = churn_frame(50, seed=5)
    with pytest.raises(ModelError, match=rf"training rows contain {kind} \(50 rows\).*Fix:"):
        ChurnModel(params=FAST).fit(X, np.full(50, label))


@pytest.mark.parametrize(("label", "kind"), [(0.0, "no churners"), (1.0, "only churners")])
def test_calibrating_on_a_single_class_is_refused(
    model: ChurnModel, label: float, kind: str
) -> None:
    X, _ = churn_frame(40, seed=6)
    with pytest.raises(ModelError, match=rf"calibration rows contain {kind}"):
        Calibrator.choose(model.margin(X), np.full(40, label), seed=0)


# -- explanations and reproducibility ---------------------------------------------------
def test_shap_contributions_add_up_to_the_margin(model: ChurnModel) -> None:
    X, _ = churn_frame(300, seed=8)
    X.loc[:5, "tier"] = "Z"  # an unseen tier takes the missing branch
    contrib = model.contributions(X)
    assert contrib.shape == (300, len(model.features_) + 1)
    np.testing.assert_allclose(contrib.sum(axis=1), model.margin(X), rtol=0, atol=1e-9)
    assert np.ptp(contrib[:, -1]) == 0  # the last column is the one shared base value


def test_same_data_and_seed_give_identical_predictions() -> None:
    X, y = churn_frame(800, seed=9)
    params = {**FAST, "bagging_fraction": 0.7, "bagging_freq": 1, "feature_fraction": 0.7}
    first = ChurnModel(params=params, random_state=11).fit(X, y, num_boost_round=40)
    again = ChurnModel(params=params, random_state=11).fit(X, y, num_boost_round=40)
    other = ChurnModel(params=params, random_state=12).fit(X, y, num_boost_round=40)
    np.testing.assert_array_equal(first.predict_proba(X), again.predict_proba(X))
    assert not np.array_equal(first.predict_proba(X), other.predict_proba(X))


def test_early_stopping_on_a_later_block_sets_the_rounds_used() -> None:
    X, y = churn_frame(800, seed=10)
    Xv, yv = churn_frame(400, seed=11)
    m = ChurnModel(params={**FAST, "learning_rate": 0.3}, random_state=1)
    m.fit(X, y, eval_set=(Xv, yv))
    assert 1 <= m.best_iteration_ < 600  # stopped long before the cap
    assert m.booster_ is not None and m.booster_.current_iteration() == m.best_iteration_


def test_an_unfitted_model_says_to_fit_first() -> None:
    with pytest.raises(NotFittedError, match=r"ChurnModel instance is not fitted yet"):
        ChurnModel(params=FAST).margin(pd.DataFrame({"x": [1.0]}))


def test_feature_importance_names_every_feature_strongest_first(model: ChurnModel) -> None:
    imp = model.feature_importance()
    assert set(imp.index) == {"overdue", "noise", "tier"}
    assert imp.index[0] == "overdue"
    assert imp.is_monotonic_decreasing


def test_a_map_that_only_fits_the_past_is_not_chosen() -> None:
    # the older origins needed a shift that the latest no longer needs (a drifting
    # population): judged forward, "none" stays
    rng = np.random.default_rng(11)
    margin = rng.normal(0, 1, 3000)
    shift = np.repeat([1.5, 1.5, 0.0], 1000)
    y = (rng.uniform(size=3000) < 1 / (1 + np.exp(-(margin + shift)))).astype(float)
    groups = np.repeat([1, 2, 3], 1000)
    cal = Calibrator.choose(margin, y, seed=0, groups=groups)
    assert cal.method == "none"
