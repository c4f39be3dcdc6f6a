"""The registered pyfunc wrapper: served alone it predicts what the model itself predicts,
and defining it prints nothing on the console of every command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from conftest import small_config

from ka_ml.modeling import promotion, registry
from ka_ml.modeling.timing import TimingModel, interval_edges

FAST = {"num_leaves": 7, "min_child_samples": 20, "learning_rate": 0.1}
WINDOWS = [30, 60, 90]


def test_importing_the_registry_prints_no_mlflow_warning() -> None:
    # a subprocess: the class is defined once per process, at import
    run = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import ka_ml.modeling.registry"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Add type hints" not in run.stderr
    assert "Warning" not in run.stderr, run.stderr


def test_the_served_pyfunc_predicts_the_models_own_frame(
    tmp_path: Path, mlflow_state: None
) -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(
        {"recency_days": rng.uniform(0, 200, 400), "gap_median_days": rng.uniform(5, 60, 400)}
    )
    d, e = rng.exponential(40, 400), rng.uniform(size=400) < 0.8
    model = TimingModel(edges=interval_edges(WINDOWS), params=FAST).fit(X, d, e, num_boost_round=15)
    cfg = small_config(tmp_path)
    registry.connect(cfg)
    with mlflow.start_run():
        version = registry.log_and_register(
            model, "timing", cfg.mlflow.timing_model_name, X, WINDOWS
        )
    served = mlflow.pyfunc.load_model(f"models:/{cfg.mlflow.timing_model_name}/{version}")
    # columns in another order: the model aligns its own frame, MLflow converts nothing
    got = served.predict(X[["gap_median_days", "recency_days"]].head(50))
    want = model.predict_frame(X.head(50), WINDOWS)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))


def _moved_store(tmp_path: Path) -> tuple[object, str, str, Path]:
    """A timing champion registered under ``tmp_path/a/models``, then that folder moved to
    ``tmp_path/b/models`` (the original gone): (config of the new place, name, version,
    the original folder)."""
    import shutil

    rng = np.random.default_rng(5)
    X = pd.DataFrame({"recency_days": rng.uniform(0, 200, 200)})
    d, e = rng.exponential(40, 200), rng.uniform(size=200) < 0.8
    model = TimingModel(edges=interval_edges(WINDOWS), params=FAST).fit(X, d, e, num_boost_round=5)
    cfg = small_config(tmp_path / "a")
    name = cfg.mlflow.timing_model_name
    client = registry.connect(cfg)
    with mlflow.start_run():
        version = registry.log_and_register(model, "timing", name, X, WINDOWS)
    client.set_registered_model_alias(name, promotion.CHAMPION, version)
    (tmp_path / "b").mkdir()
    shutil.move(tmp_path / "a" / "models", tmp_path / "b" / "models")
    moved = small_config(tmp_path / "b")
    assert moved.paths.models == tmp_path / "b" / "models"
    return moved, name, str(version), tmp_path / "a" / "models"


def test_a_moved_models_folder_is_read_where_it_is_now(tmp_path: Path, mlflow_state: None) -> None:
    """Copying paths.models elsewhere and removing the original failed every score with
    "unexpected error: MlflowException: No such artifact: ''": the store records absolute
    artifact paths."""
    cfg, name, version, _ = _moved_store(tmp_path)
    client = registry.connect(cfg)
    model, got = registry.load_champion(client, name, "purchase-timing")
    assert got == version and isinstance(model, TimingModel)


def test_a_moved_models_folder_without_its_files_says_where_they_were_and_the_fix(
    tmp_path: Path, mlflow_state: None
) -> None:
    import shutil

    import pytest

    from ka_ml.errors import ModelError

    cfg, name, version, old = _moved_store(tmp_path)
    shutil.rmtree(cfg.paths.models / "artifacts")  # only mlflow.db came along
    client = registry.connect(cfg)
    with pytest.raises(ModelError) as err:
        registry.load_champion(client, name, "purchase-timing")
    text = str(err.value)
    assert f"Registered model '{name}' version {version} cannot be loaded" in text
    assert f"says its files are in {old.resolve() / 'artifacts'}" in text
    assert "was moved or copied since it was trained there" in text
    assert f"move the models folder back to {old.resolve()}" in err.value.remedy
    assert "retrain in the new place" in err.value.remedy


def test_training_into_a_copied_or_moved_models_folder_is_refused_before_writing(
    tmp_path: Path, mlflow_state: None
) -> None:
    """User test: a retrain into a copy of the production models folder wrote its model
    files into the original (the store keeps the experiment's artifact folder as an
    absolute path); once they were moved aside, neither store could load them."""
    import pytest

    from ka_ml.errors import KaMlError

    cfg, _, _, old = _moved_store(tmp_path)
    client = registry.connect(cfg)
    with pytest.raises(KaMlError) as err:
        registry.check_writes_here(client, cfg)
    text, fix = str(err.value), err.value.remedy
    assert f"keeps the model files of its experiment '{cfg.mlflow.experiment}' in " in text
    assert str(old.resolve() / "artifacts") in text and "nothing was written" in text
    assert "a new, empty folder" in fix and "mlflow.experiment to a new name" in fix
    # the fix it names works: a new experiment keeps its files in this folder
    renamed = cfg.model_copy(
        update={"mlflow": cfg.mlflow.model_copy(update={"experiment": "ka_ml_here"})}
    )
    registry.check_writes_here(registry.connect(renamed), renamed)
    # and the store trained in place passes
    fresh = small_config(tmp_path / "c")
    registry.check_writes_here(registry.connect(fresh), fresh)
