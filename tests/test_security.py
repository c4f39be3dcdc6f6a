"""Security defaults (issue 7.7): loopback servers, no credentials in config, identifiers
checked before SQL, models only from the configured registry.

(The report showing only the selected account columns is tested on a real scoring run in
test_bad_input.py, beside the single-account case that produces it.)
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from ka_ml import cli
from ka_ml.config import Config, DataConfig, load_config
from ka_ml.data.loader import load_history
from ka_ml.errors import DataValidationError
from ka_ml.jobs.score import load_models
from ka_ml.modeling import registry

ROOT = Path(__file__).resolve().parents[1]


# -- servers ----------------------------------------------------------------------------


def test_the_mlflow_ui_binds_to_loopback_only() -> None:
    make = (ROOT / "Makefile").read_text()
    commands = re.findall(r"mlflow (?:ui|server)[^\n]*(?:\\\n[^\n]*)*", make)
    assert commands, "the Makefile has no mlflow ui target"
    for command in commands:
        assert "--host 127.0.0.1" in command, command


def test_no_server_in_the_project_listens_on_every_interface() -> None:
    sources = [*(ROOT / "ka_ml").rglob("*.py"), ROOT / "Makefile", *(ROOT / ".ci").glob("*")]
    offenders = [p.name for p in sources if p.is_file() and "0.0.0.0" in p.read_text()]
    assert offenders == []
    assert inspect.signature(cli.serve).parameters["host"].default == "127.0.0.1"


# -- credentials --------------------------------------------------------------------------


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    else:
        yield path, node


def test_the_committed_config_names_credential_variables_but_holds_no_secret() -> None:
    raw = yaml.safe_load((ROOT / "configs" / "ka_ml.yaml").read_text())
    secretive = re.compile(r"(password|passwd|secret|token|user|credential)", re.I)
    for key, value in _leaves(raw):
        leaf = key.rsplit(".", 1)[-1]
        if secretive.search(leaf):
            assert leaf.endswith("_env"), f"{key} would hold a credential in the file"
            assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", str(value)), f"{key} must name a variable"
        if isinstance(value, str) and "://" in value:
            assert "@" not in value.split("://", 1)[1].split("/", 1)[0], key


@pytest.mark.parametrize(
    ("section", "key", "uri"),
    [
        ("mlflow", "tracking_uri", "https://bob:s3cret@mlflow.example.com"),
        ("data", "source", "postgresql://bob:s3cret@db.example.com/crm"),
    ],
)
def test_a_uri_with_a_password_in_the_config_is_rejected_without_echoing_it(
    section: str, key: str, uri: str, tmp_path: Path
) -> None:
    path = tmp_path / "ka_ml.yaml"
    path.write_text(yaml.safe_dump({section: {key: uri}}))
    res = CliRunner().invoke(cli.app, ["validate", "--config", str(path)])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert f"{section}.{key}" in text and "contains a password" in text
    assert "s3cret" not in text
    Config.model_validate({section: {key: uri.replace("bob:s3cret@", "")}})  # fine without


# -- identifiers before SQL --------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ['orders"; DROP TABLE accounts; --', "orders; DROP TABLE accounts", "1orders"]
)
def test_duckdb_table_names_from_config_are_checked_before_any_sql(
    name: str, tmp_path: Path
) -> None:
    db = tmp_path / "crm.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE orders AS SELECT 'A1' AS account_id, DATE '2024-01-05' "
                    "AS order_date, 10.0 AS amount")  # fmt: skip
        con.execute("CREATE TABLE accounts AS SELECT 'A1' AS account_id")
    with pytest.raises(DataValidationError, match="not a plain table name"):
        load_history(db, DataConfig(tables={"orders": name}))
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    tables = {r[0] for r in rows}
    assert tables == {"orders", "accounts"}


def test_column_names_from_config_never_reach_sql(tmp_path: Path) -> None:
    """Columns are renamed in pandas after ``SELECT *``: a hostile remap is just a missing
    column, and the database is untouched."""
    db = tmp_path / "crm.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE orders AS SELECT 'A1' AS account_id, DATE '2024-01-05' "
                    "AS order_date, 10.0 AS betrag")  # fmt: skip
    hostile = "betrag FROM orders; DROP TABLE orders; --"
    with pytest.raises(DataValidationError, match="DROP TABLE orders"):  # named, not run
        load_history(db, DataConfig(columns={"orders": {"amount": hostile}}))
    remapped = load_history(db, DataConfig(columns={"orders": {"amount": "betrag"}}))
    assert remapped.orders["amount"].tolist() == [10.0]


def test_write_back_table_names_from_config_must_be_identifiers() -> None:
    with pytest.raises(ValueError, match="writeback_table"):
        Config.model_validate({"delivery": {"writeback_table": "scores; DROP TABLE x"}})


# -- models only from the configured registry ---------------------------------------------


def test_models_load_from_the_configured_registry_even_if_the_environment_names_another(
    trained: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_state: None
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    models = load_models(trained.cfg)
    client = registry.connect(trained.cfg)
    expected = registry.champion_version(client, trained.cfg.mlflow.churn_model_name)
    assert expected is not None and models.churn_version == str(expected.version)
    assert mlflow.get_registry_uri() == registry.tracking_uri(trained.cfg)
    assert not (tmp_path / "elsewhere.db").exists()


def test_model_loading_goes_through_the_registry_by_name_and_version_only() -> None:
    """No code path loads a model from a file path, a run or a URL: only ``models:/`` URIs
    of the configured registry, in one function; and, when the path the registry records
    for that version is gone (the models folder was moved), that same relative path inside
    the configured store's own artifacts folder, never outside it."""
    callers = {
        str(p.relative_to(ROOT)): p.read_text().count("load_model(")
        for p in (ROOT / "ka_ml").rglob("*.py")
        if "load_model(" in p.read_text()
    }
    assert callers == {"ka_ml/modeling/registry.py": 2}
    source = inspect.getsource(registry.load_version)
    assert 'load_model(f"models:/{name}/{version}")' in source
    assert source.count("load_model(") == 1 and "_load_moved(name, version, e)" in source
    moved = inspect.getsource(registry._load_moved)
    assert moved.count("load_model(") == 1
    assert "moved = _relocated(recorded, root)" in moved
    assert "load_model(str(moved))" in moved


def test_a_moved_store_is_never_read_outside_its_own_artifacts_folder(tmp_path: Path) -> None:
    root = tmp_path / "models" / "artifacts"
    (root / "models" / "m-1" / "artifacts").mkdir(parents=True)
    (tmp_path / "evil").mkdir()
    gone = Path("/gone/models/artifacts/models/m-1/artifacts")
    assert registry._relocated(gone, root) == root / "models" / "m-1" / "artifacts"
    escape = Path("/gone/models/artifacts/../../evil")
    assert registry._relocated(escape, root) is None
    assert registry._relocated(Path("/gone/models/artifacts/models/m-2/artifacts"), root) is None


def test_the_default_config_file_validates(tmp_path: Path) -> None:
    assert load_config(ROOT / "configs" / "ka_ml.yaml") == Config()
