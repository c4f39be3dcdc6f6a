"""The README stays true: feature table from the catalog, commands that exist."""

from __future__ import annotations

import re
from pathlib import Path

from ka_ml.features.catalog import FEATURES
from ka_ml.features.readme_table import with_feature_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_feature_table_is_the_catalogs() -> None:
    assert with_feature_table(README) == README, "run: python -m ka_ml.features.readme_table"


def test_every_catalog_feature_is_listed_in_the_readme() -> None:
    for spec in FEATURES:
        assert f"`{spec.name}`" in README


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    named = set(re.findall(r"`make ([a-z-]+)`", README))
    assert named and named <= targets, named - targets
