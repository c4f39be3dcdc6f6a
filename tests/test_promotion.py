"""The promotion gate, and a retrain on unchanged data that must not replace the champion."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ka_ml.modeling.registry import CHALLENGER, CHAMPION, promotion_decision
from ka_ml.train import TrainReport


def test_without_a_champion_the_candidate_is_promoted() -> None:
    d = promotion_decision({"roc_auc": 0.71}, None, metric="roc_auc", margin=0.01)
    assert d.promote and d.alias == CHAMPION
    assert "no comparable champion" in d.reason and "0.7100" in d.reason


@pytest.mark.parametrize("champion", [{}, {"roc_auc": math.nan}])
def test_a_champion_without_a_usable_score_does_not_block_promotion(
    champion: dict[str, float],
) -> None:
    d = promotion_decision({"roc_auc": 0.71}, champion, metric="roc_auc", margin=0.01)
    assert d.promote and d.alias == CHAMPION


def test_a_candidate_better_by_more_than_the_margin_is_promoted() -> None:
    d = promotion_decision({"roc_auc": 0.80}, {"roc_auc": 0.75}, metric="roc_auc", margin=0.02)
    assert d.promote and d.alias == CHAMPION
    assert "0.8000" in d.reason and "0.7500" in d.reason and "beats" in d.reason


@pytest.mark.parametrize(
    ("new", "old", "margin"),
    [(0.74, 0.75, 0.0), (0.75, 0.75, 0.0), (0.76, 0.75, 0.02), (0.75, 0.5, 0.25)],
    ids=["worse", "equal", "better-but-within-margin", "better-by-exactly-the-margin"],
)
def test_a_candidate_that_does_not_clear_the_margin_stays_challenger(
    new: float, old: float, margin: float
) -> None:
    d = promotion_decision({"roc_auc": new}, {"roc_auc": old}, metric="roc_auc", margin=margin)
    # (the exact-margin case uses binary-exact numbers: 0.77 - 0.75 > 0.02 in floating point)
    assert not d.promote and d.alias == CHALLENGER
    assert "does not beat" in d.reason
    assert f"{new:.4f}" in d.reason and f"{old:.4f}" in d.reason


def test_with_a_zero_margin_any_strict_improvement_is_promoted() -> None:
    d = promotion_decision({"roc_auc": 0.7501}, {"roc_auc": 0.75}, metric="roc_auc", margin=0.0)
    assert d.promote


def test_a_miscalibrated_candidate_stays_challenger_even_when_better() -> None:
    d = promotion_decision(
        {"roc_auc": 0.90},
        {"roc_auc": 0.70},
        metric="roc_auc",
        margin=0.0,
        ece=0.08,
        ece_ceiling=0.05,
    )
    assert not d.promote and d.alias == CHALLENGER
    assert "calibration error 0.080 above the ceiling 0.050" in d.reason


def test_a_calibrated_candidate_passes_the_ceiling() -> None:
    d = promotion_decision(
        {"roc_auc": 0.90}, None, metric="roc_auc", margin=0.0, ece=0.02, ece_ceiling=0.05
    )
    assert d.promote


@pytest.mark.parametrize(("new", "promote"), [(0.10, True), (0.14, False), (0.12, False)])
def test_lower_is_better_metrics_compare_the_other_way(new: float, promote: bool) -> None:
    d = promotion_decision(
        {"brier": new}, {"brier": 0.12}, metric="brier", margin=0.0, higher_is_better=False
    )
    assert d.promote is promote
    assert d.alias == (CHAMPION if promote else CHALLENGER)


# -- integration: the session's training run, then a retrain on unchanged data ----------
@pytest.fixture(scope="module")
def retrained(trained: Any) -> TrainReport:
    """The one extra full training of the suite: same data, config and store as ``trained``.

    It leaves version 2 of each model (alias ``challenger``) in the shared store; the
    champion alias stays on version 1.
    """
    from ka_ml.train import run_training

    return run_training(trained.history, trained.cfg, trained.report.as_of, progress=lambda s: None)


def test_the_first_training_run_promoted_both_models(trained: Any) -> None:
    report = trained.report
    assert report.versions == {"churn": "1", "timing": "1"}
    for kind in ("churn", "timing"):
        assert "-> champion" in report.decisions[kind]
        assert "no comparable champion" in report.decisions[kind]


def test_retraining_on_the_same_data_and_seed_reproduces_the_test_metrics(
    trained: Any,
    retrained: TrainReport,
) -> None:
    first, again = trained.report.evaluation, retrained.evaluation
    assert trained.report.split == retrained.split
    # exact equality (NaN equal to NaN), not approximate: same seed and data, same numbers
    for part in ("churn", "churn_uncalibrated", "lights", "timing"):
        np.testing.assert_equal(getattr(again, part), getattr(first, part), err_msg=part)
    pd.testing.assert_frame_equal(first.test_predictions, again.test_predictions)
    pd.testing.assert_frame_equal(first.comparison, again.comparison)


def test_retraining_keeps_the_champion_and_registers_a_challenger(
    trained: Any,
    retrained: TrainReport,
) -> None:
    from mlflow.tracking import MlflowClient

    assert retrained.versions == {"churn": "2", "timing": "2"}
    for kind in ("churn", "timing"):
        assert "v2 -> challenger" in retrained.decisions[kind]
        assert "does not beat" in retrained.decisions[kind]
        assert "(champion was v1)" in retrained.decisions[kind]

    client = MlflowClient(tracking_uri=retrained.tracking_uri, registry_uri=retrained.tracking_uri)
    for name in (trained.cfg.mlflow.churn_model_name, trained.cfg.mlflow.timing_model_name):
        assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "1"
        assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == "2"
