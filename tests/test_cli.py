"""The command line as a user meets it: exit codes, messages, files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ka_ml.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def demo500(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "d"
    res = runner.invoke(app, ["demo-data", "--out", str(out), "--accounts", "500"])
    assert res.exit_code == 0, res.output
    return out


def test_demo_data_writes_the_six_tables_and_the_truth_apart(demo500: Path) -> None:
    names = sorted(p.name for p in demo500.glob("*.csv"))
    assert names == [
        f"{t}.csv"
        for t in sorted(["orders", "accounts", "usage", "tickets", "surveys", "contracts"])
    ]
    assert (demo500 / "_truth" / "ground_truth.csv").exists()


def test_the_demo_data_passes_validate_with_a_summary(demo500: Path) -> None:
    res = runner.invoke(app, ["validate", "--data", str(demo500)])
    assert res.exit_code == 0, res.output
    assert "valid" in res.output and "orders" in res.output and "accounts" in res.output


def test_the_same_seed_gives_byte_identical_files(demo500: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert (
        runner.invoke(app, ["demo-data", "--out", str(again), "--accounts", "500"]).exit_code == 0
    )
    for f in demo500.glob("*.csv"):
        assert (again / f.name).read_bytes() == f.read_bytes(), f.name


def test_a_removed_required_column_fails_validate_naming_it(demo500: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(demo500, bad)
    orders = pd.read_csv(bad / "orders.csv", dtype=str)
    orders.drop(columns=["amount"]).to_csv(bad / "orders.csv", index=False)
    res = runner.invoke(app, ["validate", "--data", str(bad)])
    assert res.exit_code == 2
    assert "orders" in res.output and "amount" in res.output and "Fix:" in res.output
    assert "Traceback" not in res.output


def test_a_garbled_date_fails_validate_naming_table_column_and_row(
    demo500: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(demo500, bad)
    orders = pd.read_csv(bad / "orders.csv", dtype=str)
    orders.loc[3, "order_date"] = "2024-13-45"
    orders.to_csv(bad / "orders.csv", index=False)
    res = runner.invoke(app, ["validate", "--data", str(bad)])
    assert res.exit_code == 2
    assert "order_date" in res.output and "2024-13-45" in res.output


def test_features_writes_the_point_in_time_table(demo500: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    res = runner.invoke(
        app, ["features", "--data", str(demo500), "--as-of", "2026-06-01", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(out)
    assert (df["as_of"] == pd.Timestamp("2026-06-01")).all()
    assert df["account_id"].is_unique and len(df) > 100


def test_a_bad_as_of_is_a_clear_error_not_a_traceback(demo500: Path) -> None:
    res = runner.invoke(app, ["validate", "--data", str(demo500), "--as-of", "yesterday-ish"])
    assert res.exit_code == 2
    assert "--as-of" in res.output and "YYYY-MM-DD" in res.output


def test_an_unknown_config_key_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("labels:\n  horizon_dayz: 30\n")
    res = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert res.exit_code == 2
    assert "horizon_dayz" in res.output
