"""Where the MLflow store is: the environment first, then config, then the embedded default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import small_config

from ka_ml.errors import KaMlError
from ka_ml.modeling import registry


def test_the_environment_variable_wins_and_connect_creates_that_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_state: None
) -> None:
    db = tmp_path / "elsewhere" / "env.db"
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = small_config(tmp_path, mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'cfg.db'}"})

    assert registry.tracking_uri(cfg) == uri
    client = registry.connect(cfg)

    assert db.is_file()
    assert not (tmp_path / "cfg.db").exists()
    assert not (tmp_path / "models" / "mlflow.db").exists()
    assert client.get_experiment_by_name(cfg.mlflow.experiment) is not None
    import mlflow

    assert mlflow.get_tracking_uri() == uri and mlflow.get_registry_uri() == uri


def test_connect_does_not_leave_its_store_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_state: None
) -> None:
    """A later config in the same process must not inherit the last store as if the user
    had set MLFLOW_TRACKING_URI (mlflow.set_tracking_uri exports it to os.environ)."""
    cfg = small_config(tmp_path)
    registry.connect(cfg)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    other = small_config(tmp_path / "other")
    assert registry.tracking_uri(other) == f"sqlite:///{(tmp_path / 'other/models/mlflow.db')}"


def test_config_tracking_uri_is_used_when_the_environment_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = small_config(tmp_path, mlflow={"tracking_uri": "http://mlflow.internal:5000"})
    assert registry.tracking_uri(cfg) == "http://mlflow.internal:5000"


def test_default_is_an_absolute_sqlite_file_under_the_models_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = small_config(Path("relative"))  # paths.models = relative/models
    expected = (tmp_path / "relative" / "models" / "mlflow.db").resolve()
    assert registry.tracking_uri(cfg) == f"sqlite:///{expected}"
    assert Path(registry.tracking_uri(cfg).removeprefix("sqlite:///")).is_absolute()


@pytest.mark.parametrize("obstacle", ["path inside a file", "directory where the db should be"])
def test_an_unusable_store_fails_fast_with_a_remedy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_state: None, obstacle: str
) -> None:
    if obstacle == "path inside a file":
        (tmp_path / "afile").write_text("not a folder")
        db = tmp_path / "afile" / "sub" / "mlflow.db"
    else:
        db = tmp_path / "mlflow.db"
        db.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")

    with pytest.raises(KaMlError) as err:
        registry.connect(small_config(tmp_path))
    text = str(err.value)
    assert f"The MLflow store at 'sqlite:///{db}' cannot be used" in text
    assert "Fix:" in text and "MLFLOW_TRACKING_URI" in text


def test_a_file_that_is_not_a_database_is_reported_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_state: None
) -> None:
    db = tmp_path / "notes.txt"
    db.write_text("these are my notes, not an MLflow store\n" * 20)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    with pytest.raises(KaMlError, match=r"cannot be used.*Fix:"):
        registry.connect(small_config(tmp_path))
    assert db.read_text().startswith("these are my notes")


def test_make_ui_opens_the_store_of_the_config_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make ui CONFIG=...` opened models/mlflow.db whatever the config named."""
    from ka_ml.modeling import registry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = tmp_path / "c.yaml"
    config.write_text(f"paths:\n  models: {tmp_path / 'elsewhere'}\n")
    registry.main(["--config", str(config)])
    assert capsys.readouterr().out.strip() == f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    recipe = makefile.split("\nui:", 1)[1].split("\n\n", 1)[0]
    assert "-m ka_ml.modeling.registry --config $(CONFIG)" in recipe
    assert "models/mlflow.db" not in recipe


def test_the_browse_hint_runs_mlflow_from_this_environment_when_it_is_not_on_the_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil
    import sys

    from ka_ml.reporting.console import browse

    monkeypatch.setattr(shutil, "which", lambda name: None)
    here = Path(sys.executable).parent / "mlflow"
    assert here.exists()  # the test environment has mlflow installed beside python
    assert browse("sqlite:////x/mlflow.db") == (
        f"browse: {here} ui --backend-store-uri 'sqlite:////x/mlflow.db'"
    )
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/mlflow")
    assert browse("sqlite:////x/mlflow.db").startswith("browse: mlflow ui ")
