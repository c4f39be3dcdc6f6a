"""Small shared pieces for LightGBM models: frames in, consistent categoricals, params."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

# Bounds on the search space keep TreeSHAP explanation time a property we control
# (cost grows with trees x depth; see stack notes).
MAX_DEPTH = 8
MAX_ROUNDS = 600


def base_params(seed: int) -> dict[str, Any]:
    """Deterministic LightGBM settings (same data + seed -> same model)."""
    return {
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": int(os.environ.get("KA_ML_THREADS", "2")),
        "feature_pre_filter": False,
    }


def default_params() -> dict[str, Any]:
    return {
        "learning_rate": 0.05,
        "num_leaves": 15,
        "max_depth": 6,
        "min_child_samples": 40,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
    }


def suggest_params(trial: Any) -> dict[str, Any]:
    """Optuna search space shared by the churn and timing boosters."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.15, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 31),
        "max_depth": trial.suggest_int("max_depth", 3, MAX_DEPTH),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 200, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.6, 1.0),
        "bagging_freq": 1,
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
    }


def align_frame(
    df: pd.DataFrame, columns: list[str], categories: dict[str, list[str]]
) -> pd.DataFrame:
    """Select ``columns`` in order; cast categoricals to the training categories.

    Unseen category values become NaN (LightGBM's missing branch), never a new code, so a
    model scores consistently whatever accounts a chunk holds.
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        from ka_ml.errors import ModelError

        raise ModelError(
            f"The model needs features the current data cannot produce: {missing}.",
            "retrain on data that has the same tables (ka-ml train), or supply the missing "
            "tables/columns.",
        )
    out = df.loc[:, columns].copy()
    for c in columns:
        if c in categories:
            out[c] = pd.Categorical(out[c].astype("object"), categories=categories[c])
        else:
            out[c] = out[c].astype("float64")
    return out


def category_levels(df: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    cats: dict[str, list[str]] = {}
    for c in columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            cats[c] = [str(x) for x in df[c].cat.categories]
        elif df[c].dtype == object or pd.api.types.is_string_dtype(df[c].dtype):
            cats[c] = sorted(str(x) for x in df[c].dropna().unique())
    return cats


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))
