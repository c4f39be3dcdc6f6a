"""Shared test set-up.

OMP_WAIT_POLICY must be set before lightgbm is imported (stack notes). The session
fixtures build one small demo world and train one pair of models into a temporary MLflow
store, which the model, scoring and CLI tests share (training once keeps the suite fast).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KA_ML_THREADS", "2")
os.environ.pop("MLFLOW_TRACKING_URI", None)
# Off a terminal the CLI sizes its tables by COLUMNS (ka_ml.cli._console); pytest-xdist's
# workers export COLUMNS=80 and LINES=24 (so do some shells), which wrapped the tables the
# tests read. A test about the width sets it itself.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from ka_ml.config import Config

SMALL_ACCOUNTS = 400


def isolated(cfg: Config, root: Path, *, owner_reports: bool | None = None) -> Config:
    """The trained config (same MLflow store) with its own outputs and score history under
    ``root``; ``owner_reports=False`` skips the per-owner reports (delivery's subject; they
    cost seconds per run)."""
    from ka_ml.config import PathsConfig

    update: dict[str, object] = {
        "paths": PathsConfig(outputs=root / "outputs", models=cfg.paths.models)
    }
    if owner_reports is not None:
        update["delivery"] = cfg.delivery.model_copy(update={"owner_reports": owner_reports})
    return cfg.model_copy(update=update)


def write_config(cfg: Config, path: Path) -> Path:
    """``cfg`` as a YAML file the CLI's --config reads."""
    import yaml

    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")), encoding="utf-8")
    return path


def registry_state(cfg: Config) -> dict[str, object]:
    """Registered versions, aliases and the number of runs: what a failure must not change."""
    from ka_ml.modeling import registry

    client = registry.connect(cfg)
    state: dict[str, object] = {}
    for rm in client.search_registered_models():
        versions = client.search_model_versions(f"name='{rm.name}'")
        state[rm.name] = (sorted(v.version for v in versions), sorted(rm.aliases.items()))
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    state["runs"] = len(client.search_runs([exp.experiment_id], max_results=5000))
    return state


_EMPTY_STORE: list[Path] = []


def empty_store_copy(models: Path) -> None:
    """Put an empty, already-migrated MLflow SQLite store at ``models/mlflow.db``.

    MLflow builds a new store by running its schema migrations: 2-4 s here, paid by every
    test that trains or registers into a fresh store. They are run once per session into
    a template and copied (0.1 s). Creating a store from nothing stays tested where that is
    the subject (test_tracking_uri, the CLI's first train).
    """
    import atexit
    import shutil
    import tempfile

    if not _EMPTY_STORE:
        from mlflow import MlflowClient

        db = Path(tempfile.mkdtemp(prefix="ka_ml_empty_store_")) / "mlflow.db"
        # the template outlives every test of the session, then goes with it
        atexit.register(shutil.rmtree, db.parent, ignore_errors=True)
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
        _EMPTY_STORE.append(db)
    target = models / "mlflow.db"
    if not target.exists():
        models.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_EMPTY_STORE[0], target)


def small_config(root: Path, **over: object) -> Config:
    """A fast config rooted in ``root`` (models, outputs, demo data all inside it); its
    MLflow store starts as a copy of an empty one (:func:`empty_store_copy`) unless
    ``over`` moves the store."""
    if not {"paths", "mlflow"} & over.keys():
        empty_store_copy(root / "models")
    raw: dict[str, object] = {
        "paths": {"outputs": str(root / "outputs"), "models": str(root / "models")},
        "data": {"demo_dir": str(root / "demo"), "demo_accounts": SMALL_ACCOUNTS},
        "tuning": {"n_trials": 3, "timeout_seconds": 120, "n_folds": 2},
    }
    raw.update(over)
    return Config.model_validate(raw)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo world written as CSV (generated once per test session)."""
    from ka_ml.demo.world import generate_world, write_world

    out = tmp_path_factory.mktemp("demo") / "data"
    write_world(generate_world(SMALL_ACCOUNTS, 3.0, 7), out)
    return out


@pytest.fixture(scope="session")
def demo_history(demo_dir: Path):
    from ka_ml.data.loader import load_history

    return load_history(demo_dir, Config().data)


@dataclass(frozen=True)
class Trained:
    root: Path
    cfg: Config
    report: object
    history: object


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, demo_history) -> Trained:
    """Both models trained once and promoted to champion in a temporary MLflow store."""
    from ka_ml.jobs.train import run_training

    root = tmp_path_factory.mktemp("store")
    cfg = small_config(root)
    report = run_training(demo_history, cfg, demo_history.default_as_of, progress=lambda s: None)
    return Trained(root, cfg, report, demo_history)


def as_of_of(history) -> pd.Timestamp:
    return history.default_as_of


@pytest.fixture
def mlflow_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Put MLflow's process-wide URIs and experiment back after the test.

    ``registry.connect`` points MLflow (a process-wide setting) at the store it opens; the
    rest of the session must keep talking to the store of the ``trained`` fixture.
    """
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    import mlflow.tracking.fluent as fluent

    for module, name in (
        (tracking_utils, "_tracking_uri"),
        (registry_utils, "_registry_uri"),
        (fluent, "_active_experiment_id"),
    ):
        monkeypatch.setattr(module, name, getattr(module, name))
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        # setenv first records the variable's state before the test (set or not), so one
        # the test sets (mlflow.set_experiment sets MLFLOW_EXPERIMENT_ID) is undone after it
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    yield
