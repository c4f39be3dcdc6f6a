"""A champion registered before the models became scikit-learn estimators (pickled as the
old dataclasses) is refused with the remedy, never half-loaded into an obscure crash."""

from __future__ import annotations

import copyreg
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import small_config

from ka_ml.errors import KaMlError, ModelError
from ka_ml.jobs.score import load_models
from ka_ml.modeling import promotion, registry
from ka_ml.modeling.churn import ChurnModel
from ka_ml.modeling.timing import TimingModel, interval_edges

FAST = {"num_leaves": 7, "min_child_samples": 20, "learning_rate": 0.1}


class PickledAsBefore:
    """Unpickles as the old dataclass did: a bare instance of the class (looked up by name)
    given the old fields as its state."""

    def __init__(self, cls: type, state: dict[str, Any]) -> None:
        self.cls, self.state = cls, state

    def __reduce_ex__(self, protocol: Any) -> Any:
        return copyreg._reconstructor, (self.cls, object, None), self.state


def old_churn_model() -> PickledAsBefore:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"recency_days": rng.uniform(0, 200, 300)})
    y = (X["recency_days"] > 100).to_numpy(float)
    m = ChurnModel(params=FAST).fit(X, y, num_boost_round=10)
    fields = ("features_", "categories_", "booster_", "best_iteration_")
    return PickledAsBefore(
        ChurnModel,
        {"params": FAST, "seed": 42, **{k: getattr(m, k) for k in fields}}
        | {"calibrator_": None, "linear_": None, "blend_weight_": 1.0, "family_": "lightgbm"}
        | {"card_": None, "reference_profile_": None},
    )


def old_timing_model() -> PickledAsBefore:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"recency_days": rng.uniform(0, 200, 300)})
    d, e = rng.exponential(40, 300), rng.uniform(size=300) < 0.8
    edges = interval_edges([30, 60, 90])
    m = TimingModel(edges=edges, params=FAST).fit(X, d, e, num_boost_round=10)
    fields = ("features_", "categories_", "booster_", "best_iteration_")
    return PickledAsBefore(
        TimingModel,
        {"params": FAST, "edges": edges, "seed": 42, **{k: getattr(m, k) for k in fields}}
        | {"recency_col": "recency_days", "gap_col": "gap_median_days"}
        | {"interval_levels_": (0.1, 0.9), "anchor_days_": None},
    )


@pytest.mark.parametrize("kind", ["churn", "timing"])
def test_an_old_champion_is_refused_with_the_remedy(
    tmp_path: Path, mlflow_state: None, kind: str
) -> None:
    cfg = small_config(tmp_path)
    client = registry.connect(cfg)
    name = cfg.mlflow.churn_model_name if kind == "churn" else cfg.mlflow.timing_model_name
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name=f"{kind}_model",
            python_model=registry.KaMlModel(
                old_churn_model() if kind == "churn" else old_timing_model(), kind, [30, 60, 90]
            ),
            registered_model_name=name,
        )
    registry.set_alias(client, name, promotion.CHAMPION, "1")

    with pytest.raises(ModelError) as err:
        registry.load_champion(client, name, kind)
    assert f"Registered model '{name}' version 1" in err.value.message
    assert "saved by an older ka_ml" in err.value.message
    assert "`ka-ml train`" in err.value.remedy
    assert f"`ka-ml promote {name} VERSION`" in err.value.remedy


def test_ka_ml_score_stops_on_an_old_champion_with_a_ka_ml_error(
    tmp_path: Path, mlflow_state: None
) -> None:
    cfg = small_config(tmp_path)
    registry.connect(cfg)
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="churn_model",
            python_model=registry.KaMlModel(old_churn_model(), "churn", []),
            registered_model_name=cfg.mlflow.churn_model_name,
        )
    client = registry.connect(cfg)
    registry.set_alias(client, cfg.mlflow.churn_model_name, promotion.CHAMPION, "1")
    with pytest.raises(KaMlError, match=r"older ka_ml.*Fix: retrain with `ka-ml train`"):
        load_models(cfg)  # what `ka-ml score` does first
