"""The frame a model reads: its training columns in order, categoricals cast to the levels
seen in training (so every chunk of accounts scores alike), arrays given column names."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.utils.validation import check_array

from ka_ml.errors import ModelError
from ka_ml.features import catalog


def as_frame(X: Any, columns: list[str] | None, who: str) -> pd.DataFrame:
    """``X`` itself when it is a DataFrame (what the package always passes); a 2-D array
    gets the model's training ``columns`` (or ``x0, x1, ...`` before fitting), so generic
    scikit-learn tools that pass arrays work too."""
    if isinstance(X, pd.DataFrame):
        return X
    # dense, 2-D, not empty, not complex (scikit-learn's own messages); NaN is a feature gap
    arr = check_array(X, dtype=None, ensure_all_finite="allow-nan", estimator=who)
    names = columns if columns is not None else [f"x{i}" for i in range(arr.shape[1])]
    if len(names) != arr.shape[1]:
        raise ValueError(
            f"X has {arr.shape[1]} features, but {who} is expecting {len(names)} features as input."
        )
    return pd.DataFrame(arr, columns=names)


def align_frame(
    df: pd.DataFrame, columns: list[str], categories: dict[str, list[str]]
) -> pd.DataFrame:
    """Select ``columns`` in order; cast categoricals to the training categories.

    Unseen category values become NaN (LightGBM's missing branch), never a new code, so a
    model scores consistently whatever accounts a chunk holds.
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise missing_features_error(missing)
    data = {
        c: _known_categories(df[c], categories[c]) if c in categories else df[c].astype("float64")
        for c in columns
    }
    return pd.DataFrame(data, index=df.index, columns=columns)


def missing_features_error(missing: list[str]) -> ModelError:
    """The error when the data cannot produce features the model was trained with, naming
    the tables they come from (a table renamed or dropped from the source is the usual
    cause: the model needs it, or a retrain without it)."""
    by_table: dict[str, list[str]] = {}
    for name in missing:
        try:
            table = catalog.get(name).table
        except KeyError:
            table = ""
        by_table.setdefault(table, []).append(name)
    tables = sorted(t for t in by_table if t)
    listed = "; ".join(
        f"{t or 'other'}: {', '.join(names)}"
        for t, names in sorted(by_table.items(), key=lambda kv: (kv[0] == "", kv[0]))
    )
    if tables:
        named = " and ".join(f"'{t}'" for t in tables)
        return ModelError(
            f"The model was trained with the {named} table{'s' if len(tables) > 1 else ''}, "
            f"which the current data does not have ({len(missing)} features: {listed}).",
            f"restore {named} in the source (renamed? map it with data.tables: "
            f"{{{tables[0]}: YOUR_NAME}}; ka-ml validate lists the tables it found), or "
            "retrain on this data (ka-ml train) to score without it.",
        )
    return ModelError(
        f"The model needs features the current data cannot produce: {missing}.",
        "retrain on data that has the same tables (ka-ml train), or supply the missing "
        "tables/columns.",
    )


def _known_categories(values: pd.Series, levels: list[str]) -> pd.Categorical:
    """``values`` as a categorical of ``levels``, values outside them NaN (pandas 4 will
    refuse to build a Categorical from values outside its categories)."""
    v = values.astype("object")
    return pd.Categorical(v.where(v.isin(levels)), categories=levels)


def category_levels(df: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    cats: dict[str, list[str]] = {}
    for c in columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            cats[c] = [str(x) for x in df[c].cat.categories]
        elif df[c].dtype == object or pd.api.types.is_string_dtype(df[c].dtype):
            cats[c] = sorted(str(x) for x in df[c].dropna().unique())
    return cats
