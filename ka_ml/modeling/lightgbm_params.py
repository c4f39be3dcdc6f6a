"""LightGBM settings shared by the churn and timing boosters: the fixed, deterministic
ones, the defaults, and the Optuna search space with its bounds."""

from __future__ import annotations

import os
from typing import Any

import lightgbm as lgb

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


EARLY_STOPPING_ROUNDS = 50


def train_booster(
    params: dict[str, Any], train: lgb.Dataset, valid: lgb.Dataset | None, rounds: int | None
) -> tuple[lgb.Booster, int]:
    """A booster on ``train``: early stopping on ``valid`` when given (up to ``MAX_ROUNDS``
    trees), else ``rounds`` trees (None: ``MAX_ROUNDS``); with its best iteration."""
    n = rounds or MAX_ROUNDS
    booster = lgb.train(
        params,
        train,
        num_boost_round=n,
        valid_sets=[] if valid is None else [valid],
        callbacks=[]
        if valid is None
        else [lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    return booster, int(booster.best_iteration or n)
