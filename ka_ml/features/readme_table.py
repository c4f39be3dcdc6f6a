"""Keeps the README's feature table in step with the feature catalog.

``python -m ka_ml.features.readme_table`` rewrites the block between the ``features:start`` and
``features:end`` markers; a test fails when the README and the catalog disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ka_ml.features.catalog import catalog_table_markdown

START, END = "<!-- features:start -->", "<!-- features:end -->"


def with_feature_table(readme: str) -> str:
    """The README text with its feature block replaced by the catalog's table."""
    head, sep, rest = readme.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"README lacks the {START} ... {END} markers")
    return f"{head}{START}\n{catalog_table_markdown()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    path = Path((argv or sys.argv[1:] or ["README.md"])[0])
    text = path.read_text(encoding="utf-8")
    new = with_feature_table(text)
    if new != text:
        path.write_text(new, encoding="utf-8")
        print(f"updated the feature table in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
