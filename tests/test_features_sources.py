"""The same data gives the same features whatever it is stored in (CSV, Parquet, DuckDB)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ka_ml.config import Config
from ka_ml.data.loader import load_history
from ka_ml.features.build import build_features

TABLES = ("orders", "accounts", "usage", "tickets", "surveys", "contracts")


@pytest.fixture(scope="module")
def copies(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    parquet = root / "parquet"
    parquet.mkdir()
    db = root / "world.duckdb"
    con = duckdb.connect(str(db))
    for t in TABLES:
        df = pd.read_csv(demo_dir / f"{t}.csv", dtype=str, keep_default_na=False)
        df.to_parquet(parquet / f"{t}.parquet", index=False)
        con.register("frame", df)
        con.execute(f"CREATE TABLE {t} AS SELECT * FROM frame")
        con.unregister("frame")
    con.close()
    return {"csv": demo_dir, "parquet": parquet, "duckdb": db}


@pytest.mark.parametrize("other", ["parquet", "duckdb"])
def test_features_on_csv_equal_features_on_other_sources(
    copies: dict[str, Path], other: str
) -> None:
    cfg = Config()
    as_of = pd.Timestamp("2026-06-01")
    from_csv = build_features(load_history(copies["csv"], cfg.data), as_of, cfg)
    from_other = build_features(load_history(copies[other], cfg.data), as_of, cfg)
    assert len(from_csv) > 100
    pd.testing.assert_frame_equal(from_csv, from_other)
